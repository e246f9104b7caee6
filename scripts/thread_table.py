"""The README's thread table: `fnn train` with --threads 1 and 2, alone and beside a busy core.

    python scripts/thread_table.py [--rounds 2]

For each data set (the bundled sample with the defaults, Fashion-MNIST for 5 epochs) and each
thread count, runs `python -m fnn train` in a fresh process, once on its own and once while
another process spins on one core (`while True: pass`, what a second job on a 2-core machine
does), and prints a Markdown table of training seconds (fnn's own "trained in" figure) and, in
brackets, the whole command's wall-clock seconds: the minimum over --rounds interleaved rounds.
Fashion-MNIST is read from Debian's package or $FNN_DATA; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {
    "sample (30 epochs)": ["--data", "sample"],
    "`fashion-mnist --epochs 5`": ["--data", "fashion-mnist", "--epochs", "5"],
}


def train_seconds(flags: list[str], threads: int) -> tuple[float, float]:
    """(training seconds fnn reports, wall seconds of the whole command) of one fresh run."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "fnn", "train", *flags, "--threads", str(threads), "--no-progress",
             "--out", str(Path(folder) / "run")],
            capture_output=True, text=True, check=True,
        )
        wall = time.perf_counter() - start
    return float(re.search(r"trained in ([0-9.]+) s", done.stdout).group(1)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the minimum is reported (default 2)")
    args = parser.parse_args()
    best: dict[tuple[str, bool, int], tuple[float, float]] = {}
    for _ in range(args.rounds):
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for name, flags in RUNS.items():
                    for threads in (1, 2):
                        seconds = train_seconds(flags, threads)
                        key = (name, busy, threads)
                        best[key] = min(best.get(key, seconds), seconds)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    print("| data | `--threads 1` | `--threads 2` | `--threads 1`, +1 busy core | `--threads 2`, +1 busy core |")
    print("|---|---|---|---|---|")
    for name in RUNS:
        cells = [best[(name, busy, threads)] for busy in (False, True) for threads in (1, 2)]
        print(f"| {name} | " + " | ".join(f"{train:.1f} s ({wall:.0f} s)" for train, wall in cells) + " |")


if __name__ == "__main__":
    main()
