"""fnn.allocator.keep_freed_memory: freed blocks of a training step's size are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CODE = """
import resource, sys, numpy as np
if sys.argv[1] == "keep":
    from fnn.allocator import keep_freed_memory
    assert keep_freed_memory()
def step():  # a CNN step's temporaries: four blocks of 20 MB, all freed at its end
    blocks = [np.ones(5 << 20, np.float32) for _ in range(4)]
    del blocks
step()  # the first step faults its pages in in any case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_blocks_are_reused_after_keep_freed_memory():
    # glibc's default: the heap trims what the step freed, and part of it is faulted in again
    # each step (20,548 faults for these 10 steps on the machine that wrote this test)
    assert faults("default") > 5_000
    assert faults("keep") < 100  # kept: 0 there
