"""Writing files so that a crash, Ctrl-C or SIGTERM never leaves half of one.

Every file fnn writes goes through `atomic_path`: the writer fills a temporary file beside the
target, which is flushed to disk and renamed over the target only when the writer finished.
Both ends of the pipeline use it: `fnn.data` for downloads, `fnn.io` for models and outputs.
"""

from __future__ import annotations

import os
import secrets
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


