"""Writing files so that a crash, Ctrl-C or SIGTERM never leaves half of one.

Every file fnn writes goes through `atomic_path`: the writer fills a temporary file beside the
target, which is flushed to disk and renamed over the target only when the writer finished.
Both ends of the pipeline use it: `fnn.data` for downloads, `fnn.io` for models and outputs.
A folder of outputs (a training run) is built the same way by `staged_folder`: filled under a
hidden name and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path



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
    except BaseException:
        tmp.unlink(missing_ok=True)
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
def staged_folder(final: str | os.PathLike, keep_interrupted: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden folder beside `final`; rename it to `final` when the block succeeds.

    Usage: `with staged_folder("runs/r1") as folder: save_model(folder / "model.npz", ...)`.
    On any exception (KeyboardInterrupt included) the folder and everything in it are removed,
    and so are the parent folders this call created, so a failed command leaves no trace;
    except, with keep_interrupted, a KeyboardInterrupt after something was written: then the
    folder is renamed to `final` as it is (a training run left resumable).
    `final` must not exist yet, or be an empty folder (FileExistsError otherwise).
    """
    final = Path(final)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"output folder {final} already exists and is not empty; pass a new --out or remove it")
    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a run folder is an ordinary folder
        os.replace(tmp, final)
    except KeyboardInterrupt:
        if keep_interrupted and any(tmp.iterdir()):
            os.chmod(tmp, 0o755)
            os.replace(tmp, final)
        else:
            _discard(tmp, created)
        raise
    except BaseException:
        _discard(tmp, created)
        raise


def _discard(tmp: Path, created: list[Path]) -> None:
    """Remove a staging folder and the parent folders made for it (innermost first)."""
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()
