"""FNNClassifier vs scikit-learn's MLPClassifier on Fashion-MNIST, each written as its users write it.

    python scripts/estimator_vs_mlp.py                    # 60,000 rows, 20 epochs, 3 pairs (4-5 min at 1 thread)
    python scripts/estimator_vs_mlp.py --quick            # 2 epochs on 10,000 rows
    python scripts/estimator_vs_mlp.py --pairs 5 --out estimator_vs_mlp.md
    python scripts/estimator_vs_mlp.py --data sample --rows 500 --epochs 1 --pairs 1   # a smoke test

The two contenders, both a 784-256-10 ReLU network trained with Adam (lr 1e-3, constant) on
mini-batches of 128 rows, the same L2 penalty (fnn's `l2` is scikit-learn's `alpha`: both add
(alpha / 2m) Σ||W||² to the mean cross-entropy of a batch of m rows), seed 0:

    FNNClassifier(hidden=(256,), optimizer="adam", lr=1e-3, batch_size=128, epochs=20,
                  l2=1e-4, schedule="constant", random_state=0).fit(X, y)
    MLPClassifier(hidden_layer_sizes=(256,), solver="adam", learning_rate_init=1e-3,
                  batch_size=128, max_iter=20, alpha=1e-4, random_state=0).fit(X, y)

X is the float32 pixels / 255 in [0, 1] (both keep float32), y the int labels; the test set is
the 10,000 official test rows. Everything else is each estimator's default: MLPClassifier may stop
before max_iter when its training loss stops improving by `tol` (the table's n_iter column says
whether it ran every epoch), and it warns ConvergenceWarning at max_iter (silenced, and noted);
FNNClassifier evaluates a 10,000-row training subset after every epoch for its history_.

Each fit runs in a fresh subprocess with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
MKL_NUM_THREADS = --threads set before numpy loads, and threadpoolctl's `threadpool_limits` as
well. A child imports its estimator, loads the data (fnn's IDX reader for both), records its
resident size ("MB after load"), resets the peak-RSS mark (Linux: /proc/self/clear_refs),
times `fit` alone (wall: perf_counter; CPU: process_time, all threads), reads VmHWM ("peak MB",
the highest resident size during fit, the process's whole footprint, libraries and data
included), and only then scores the test set. Runs are sequential, one process at a time, in
pairs: pair i runs fnn then scikit-learn for even i and the reverse for odd i, so a slow spell
of a shared machine falls on both sides of a ratio; the table reports the per-pair ratio
fnn / scikit-learn (median and each pair), never a ratio across hours.

Printed: the machine, the BLAS libraries and thread counts each child saw (threadpoolctl), one row
per run, and the summary (time ratios, accuracy difference in points, peak memory of each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # fnn.data.DEBIAN_FASHION_DIR
CONTENDERS = ("fnn", "sklearn")
NAMES = {"fnn": "FNNClassifier", "sklearn": "MLPClassifier"}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------- one fit, in its own process


def rss_mb() -> float:
    """Resident memory now, in MB (Linux /proc/self/statm)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> None:
    """Reset VmHWM to the current resident size (Linux: write 5 to /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """VmHWM, the peak resident size since the last reset, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def load(data: str, rows: int | None):
    """(X_train, y_train, X_test, y_test): X float32 in [0, 1], y int64. `data` is an IDX folder
    (train-* and t10k-* files) or "sample" (fnn's bundled 5,000 MNIST digits, stored sorted by
    class: shuffled with seed 0, the last 1,000 are the test rows). rows: keep only the first
    `rows` training rows."""
    import numpy as np

    import fnn.data

    if data == "sample":
        sample = fnn.data.load_dataset("sample")
        order = np.random.default_rng(0).permutation(len(sample.y))
        X, y = sample.X[order[:-1000]], sample.y[order[:-1000]]
        X_test, y_test = sample.X[order[-1000:]], sample.y[order[-1000:]]
    else:
        train, test = fnn.data.read_idx_folder(Path(data), "train"), fnn.data.read_idx_folder(Path(data), "test")
        X, y, X_test, y_test = train.X, train.y, test.X, test.y
    if rows is not None:
        X, y = X[:rows].copy(), y[:rows].copy()  # a copy: the full arrays are freed
    return X, y, X_test, y_test


def estimator(contender: str, args):
    """The estimator as its users write it (see the module docstring)."""
    if contender == "fnn":
        from fnn.sklearn import FNNClassifier

        return FNNClassifier(
            hidden=(args.hidden,), optimizer="adam", lr=args.lr, batch_size=args.batch, epochs=args.epochs,
            l2=args.l2, schedule="constant", random_state=args.seed,
        )
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(args.hidden,), solver="adam", learning_rate_init=args.lr, batch_size=args.batch,
        max_iter=args.epochs, alpha=args.l2, random_state=args.seed,
    )


