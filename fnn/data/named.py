"""The named sources "mnist" and "fashion-mnist": the `$FNN_DATA` cache and checked downloads.

A named dataset's four gzipped IDX files are read from the cache directory (`data_dir`, else
`$FNN_DATA`, else `~/.cache/fnn`, each dataset in its own subfolder) when their SHA-256 sums
match the published ones; Fashion-MNIST also from Debian's `/usr/share/datasets/fashion-mnist/`;
else they are downloaded into the cache, checked, and only then renamed into place.

The library prints nothing: a download reports its progress to an optional callback,

    progress(bytes_done: int, bytes_total: int | None, file_name: str) -> None

called with 0 before the first byte, after every chunk with the running count, and, once a
file has arrived in full, a last time with bytes_done == bytes_total (bytes_total is the
server's Content-Length, or, when it sent none, None until that last call). The command line
hands in one that draws a progress bar.

urllib is imported by the download itself, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import attrs

from fnn.data.dataset import DIGIT_NAMES, FASHION_NAMES, Dataset
from fnn.data.idx import IDX_FILES, find_idx_pair, read_idx_pair
from fnn.errors import DataError
from fnn.files import atomic_path

Progress = Callable[[int, int | None, str], None]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# Published SHA-256 sums of the gzipped IDX files, as recorded by TensorFlow Datasets in
# github.com/tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (commit 31f1255e)
# and tensorflow_datasets/url_checksums/fashion_mnist.txt (commit 333639b3). The MNIST sums
# are the same ones torchvision's mirrors serve (their md5 sums name the same files).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)


# The largest published file is Fashion-MNIST's train-images, 26 MB; 60,000 raw 28x28 images
# take 47 MB, and gzip adds little even to incompressible bytes. A mirror sending more than
# this (declared or not) is stopped before the disk fills.
MAX_DOWNLOAD_BYTES = 64 << 20


@attrs.frozen
class NamedSource:
    """A downloadable dataset: its folder name, class names, checksums and mirrors."""

    folder: str
    class_names: tuple[str, ...]
    sha256: dict
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...]


NAMED = {
    "mnist": NamedSource("mnist", DIGIT_NAMES, MNIST_SHA256, MNIST_MIRRORS, ()),
    # Debian's dataset-fashion-mnist re-gzips the files (same IDX content, different .gz
    # bytes), so files found there are checked by IDX structure, not by the sums above.
    "fashion-mnist": NamedSource(
        "fashion-mnist", FASHION_NAMES, FASHION_SHA256, FASHION_MIRRORS, (DEBIAN_FASHION_DIR,)
    ),
}


def default_data_dir() -> Path:
    """`$FNN_DATA`, else `~/.cache/fnn`: where "mnist" and "fashion-mnist" are cached."""
    return Path(os.environ.get("FNN_DATA") or "~/.cache/fnn").expanduser()


def check_progress(progress) -> Progress | None:
    """`progress` when it is None or callable, else TypeError saying what to pass."""
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be None or a function progress(bytes_done, bytes_total, file_name), "
            f"got {progress!r}; the library prints nothing, so pass a callback that draws the bar"
        )
    return progress


def load_named(
    name: str,
    part: str,
    data_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """`part` ("train" or "test") of the named dataset `name` (a key of `NAMED`): from the
    cache if its files match their published sums, else from a system directory (Debian's
    Fashion-MNIST), else downloaded into the cache (see the module docstring)."""
    spec = NAMED[name]
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = folder / spec.folder
    filenames = [stem + ".gz" for stem in IDX_FILES[part]]
    found = _find_in(spec.system_dirs, part)
    if found is not None and not all(_is_cached(spec, folder / f) for f in filenames):
        return read_idx_pair(*found, spec.class_names, f"{name} {part} ({found[0].parent})")
    paths = [
        _fetch(spec, folder, filename, spec.mirrors if mirrors is None else mirrors, progress)
        for filename in filenames
    ]
    return read_idx_pair(*paths, spec.class_names, f"{name} {part} ({folder})")


def _find_in(dirs: tuple[Path, ...], part: str) -> tuple[Path, Path] | None:
    """Both IDX files of `part` from the first system directory holding them, if any."""
    for directory in dirs:
        found = find_idx_pair(directory, part)
        if found is not None:
            return found
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_cached(spec: NamedSource, path: Path) -> bool:
    """Whether path exists with the published SHA-256 of its file name."""
    return path.is_file() and _sha256(path) == spec.sha256[path.name]


def _fetch(spec: NamedSource, folder: Path, filename: str, mirrors, progress: Progress | None) -> Path:
    """Path of `folder/filename` with the published SHA-256, downloading it if needed.

    A cached file is used only if its checksum matches; a download goes to a temporary file
    in `folder`, is checked, and only then renamed into place, so an interrupted or corrupt
    download never looks cached. Mirrors are tried in order.
    """
    target = folder / filename
    expected = spec.sha256[filename]
    if _is_cached(spec, target):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        problem = _download(base + filename, target, expected, progress)
        if problem is None:
            return target
        failures.append(f"{base + filename}: {problem}")
    stale = (
        f" The file already there, {target}, does not match its SHA-256 {expected}."
        if target.is_file()
        else ""
    )
    files = ", ".join(sorted(spec.sha256))
    raise DataError(
        f"could not download {filename} for {spec.folder}: {'; '.join(failures)}.{stale} "
        f"To work offline, place the four files {files} in {folder} (or point $FNN_DATA at "
        f"a folder with a {spec.folder}/ subfolder holding them), or use --data sample or "
        f"a CSV path instead."
    )


class _DownloadProblem(Exception):
    """A download that arrived but cannot be kept (short, or the wrong checksum)."""


def _download(url: str, target: Path, sha256: str, progress: Progress | None, timeout: float = 60.0):
    """Download url to target atomically; None on success, else what went wrong (str).

    The bytes go to a temporary file beside `target` (`fnn.files.atomic_path`), which replaces
    `target` only once the length and the SHA-256 check out; otherwise it is removed.
    `progress`, if given, is called as the module docstring says.
    """
    import http.client
    import urllib.error
    import urllib.request

    report = progress if progress is not None else (lambda done, total, name: None)
    try:
        with atomic_path(target) as temporary, open(temporary, "wb") as out, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > MAX_DOWNLOAD_BYTES:
                raise _DownloadProblem(_too_large(f"declares {total:,} bytes"))
            digest, received = hashlib.sha256(), 0
            report(0, total, target.name)
            for chunk in iter(lambda: response.read(1 << 16), b""):
                if received + len(chunk) > MAX_DOWNLOAD_BYTES:
                    raise _DownloadProblem(_too_large(f"sent more than {MAX_DOWNLOAD_BYTES:,} bytes"))
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                report(received, total, target.name)
            if total is not None and received != total:
                raise _DownloadProblem(f"connection closed after {received} of {total} bytes")
            if total is None:
                report(received, received, target.name)  # the end, for a bar with no total
            if digest.hexdigest() != sha256:
                raise _DownloadProblem(
                    f"SHA-256 {digest.hexdigest()} does not match the published {sha256}"
                )
        return None
    except _DownloadProblem as problem:
        return str(problem)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        return f"{type(error).__name__}: {error}"


def _too_large(what: str) -> str:
    return (
        f"the mirror {what}, but no published file is larger than {MAX_DOWNLOAD_BYTES:,} bytes "
        f"(the largest is 26 MB)"
    )
