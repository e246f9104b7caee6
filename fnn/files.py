"""Writing files so that a crash, Ctrl-C or SIGTERM never leaves half of one.

Every file fnn writes goes through `atomic_path`: the writer fills a temporary file beside the
target, which is flushed to disk and renamed over the target only when the writer finished.
Both ends of the pipeline use it: `fnn.data` for downloads, `fnn.io` for models and outputs.
A folder of outputs (a training run) is built the same way by `staged_folder`: filled under a
hidden name and renamed into place when complete. While a process works in such a folder it holds
a lock on it (`folder_lock`, an flock on the folder itself, which the kernel releases when the
process dies, however it dies), so another command can tell a live run's folder from a killed
one's and never deletes or writes into a live one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; folders are not locked there
    fcntl = None

from fnn.errors import UserError

_TEMPORARY = re.compile(r"\.[0-9a-f]{12}\.")  # the names `atomic_path` writes under


class FolderInUse(UserError):
    """A folder another live process holds the lock of (`folder_lock`); the message says which."""


class DiskFull(UserError, OSError):
    """No space (or quota) left while writing a file; the message names the file and the fix."""


class NotAFolder(UserError, OSError):
    """A path whose parent, or one of its parents, is a regular file; the message says which."""


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def file_above(path: str | os.PathLike) -> Path | None:
    """The first of `path`'s parent folders, from the outermost, that exists and is not a
    folder (a regular file, say); None when there is none."""
    return next((above for above in reversed(Path(path).parents) if above.exists() and not above.is_dir()), None)


def make_parents(path: str | os.PathLike) -> list[Path]:
    """Create the missing folders above `path`; return those created, innermost first.

    NotAFolder, naming the component, when one of them is a file (mkdir's own errors would say
    only "[Errno 17] File exists" or "[Errno 20] Not a directory").
    """
    path = Path(path)
    blocker = file_above(path)
    if blocker is not None:
        raise NotAFolder(
            f"cannot write {path}: {blocker} is a file, not a folder; choose a path that does not go "
            f"through a file (another --out), or move {blocker} away"
        )
    created = [p for p in path.parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    return created


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    Usage: `with atomic_path("out/model.npz") as tmp: np.savez(tmp, ...)`.
    The temporary file is hidden and ends with `path`'s name (`.<random hex>.model.npz`), so
    writers that pick a format from the extension (numpy, matplotlib, pandas compression)
    behave as for `path`. After the block: fsync the file, `os.replace` it onto `path`, fsync
    the directory. On any exception, KeyboardInterrupt included, the temporary file is removed
    and `path` is left as it was. The parent directory must exist.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {parent} does not exist; create it first")
    tmp = parent / f".{secrets.token_hex(6)}.{path.name}"
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            raise DiskFull(
                f"cannot write {path}: no space left on its disk ({error.strerror}); free some space there, "
                f"or write somewhere else (another --out)"
            ) from None
        raise
    _fsync_directory(parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; platforms that cannot open a directory (Windows) skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `folder` for the block (an flock on the folder itself: it
    follows the folder through renames and the kernel drops it when the process dies).
    FolderInUse at once, without waiting, when another process holds it."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))  # a FIFO is refused, never waited on
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(
                f"{folder}: another fnn process is working in this folder right now; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def is_locked(folder: str | os.PathLike) -> bool:
    """Whether a live process holds `folder_lock(folder)` (False for a missing folder)."""
    try:
        with folder_lock(folder):
            return False
    except FolderInUse:
        return True
    except OSError:
        return False


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `atomic_path` left in `folder` when its process was killed
    (SIGKILL, a power cut) before it could clean up; returns them. Call it only while holding
    `folder_lock(folder)`, so that no live writer's file is taken."""
    left = [p for p in Path(folder).iterdir() if _TEMPORARY.match(p.name) and p.is_file()]
    for path in left:
        path.unlink(missing_ok=True)
    return left


def staging_folders(final: str | os.PathLike) -> list[Path]:
    """The hidden folders (`.<name>.partial-*`) that `staged_folder(final)` calls are filling,
    or that killed ones left behind (`is_locked` tells them apart)."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    return sorted(p for p in final.parent.glob(f".{final.name}.partial-*") if p.is_dir() and not p.is_symlink())


@contextmanager
def staged_folder(final: str | os.PathLike, keep_interrupted: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden folder beside `final`; rename it to `final` when the block succeeds.

    Usage: `with staged_folder("runs/r1") as folder: save_model(folder / "model.npz", ...)`.
    On any exception (KeyboardInterrupt included) the folder and everything in it are removed,
    and so are the parent folders this call created, so a failed command leaves no trace;
    except, with keep_interrupted, a KeyboardInterrupt after something was written: then the
    folder is renamed to `final` as it is (a training run left resumable).
    `final` must not exist yet, or be an empty folder (FileExistsError otherwise).

    The folder is locked (`folder_lock`) from before it is visible under its `.partial-` name
    until the block ends, and FolderInUse is raised when another live process is filling a
    folder for the same `final`: two commands never write one output. When `final` appears
    while the block runs, the finished folder is kept (under its hidden name, which the
    FileExistsError names) rather than discarded.
    """
    final = Path(final)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"output folder {final} already exists and is not empty; pass a new --out or remove it")
    created = make_parents(final)
    # made under a name no one looks for, locked, then renamed: a `.partial-` folder is never
    # seen unlocked while its process lives
    starting = Path(tempfile.mkdtemp(prefix=f".{final.name}.starting-", dir=final.parent))
    tmp = final.parent / starting.name.replace(".starting-", ".partial-", 1)
    with contextlib.ExitStack() as lock:
        try:
            lock.enter_context(folder_lock(starting))
            os.replace(starting, tmp)
        except BaseException:
            _discard(starting, created)
            raise
        try:
            others = [p for p in staging_folders(final) if p != tmp and is_locked(p)]
            if others:
                raise FolderInUse(
                    f"{final}: another fnn process is writing this output right now (into {others[0]}); "
                    "wait for it to finish, or choose another --out"
                )
            yield tmp
        except KeyboardInterrupt:
            if keep_interrupted and any(tmp.iterdir()):
                os.chmod(tmp, 0o755)
                _move_into_place(tmp, final)
            else:
                _discard(tmp, created)
            raise
        except BaseException:
            _discard(tmp, created)
            raise
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a run folder is an ordinary folder
        _move_into_place(tmp, final)


def _move_into_place(tmp: Path, final: Path) -> None:
    """os.replace(tmp, final), or FileExistsError naming where the output is when `final`
    became a file or a non-empty folder meanwhile (what was written is never discarded)."""
    try:
        os.replace(tmp, final)
    except OSError as error:
        if not final.exists():
            raise
        raise FileExistsError(
            f"{final} appeared while this command wrote its output ({error.strerror}); the output is "
            f"complete in {tmp}: move it into place (`mv {tmp} {final}` once {final} is gone) or rename it"
        ) from None


def _discard(tmp: Path, created: list[Path]) -> None:
    """Remove a staging folder and the parent folders made for it (innermost first)."""
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()