def epochs_run(model) -> int | None:
    """Epochs the fit ran: n_iter_ where the estimator has it, else the last row of fnn's history_."""
    if hasattr(model, "n_iter_"):
        return int(model.n_iter_)
    history = getattr(model, "history_", None)
    return int(history["epoch"].iloc[-1]) if history is not None and len(history) else None


def worker(args) -> None:
    """Import, load, reset the peak mark, time fit, read the peak, score; print one JSON line."""
    import warnings

    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(args.threads)
    from sklearn.exceptions import ConvergenceWarning

    model = estimator(args.worker, args)  # imports its library: counted in "MB after load"
    X, y, X_test, y_test = load(args.data, args.rows)
    after_load = rss_mb()
    reset_peak_rss()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", ConvergenceWarning)  # recorded, not printed
        wall0, cpu0 = time.perf_counter(), time.process_time()
        model.fit(X, y)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = peak_rss_mb()
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    blas = [
        f"{i['internal_api']} {i.get('version') or ''} threads={i['num_threads']}".replace("  ", " ")
        for i in threadpool_info()
    ]
    coefs = getattr(model, "coefs_", None)
    print(json.dumps({
        "contender": args.worker, "wall_s": wall, "cpu_s": cpu, "after_load_mb": after_load, "peak_mb": peak,
        "test_acc": accuracy, "n_iter": epochs_run(model), "epochs": args.epochs, "rows": int(X.shape[0]),
        "test_rows": int(X_test.shape[0]), "X_dtype": str(X.dtype),
        "weight_dtype": str(coefs[0].dtype) if coefs is not None else str(model.params_.layers[0].W.dtype),
        "convergence_warning": any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "blas": blas,
    }))


# ---------------------------------------------------------------- the parent: pairs and the table


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.platform()


def fnn_source() -> str:
    """Where the children's fnn comes from: its folder, and the git commit when it is a checkout
    (with "+ uncommitted changes" when fnn/ differs from it)."""
    import fnn

    root = Path(fnn.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "fnn"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"fnn from {root} (not a git checkout)"
    return f"fnn from {root}, commit {head}{' + uncommitted changes under fnn/' if dirty else ''}"


def machine_lines(args) -> list[str]:
    import numpy as np
    import sklearn

    return [
        f"machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, {cpu_name()}; "
        "load average %.2f %.2f %.2f at start" % os.getloadavg(),
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}",
        fnn_source(),
        f"threads: {args.threads} ({', '.join(f'{v}={args.threads}' for v in THREAD_VARS)} in each child, "
        f"and threadpoolctl.threadpool_limits({args.threads}))",
    ]


