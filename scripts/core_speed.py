"""Training-loop speed of two fnn source trees, timed in fresh processes that take turns.

    git -C /work/main worktree add /tmp/fnn-old a97f06b      # the "old" tree, once
    python scripts/core_speed.py --old /tmp/fnn-old --new /work/main
    python scripts/core_speed.py --old /tmp/fnn-old --new /work/main --fold --rounds 5

--old and --new are roots of fnn checkouts (folders holding `fnn/`). Each measurement is a new
`python -c WORKER` with PYTHONPATH and the working directory set to that root, so its `fnn` is
imported rather than the installed one (the worker checks `fnn.__file__`), and with
OPENBLAS/OMP/MKL_NUM_THREADS set to --threads (threadpoolctl reports what the BLAS really uses).
The worker loads Fashion-MNIST's 60,000 training rows (`fnn.load_dataset("fashion-mnist")`, read
offline from /usr/share/datasets/fashion-mnist/ or $FNN_DATA), then times one call, untimed
loading aside:
  default   fnn.fit(default_rng(0), fnn.init(default_rng(0), (784, W, 10)), opt, (X, y),
            epochs=E, batch_size=128), no dev set (fit's per-epoch history rows included);
  --fold    toolz.reduce(partial(fnn.train_step, optimizer=opt), fnn.batches(default_rng(0),
            X, y, 128, epochs=E), fnn.init_state(params, opt)), with donate=True when that
            tree's train_step takes a `donate` keyword;
with opt = fnn.sgd(0.05, momentum=0.9) or fnn.adam(1e-3). It reports seconds per epoch on the
wall clock (perf_counter) and the CPU clock (process_time, all threads), minor page faults per
epoch (ru_minflt after - before) and peak resident size (ru_maxrss, a lifetime high-water mark,
so it includes loading; "+fit MB" is how much the fit raised it).

Each round runs every (optimizer, width) case once per tree, old then new, and the order flips
from round to round (old, new / new, old / ...), so a slow spell of the machine does not land on
one tree. The table keeps each tree's minimum over rounds (peak MB: the maximum); new/old is the
ratio of the minima, below 1 when the new tree is faster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

# Run as `python -c WORKER root width optimizer epochs mode`; prints one JSON object.
WORKER = r"""
import functools, inspect, json, resource, sys, time
from pathlib import Path
import numpy as np, threadpoolctl, toolz
import fnn

root, width, name, epochs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
assert Path(fnn.__file__).resolve().is_relative_to(Path(root).resolve()), f"imported {fnn.__file__}"
data = fnn.load_dataset("fashion-mnist")
X, y = data.X, data.y
opt = fnn.sgd(0.05, momentum=0.9) if name == "sgd" else fnn.adam(1e-3)
params = fnn.init(np.random.default_rng(0), (784, width, 10))
donate = mode == "fold" and "donate" in inspect.signature(fnn.train_step).parameters
if mode == "fold":
    step = functools.partial(fnn.train_step, optimizer=opt, **({"donate": True} if donate else {}))
    run = lambda: toolz.reduce(step, fnn.batches(np.random.default_rng(0), X, y, 128, epochs=epochs),
                               fnn.init_state(params, opt))
else:
    run = lambda: fnn.fit(np.random.default_rng(0), params, opt, (X, y), epochs=epochs, batch_size=128)

before = resource.getrusage(resource.RUSAGE_SELF)
wall, cpu = time.perf_counter(), time.process_time()
run()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF)
blas = [{k: d.get(k) for k in ("internal_api", "version", "num_threads")}
        for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
print(json.dumps({
    "wall": wall / epochs, "cpu": cpu / epochs, "minflt": (after.ru_minflt - before.ru_minflt) / epochs,
    "peak_mb": after.ru_maxrss / 1024, "fit_mb": (after.ru_maxrss - before.ru_maxrss) / 1024,
    "blas": blas, "donate": donate,
}))
"""


def measure(root: Path, width: int, optimizer: str, args) -> dict:
    """One fresh worker process on the tree at `root`; its JSON report."""
    threads = str(args.threads)
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS=threads,
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    mode = "fold" if args.fold else "fit"
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(root), str(width), optimizer, str(args.epochs), mode],
        cwd=root, env=env, capture_output=True, text=True,
    )
    if done.returncode:
        sys.exit(f"worker failed on {root} ({optimizer}, {width}):\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def tree_root(text: str) -> Path:
    root = Path(text).resolve()
    if not (root / "fnn" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{root} has no fnn/__init__.py")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=tree_root, required=True, help="root of the old fnn tree")
    parser.add_argument("--new", type=tree_root, required=True, help="root of the new fnn tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--optimizers", nargs="+", choices=["sgd", "adam"], default=["sgd", "adam"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fold", action="store_true", help="time a toolz.reduce of train_step, not fit")
    args = parser.parse_args()

    cases = [(opt, width) for opt in args.optimizers for width in args.widths]
    runs = {(side, case): [] for side in ("old", "new") for case in cases}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for case in cases:
            for side in order:
                report = measure(getattr(args, side), case[1], case[0], args)
                runs[side, case].append(report)
                print(f"round {r + 1}/{args.rounds} {side} {case[0]} {case[1]}: "
                      f"{report['wall']:.3f} s/epoch wall, {report['cpu']:.3f} cpu", file=sys.stderr)

    print(f"`{shlex.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs)")
    print(f"- old: {args.old}\n- new: {args.new}")
    print(f"- timed: {'toolz.reduce of fnn.train_step' if args.fold else 'fnn.fit'}, "
          f"{args.epochs} epoch(s) of 60,000 Fashion-MNIST rows, batch 128, {args.rounds} round(s)")
    for side in ("old", "new"):
        first = runs[side, cases[0]][0]
        blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)"
                         for b in first["blas"]) or "none found"
        print(f"- {side} BLAS: {blas}" + ("; train_step(donate=True)" if first["donate"] else ""))
        if any(b["num_threads"] != args.threads for b in first["blas"]):
            print(f"- WARNING: {side} BLAS does not run the requested {args.threads} thread(s)")

    print("\n| optimizer | width | old cpu s/ep | new cpu s/ep | new/old cpu | old wall s/ep "
          "| new wall s/ep | new/old wall | old faults/ep | new faults/ep | old peak MB (+fit) "
          "| new peak MB (+fit) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for case in cases:
        best = {side: {key: min(r[key] for r in runs[side, case]) for key in ("cpu", "wall", "minflt")}
                for side in ("old", "new")}
        peak = {side: max(runs[side, case], key=lambda r: r["peak_mb"]) for side in ("old", "new")}
        o, n = best["old"], best["new"]
        print(f"| {case[0]} | {case[1]} | {o['cpu']:.3f} | {n['cpu']:.3f} | {n['cpu'] / o['cpu']:.2f} "
              f"| {o['wall']:.3f} | {n['wall']:.3f} | {n['wall'] / o['wall']:.2f} "
              f"| {o['minflt']:,.0f} | {n['minflt']:,.0f} "
              + " ".join(f"| {peak[s]['peak_mb']:.0f} (+{peak[s]['fit_mb']:.0f})" for s in ("old", "new"))
              + " |")


if __name__ == "__main__":
    main()
