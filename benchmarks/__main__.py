"""Run the asv benchmark classes without asv and print one table.

    python -m benchmarks                 # every benchmark, every grid point
    python -m benchmarks -k Epoch -k Evaluate --quick

For each class, grid point and `time_*` method: the median and minimum seconds (at least 5
calls, more within a 1 s budget; 3 with --quick), and for classes rated against the BLAS floor
(see benchmarks/common.py) the GFLOP/s and the floor fraction = floor seconds / seconds, both
from minima (load from other processes only ever adds time). `peakmem_*` and `track_*` methods
are asv's (peak RSS needs a process per benchmark; the track figures are the columns here), so
this runner does not call them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import os
import pkgutil
import platform
import re
import statistics
import sys
import time
from collections.abc import Iterator

import benchmarks
from benchmarks import common


def benchmark_classes() -> Iterator[type]:
    """Concrete, public classes defined in benchmarks/bench_*.py, in file order."""
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and cls.__module__ == module.__name__
                    and not name.startswith("_") and not inspect.isabstract(cls)):
                yield cls


def grid(cls: type) -> list[tuple]:
    """Every combination of the class's asv `params` (a list of lists, or one list)."""
    axes = getattr(cls, "params", [])
    if not axes:
        return [()]
    if not isinstance(axes[0], (list, tuple)):
        axes = [axes]
    return list(itertools.product(*axes))


def machine_line() -> str:
    """Python, NumPy, BLAS library, version, threads and load: what a timing depends on."""
    import numpy as np

    line = f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return line + ", BLAS unknown (threadpoolctl not installed)"
    blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    for i in blas or threadpool_info()[:1]:
        line += (f", BLAS {i['internal_api']} {i.get('version')} ({i.get('architecture')}) "
                 f"{i['num_threads']} threads")
    return line + ", load average %.2f %.2f %.2f" % os.getloadavg()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", action="append", default=[], metavar="REGEX",
                        help="only benchmarks whose Class.method matches (repeatable)")
    parser.add_argument("--quick", action="store_true", help="3 calls per figure, no time budget")
    parser.add_argument("--threads", type=int, help="limit BLAS threads (threadpoolctl) for the whole run")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: time.perf_counter (asv's); cpu: time.process_time, robust to other load")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="call fnn.allocator.keep_freed_memory() first, as the fnn command does (a CNN "
                        "step's temporaries then reuse their pages instead of faulting them in again)")
    args = parser.parse_args(argv)
    if args.keep_freed_memory:
        from fnn.allocator import keep_freed_memory

        keep_freed_memory()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    clock, common.CLOCK = common.CLOCK, {"wall": time.perf_counter, "cpu": time.process_time}[args.clock]
    try:
        return run(args)
    finally:
        common.CLOCK = clock
        if args.threads:
            limits.restore_original_limits()


def run(args) -> int:
    min_repeat, budget = (3, 0.0) if args.quick else (5, 1.0)

    print(machine_line() + f", clock {args.clock}")
    header = f"{'benchmark':<44} {'params':<26} {'median':>10} {'min':>10} {'GFLOP/s':>8} {'floor':>6}"
    print(header)
    print("-" * len(header))
    for cls in benchmark_classes():
        methods = [m for m in sorted(vars(cls)) if m.startswith("time_")]
        methods = [m for m in methods
                   if not args.k or any(re.search(k, f"{cls.__name__}.{m}") for k in args.k)]
        for point in grid(cls) if methods else []:
            bench = cls()
            if hasattr(bench, "setup"):
                bench.setup(*point)
            for m in methods:
                method = getattr(bench, m)
                times = common.timings(lambda: method(*point), min_repeat=min_repeat, budget=budget)
                seconds = statistics.median(times)
                flops = getattr(bench, "flops", None)
                floor = getattr(bench, "floor_seconds", None)
                best = min(times)
                rate = f"{flops / best / 1e9:8.1f}" if flops else " " * 8
                frac = f"{floor / best:6.2f}" if floor else " " * 6
                label = ", ".join(map(str, point))
                print(f"{cls.__name__ + '.' + m:<44} {label:<26} {format_seconds(seconds):>10} {format_seconds(best):>10} {rate} {frac}",
                      flush=True)
            if hasattr(bench, "teardown"):
                bench.teardown(*point)
    print("floor = best BLAS seconds for the same matrix products / best seconds (1.00 is the ceiling)")
    return 0


def format_seconds(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