def run_one(args, contender: str) -> dict:
    """One fit in a fresh subprocess; its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender, "--data", str(args.data),
           "--epochs", str(args.epochs), "--hidden", str(args.hidden), "--batch", str(args.batch),
           "--lr", repr(args.lr), "--l2", repr(args.l2), "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.rows is not None:
        cmd += ["--rows", str(args.rows)]
    env = {**os.environ, **{v: str(args.threads) for v in THREAD_VARS}}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{NAMES[contender]} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values):
    return statistics.median(values) if values else float("nan")


def report(args, header: list[str], pairs: list[dict[str, dict]]) -> str:
    """The markdown report: header, one row per run, the summary."""
    runs = [(i, pair[c]) for i, pair in enumerate(pairs, 1) for c in pair]  # in the order they ran
    first = runs[0][1]
    lines = [f"# FNNClassifier vs MLPClassifier: {first['rows']:,} training rows, {first['test_rows']:,} test rows", ""]
    lines += [f"command: `{args.command}`", ""] + [f"- {h}" for h in header]
    for c in CONTENDERS:
        blas = pairs[0][c]["blas"]
        lines.append(f"- BLAS seen by the {NAMES[c]} child (threadpoolctl): {'; '.join(blas) or 'none'}")
    lines += [
        f"- network 784-{args.hidden}-10 ReLU, Adam lr {args.lr:g} constant, batch {args.batch}, "
        f"{args.epochs} epochs, L2 {args.l2:g} (fnn l2 = sklearn alpha), random_state {args.seed}; "
        f"X {first['X_dtype']}",
        "",
        "| pair | estimator | fit wall s | fit CPU s | MB after load | peak MB | test acc | n_iter | weights | ConvergenceWarning |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for i, r in runs:
        lines.append(
            f"| {i} | {NAMES[r['contender']]} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['after_load_mb']:.0f} | "
            f"{r['peak_mb']:.0f} | {r['test_acc']:.4f} | {r['n_iter']}/{r['epochs']} | {r['weight_dtype']} | "
            f"{'yes' if r['convergence_warning'] else 'no'} |"
        )
    wall = [p["fnn"]["wall_s"] / p["sklearn"]["wall_s"] for p in pairs]
    cpu = [p["fnn"]["cpu_s"] / p["sklearn"]["cpu_s"] for p in pairs]
    acc = [100 * (p["fnn"]["test_acc"] - p["sklearn"]["test_acc"]) for p in pairs]
    peak = {c: [p[c]["peak_mb"] for p in pairs] for c in CONTENDERS}
    grow = {c: [p[c]["peak_mb"] - p[c]["after_load_mb"] for p in pairs] for c in CONTENDERS}
    n_iter = [p["sklearn"]["n_iter"] for p in pairs]

    def each(values, fmt):
        return ", ".join(format(v, fmt) for v in values)

    lines += [
        "",
        "| summary | value |",
        "|---|---|",
        f"| time ratio fnn / sklearn, wall (median; each pair) | {median(wall):.2f} ({each(wall, '.2f')}) |",
        f"| time ratio fnn / sklearn, CPU (median; each pair) | {median(cpu):.2f} ({each(cpu, '.2f')}) |",
        f"| test accuracy fnn − sklearn, points (median; each pair) | {median(acc):+.2f} ({each(acc, '+.2f')}) |",
        f"| test accuracy fnn / sklearn (median) | {median([p['fnn']['test_acc'] for p in pairs]):.4f} / "
        f"{median([p['sklearn']['test_acc'] for p in pairs]):.4f} |",
        f"| peak MB fnn / sklearn (median) | {median(peak['fnn']):.0f} / {median(peak['sklearn']):.0f} |",
        f"| peak − after load MB fnn / sklearn (median) | {median(grow['fnn']):.0f} / {median(grow['sklearn']):.0f} |",
        f"| MLPClassifier ran all {args.epochs} epochs | "
        f"{'yes' if all(n == args.epochs for n in n_iter) else 'no'} (n_iter_ {each(n_iter, 'd')}) |",
        "",
        "Targets (issue 24): accuracy within 0.5 points, time ratio ≤ 0.8, fnn peak ≤ sklearn's: "
        f"accuracy {'met' if abs(median(acc)) <= 0.5 else 'not met'}, "
        f"time {'met' if median(wall) <= 0.8 else 'not met'}, "
        f"memory {'met' if median(peak['fnn']) <= median(peak['sklearn']) else 'not met'} (medians).",
    ]
    return "\n".join(lines) + "\n"


def parse(argv):
    p = argparse.ArgumentParser(
        prog="python scripts/estimator_vs_mlp.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pairs", type=int, default=3, help="rounds of one fnn and one sklearn fit, the order alternating (default 3)")
    p.add_argument("--epochs", type=int, default=20, help="FNNClassifier epochs and MLPClassifier max_iter (default 20)")
    p.add_argument("--rows", type=int, default=None, help="train on the first ROWS training rows only (default: all 60,000)")
    p.add_argument("--quick", action="store_true", help="2 epochs on 10,000 rows (overrides --epochs and --rows)")
    p.add_argument("--data", default=str(FASHION_DIR),
                   help=f'an IDX folder (train-*/t10k-* files; default {FASHION_DIR}), or "sample": fnn\'s 5,000 '
                        'bundled MNIST digits (4,000 train, 1,000 test), for a smoke test')
    p.add_argument("--threads", type=int, default=1, help="BLAS threads in each child (default 1)")
    p.add_argument("--hidden", type=int, default=256, help="hidden layer width (default 256)")
    p.add_argument("--batch", type=int, default=128, help="rows per Adam update (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's constant learning rate (default 1e-3)")
    p.add_argument("--l2", type=float, default=1e-4, help="fnn l2 = sklearn alpha (default 1e-4, MLPClassifier's default alpha)")
    p.add_argument("--seed", type=int, default=0, help="random_state of both (default 0)")
    p.add_argument("--out", type=Path, default=None, help="also write the report (markdown) to this file")
    p.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.rows = 2, 10_000
    for name in ("pairs", "epochs", "threads", "hidden", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.rows is not None and args.rows < 2:
        p.error(f"--rows must be at least 2, got {args.rows}")
    if args.data != "sample" and not Path(args.data).is_dir():
        p.error(f"--data {args.data}: no such folder (Fashion-MNIST's IDX files), or pass --data sample")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        worker(args)
        return 0
    args.command = " ".join(["python", "scripts/estimator_vs_mlp.py", *(sys.argv[1:] if argv is None else argv)])
    header = machine_lines(args)
    print("\n".join(header), flush=True)
    pairs = []
    for i in range(args.pairs):
        order = CONTENDERS if i % 2 == 0 else CONTENDERS[::-1]
        pair = {}
        for c in order:
            pair[c] = run_one(args, c)
            r = pair[c]
            print(f"pair {i + 1}/{args.pairs} {NAMES[c]}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, "
                  f"peak {r['peak_mb']:.0f} MB, test acc {r['test_acc']:.4f}, n_iter {r['n_iter']}", flush=True)
        pairs.append(pair)
    text = report(args, header, pairs)
    print()
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
