"""The `.npy` header of one zip member, read before any of its data: shared by the readers of
model files (`fnn.io.load`) and checkpoints (`fnn.checkpoint`), which each turn a problem into
their own one-line error."""

from __future__ import annotations

import io

import numpy as np

from fnn.io.format import MAX_NPY_HEADER


class NpyProblem(ValueError):
    """Why a member's `.npy` header cannot be read; `damaged`: the bytes were cut or broken in
    transit (re-copy the file) rather than written by something other than numpy (re-save it)."""

    def __init__(self, message: str, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged


def npy_header(entry: str, stream) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length in bytes) of the `.npy` at the start of
    `stream`, read with numpy's own header parser from at most `MAX_NPY_HEADER` bytes;
    NpyProblem naming `entry` otherwise."""
    prefix = stream.read(12)
    if len(prefix) < 10 or not prefix.startswith(b"\x93NUMPY"):
        raise NpyProblem(f"{entry} is not a .npy array (it does not start with the .npy magic bytes)")
    version = (prefix[6], prefix[7])
    if version not in ((1, 0), (2, 0)):
        raise NpyProblem(f"{entry} is a .npy of version {version[0]}.{version[1]}; fnn reads versions 1.0 and 2.0")
    start = 10 if version == (1, 0) else 12
    length = int.from_bytes(prefix[8:start], "little")
    if length > MAX_NPY_HEADER:
        raise NpyProblem(f"{entry} has a .npy header of {length:,} bytes; numpy writes under {MAX_NPY_HEADER:,}")
    header = prefix + stream.read(start + length - len(prefix))
    if len(header) < start + length:
        raise NpyProblem(f"{entry} ends inside its .npy header", damaged=True)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        buffer = io.BytesIO(header)
        np.lib.format.read_magic(buffer)
        shape, fortran, dtype = read_header(buffer)
    except Exception as err:  # noqa: BLE001 - numpy's parser of file bytes (ast, tokenize, dtype) may raise many kinds
        message = repr(str(err))[1:-1][:100]
        raise NpyProblem(f"{entry} has a broken .npy header ({type(err).__name__}: {message})", damaged=True) from None
    if dtype.hasobject:
        raise NpyProblem(f"{entry} holds pickled Python objects, which fnn never loads (they can run code)")
    if any(n < 0 for n in shape):
        raise NpyProblem(f"{entry} has a .npy header with shape {shape}", damaged=True)
    return tuple(shape), fortran, dtype, start + length
