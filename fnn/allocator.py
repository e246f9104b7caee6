"""A program-wide memory setting for the start of a program (never called by the library).

A CNN's training step makes temporaries of tens of MB (a conv layer's im2col columns, its
activations). glibc's malloc serves blocks that large with fresh pages from the kernel (mmap), or
hands freed heap memory back once its free top passes a threshold, so the next step faults every
page in again: 6,800 page faults a step for the 32-64 CNN of `fnn train --conv 32,64`, 57 → 69 ms
a step on this machine. `keep_freed_memory()` asks malloc to serve blocks up to 32 MB from its
heap and to keep freed heap memory, so each step reuses the last one's pages (0 faults a step).

The setting is the process's, not the library's: call it once where the program starts (the
`fnn` command does, in `fnn.cli.main`), as you would choose a thread count.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 1 << 30  # free heap memory kept before any is returned to the kernel


def keep_freed_memory() -> bool:
    """Keep freed memory in this process's heap for reuse (glibc's malloc); True if set, False
    on a C library without `mallopt` (musl, macOS, Windows), where nothing changes."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
