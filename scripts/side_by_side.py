"""fnn vs PyTorch vs scikit-learn on Fashion-MNIST: same data, architecture, batch, optimizer.

    python scripts/side_by_side.py                      # 784-128-10 and 784-512-10, 10 epochs
    python scripts/side_by_side.py --quick              # 2 epochs on 10,000 rows, 784-128-10
    python scripts/side_by_side.py --epochs 20 --hidden 128 --out side_by_side.md
    python scripts/side_by_side.py --conv 32,64 --hidden 128 --frameworks fnn,pytorch   # the CNN

Every framework trains the same 784-H-10 ReLU network with cross-entropy, mini-batches of
`--batch` rows gathered from one fresh permutation per epoch, SGD with momentum 0.9 (heavy ball,
no Nesterov, no dampening) at the same constant learning rate, for the same epochs, in
float32 on the CPU. fnn and PyTorch start from the same He-initialised weights;
scikit-learn's MLPClassifier uses its own (Glorot) initialisation.

Each peer runs the loop its own users write, doing no work they would not do:
  fnn           `toolz.reduce` of `fnn.train_step` (donate=True) over `fnn.batches`, one epoch at a time;
  PyTorch       `nn.Sequential` of Linear and ReLU, `nn.CrossEntropyLoss`, `torch.optim.SGD`,
                `torch.randperm` slices, `zero_grad(set_to_none=True)`, backward, step; with
                --l2 > 0 the penalty is SGD's `weight_decay` = l2 / batch on the weights only
                (fnn's l2 / (2m) Σ||W||², exactly so for every full batch), and at l2 = 0 there is
                no penalty term at all;
  scikit-learn  `MLPClassifier.partial_fit` once per epoch (it shuffles and batches itself, and
                sums its loss over the batches as it always does).
Each (framework, H) run is a fresh subprocess, so its peak memory (VmHWM, reset after the data
are loaded) is its own. The runs of one round take turns epoch by epoch, one training at a
time: the table keeps each framework's fastest run of `--repeats` rounds, and the "epoch by
epoch" lines give the median of fnn's epoch seconds over each peer's same epoch, which ran
seconds apart from it, so a slow spell of a shared machine cancels out of the ratio instead of
landing on one framework (the fastest-run ratio on the README's machine moved by 0.1 from one
command to the next). Timed: training only; the per-epoch test accuracy behind "time to
target" is measured outside the timed region.
Memory: "MB after load" is the process's resident size once the data are in memory (the
interpreter, the framework's libraries and the float32 arrays), "peak MB" the highest
resident size during training. PyTorch and scikit-learn are optional
(`pip install .[bench]`): a missing one is skipped with a note.

Before the table: the machine, the BLAS libraries and thread counts, and the equivalence oracle
(fnn's float64 loss and gradients vs PyTorch autograd from the same weights and batch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import fnn  # noqa: E402
from fnn.allocator import keep_freed_memory  # noqa: E402
from fnn.optim import sgd  # noqa: E402
from fnn.training import batches, evaluate, init_state, train_step  # noqa: E402

FRAMEWORKS = ("fnn", "pytorch", "scikit-learn")
PEERS = FRAMEWORKS[1:]
MOMENTUM = 0.9
# wall: time.perf_counter; cpu: time.process_time, the CPU seconds of all the process's threads,
# which other processes' load disturbs far less (with --threads 1 it equals wall time when idle)
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


# ---------------------------------------------------------------- one run, in its own process


def load(n_train: int | None):
    """Fashion-MNIST train (optionally its first n_train rows) and its official test set."""
    train, test = fnn.load_dataset("fashion-mnist"), fnn.load_test_set("fashion-mnist")
    if n_train is not None:
        train = fnn.data.Dataset(train.X[:n_train], train.y[:n_train], train.class_names, train.source)
    return train, test


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    """Resident memory now, in MB (Linux /proc; NaN elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb(reset: bool) -> float:
    """Peak resident memory in MB: VmHWM since the reset, else the whole process's ru_maxrss."""
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def network(args, hidden: int, dtype=np.float32):
    """fnn's initial network, 784-hidden-10 after the --conv blocks (if any), from --seed."""
    return fnn.init(np.random.default_rng(args.seed), (784, hidden, 10), dtype=dtype, conv=args.conv)


def arch(args, hidden: int) -> str:
    return (f"conv{','.join(map(str, args.conv))}-" if args.conv else "") + f"784-{hidden}-10"


def run_fnn(args, train, test) -> dict:
    """fnn's public loop: the fold of train_step over each epoch's batches, timed per epoch. A CNN
    run first calls `fnn.allocator.keep_freed_memory()`, as README tells a user's program to."""
    import toolz

    if args.conv:
        keep_freed_memory()
    params = network(args, args.hidden)
    optimizer = sgd(args.lr, momentum=MOMENTUM)
    step = partial(train_step, optimizer=optimizer, l2=args.l2, donate=True)  # each state is used once
    state, rng = init_state(params, optimizer), np.random.default_rng(args.seed + 1)
    seconds, accuracy = [], []
    for _ in range(args.epochs):
        args.gate()
        start = CLOCK[args.clock]()
        state = toolz.reduce(step, batches(rng, train.X, train.y, args.batch, 1), state)
        seconds.append(CLOCK[args.clock]() - start)
        accuracy.append(evaluate(state.params, test.X, test.y)[1])
    return {"epoch_seconds": seconds, "epoch_test_acc": accuracy}


def run_pytorch(args, train, test) -> dict:
    """The loop a competent PyTorch user writes: nn.Sequential, CrossEntropyLoss, torch.optim.SGD
    (weight decay on the weights only, and only when --l2 > 0), randperm slices,
    zero_grad(set_to_none=True); fnn's initial weights (`benchmarks.peers.torch_mlp`)."""
    import torch

    from benchmarks.peers import torch_mlp

    torch.manual_seed(args.seed)
    model = torch_mlp(network(args, args.hidden))
    linears = [m for m in model if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    groups = [{"params": [m.weight for m in linears], "weight_decay": args.l2 / args.batch},
              {"params": [m.bias for m in linears], "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    X_test, y_test = torch.from_numpy(test.X), torch.from_numpy(test.y)
    shuffle = torch.Generator().manual_seed(args.seed + 1)
    seconds, accuracy = [], []
    for _ in range(args.epochs):
        args.gate()
        start = CLOCK[args.clock]()
        perm = torch.randperm(X.shape[0], generator=shuffle)
        for s in range(0, X.shape[0], args.batch):
            idx = perm[s : s + args.batch]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(X[idx]), y[idx]).backward()
            optimizer.step()
        seconds.append(CLOCK[args.clock]() - start)
        with torch.no_grad():
            accuracy.append((model(X_test).argmax(1) == y_test).double().mean().item())
    return {"epoch_seconds": seconds, "epoch_test_acc": accuracy, "torch_threads": torch.get_num_threads()}


def run_sklearn(args, train, test) -> dict:
    """MLPClassifier with the same optimizer and batch, one `partial_fit` call (one epoch) at a time."""
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,), activation="relu", solver="sgd", alpha=args.l2,
        batch_size=args.batch, learning_rate="constant", learning_rate_init=args.lr,
        momentum=MOMENTUM, nesterovs_momentum=False, shuffle=True, random_state=args.seed,
    )
    classes = np.arange(10)
    seconds, accuracy = [], []
    for _ in range(args.epochs):
        args.gate()
        start = CLOCK[args.clock]()
        model.partial_fit(train.X, train.y, classes=classes)
        seconds.append(CLOCK[args.clock]() - start)
        accuracy.append(float(model.score(test.X, test.y)))
    return {"epoch_seconds": seconds, "epoch_test_acc": accuracy, "dtype": str(model.coefs_[0].dtype)}


MODULES = {"fnn": "fnn", "pytorch": "torch", "scikit-learn": "sklearn.neural_network"}
RUNNERS = {"fnn": run_fnn, "pytorch": run_pytorch, "scikit-learn": run_sklearn}


def gate(commands, replies) -> None:
    """Before each epoch: say "ready" and wait for the parent's "go" (see `run_round`)."""
    print("ready", file=replies, flush=True)
    if commands.readline().strip() != "go":
        raise SystemExit("side_by_side worker: the parent went away")


def worker(args) -> None:
    """Import the framework, load the data, reset the peak-memory mark, train, print one JSON line."""
    __import__(MODULES[args.worker])  # its libraries count in "MB after load", not in the peak
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # numpy's BLAS (fnn, scikit-learn); torch below
        if args.worker == "pytorch":
            import torch

            torch.set_num_threads(args.threads)
    train, test = load(args.n_train)
    base = rss_mb()
    reset = reset_peak_rss()
    args.gate = partial(gate, sys.stdin, sys.stdout)
    result = RUNNERS[args.worker](args, train, test)
    result.update(base_rss_mb=base, peak_rss_mb=peak_rss_mb(reset), n_train=train.X.shape[0])
    print(json.dumps(result))


# ---------------------------------------------------------------- the parent: header, runs, table


def available(framework: str) -> str | None:
    """None if the framework can run, else why not."""
    module = MODULES[framework]
    try:
        __import__(module)
    except ImportError:
        return f"{framework} skipped: `import {module}` failed (pip install .[bench])"
    return None


def print_skip(framework: str) -> bool:
    why = available(framework)
    if why:
        print(why)
    return why is not None


def machine_lines() -> list[str]:
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}, "
             f"load average %.2f %.2f %.2f" % os.getloadavg(),
             f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info

        for i in threadpool_info():
            lines.append(f"  {i['user_api']}: {i['internal_api']} {i.get('version') or ''} "
                         f"{i.get('architecture') or ''} threads={i['num_threads']} ({Path(i['filepath']).name})")
    except ImportError:
        lines.append("  threadpoolctl not installed: BLAS library and threads unknown")
    try:
        import torch

        lines.append(f"torch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}")
    except ImportError:
        pass
    try:
        import sklearn

        lines.append(f"scikit-learn {sklearn.__version__}")
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    lines.append(f"thread/BLAS environment: {env or 'none set'}")
    return lines


def oracle_line(args, train, hidden: int, l2: float) -> str:
    """fnn vs torch autograd in float64 on one batch of real images, from the same weights."""
    if available("pytorch"):
        return "oracle: skipped (PyTorch not installed)"
    from benchmarks.peers import torch_value_and_grads

    net = network(args, hidden, np.float64)
    X, y = train.X[:128].astype(np.float64), train.y[:128]
    (v1, g1), (v2, g2) = fnn.value_and_grads(net, X, y, l2), torch_value_and_grads(net, X, y, l2)
    dg = max(float(np.abs(a - b).max()) for a, b in zip(fnn.tree_leaves(g1), fnn.tree_leaves(g2)))
    ok = abs(v1 - v2) <= 1e-6 and dg <= 1e-6
    return (f"oracle: fnn vs PyTorch autograd, float64, {arch(args, hidden)}, batch 128, l2={l2:g}: "
            f"|ΔJ| = {abs(v1 - v2):.1e}, max |Δgrad| = {dg:.1e} -> {'match' if ok else 'MISMATCH'} (tolerance 1e-6)")


def worker_command(args, framework: str, hidden: int) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--hidden", str(hidden),
           "--epochs", str(args.epochs), "--lr", repr(args.lr), "--l2", repr(args.l2),
           "--batch", str(args.batch), "--seed", str(args.seed), "--clock", args.clock]
    if args.conv:
        cmd += ["--conv", ",".join(map(str, args.conv))]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.n_train is not None:
        cmd += ["--n-train", str(args.n_train)]
    return cmd


def run_round(args, frameworks: list[str], hidden: int) -> dict[str, dict]:
    """One run of each framework, each in its own process, taking turns epoch by epoch: every
    worker loads its data and stops at its first epoch's gate; then for each epoch, one
    framework at a time is told "go" and the next waits until it is back at a gate (or done),
    so exactly one trains at any moment and epoch e of every framework runs within seconds of
    the others' epoch e (see `paired_ratios`)."""
    # stderr goes to a file: a worker's warnings must never fill a pipe nobody reads mid-run
    logs = {f: tempfile.TemporaryFile("w+") for f in frameworks}
    procs = {f: subprocess.Popen(worker_command(args, f, hidden), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=logs[f], text=True, cwd=ROOT) for f in frameworks}

    def reply(framework: str) -> str:
        line = procs[framework].stdout.readline()
        if not line:
            procs[framework].wait()
            logs[framework].seek(0)
            raise RuntimeError(f"{framework} (H={hidden}) failed:\n{logs[framework].read()[-3000:]}")
        return line.strip()

    try:
        last = {f: reply(f) for f in frameworks}  # "ready" once the data are loaded
        for _ in range(args.epochs):
            for f in frameworks:
                procs[f].stdin.write("go\n")
                procs[f].stdin.flush()
                last[f] = reply(f)  # "ready" for the next epoch, or the result line after the last
        for f in frameworks:
            procs[f].stdin.close()
            procs[f].wait()
        return {f: json.loads(last[f]) for f in frameworks}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()


def paired_ratios(rounds: list[dict[str, dict]]) -> list[tuple[str, float, float, float, int]]:
    """(peer, median, lower quartile, upper quartile, pairs) of fnn's epoch seconds over each
    peer's same epoch of the same round, first epochs (warm-up) left out: the two ran back to
    back, so a slow spell of the machine falls on both instead of on one framework's run."""
    out = []
    for peer in PEERS:
        pairs = [a / b for r in rounds if "fnn" in r and peer in r
                 for a, b in zip(r["fnn"]["epoch_seconds"][1:], r[peer]["epoch_seconds"][1:])]
        if pairs:
            q1, q2, q3 = np.percentile(pairs, [25, 50, 75])
            out.append((peer, float(q2), float(q1), float(q3), len(pairs)))
    return out


def summarise(framework: str, label: str, result: dict, target: float) -> dict:
    seconds = np.array(result["epoch_seconds"])
    acc = np.array(result["epoch_test_acc"])
    elapsed = np.cumsum(seconds)
    hit = np.flatnonzero(acc >= target)
    return {
        "framework": framework,
        "arch": label,
        "s/epoch": float(seconds.mean()),
        "median s/epoch": float(np.median(seconds)),
        "samples/s": result["n_train"] / float(seconds.mean()),
        "test acc": float(acc[-1]),
        f"s to {target:.2f}": float(elapsed[hit[0]]) if hit.size else float("nan"),
        "MB after load": result["base_rss_mb"],
        "peak MB": result["peak_rss_mb"],
    }


def table(rows: list[dict], markdown: bool) -> str:
    cols = list(rows[0])

    def cell(v):
        if isinstance(v, float):
            return "-" if np.isnan(v) else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4f}" if v < 1 else f"{v:.3f}"
        return str(v)

    cells = [[cell(r[c]) for c in cols] for r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                         + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*cols)] + [fmt.format(*r) for r in cells])


def ratios(rows: list[dict]) -> list[str]:
    """fnn's seconds per epoch over each peer's, per architecture."""
    lines = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        by = {r["framework"]: r["s/epoch"] for r in rows if r["arch"] == arch}
        for peer in PEERS:
            if "fnn" in by and peer in by:
                lines.append(f"{arch}: fnn / {peer} seconds per epoch = {by['fnn'] / by[peer]:.2f}")
    return lines


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=lambda s: [int(h) for h in s.split(",")], default=[128, 512],
                   help="hidden widths, comma separated (default 128,512)")
    p.add_argument("--conv", type=lambda s: tuple(int(c) for c in s.split(",")), default=(),
                   help="convolutional blocks before the hidden layer, e.g. 32,64 (fnn and PyTorch only)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l2", type=float, default=0.0, help="fnn's l2 = scikit-learn's alpha (default 0)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=None, help="use only the first N training rows")
    p.add_argument("--target", type=float, default=0.88, help="test accuracy for the time-to-target column")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma separated subset of " + ",".join(FRAMEWORKS))
    p.add_argument("--threads", type=int, help="BLAS / torch threads in every run (default: the libraries' own)")
    p.add_argument("--clock", choices=list(CLOCK), default="wall", help="wall (default) or cpu seconds")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds, each running every framework once, epoch by epoch in turns; the table keeps the fastest run")
    p.add_argument("--quick", action="store_true", help="2 epochs on 10,000 rows, hidden 128 only")
    p.add_argument("--out", type=Path, help="also write the table: .md for markdown, else CSV")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.hidden = 2, args.n_train or 10_000, args.hidden[:1]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        args.hidden = args.hidden[0]
        worker(args)
        return 0
    for line in machine_lines():
        print(line)
    train, _ = load(None)
    print(oracle_line(args, train, args.hidden[0], args.l2 or 1e-4))
    print(f"data: Fashion-MNIST, {args.n_train or train.X.shape[0]} training rows, 10,000 test rows; "
          f"batch {args.batch}, SGD momentum {MOMENTUM} lr {args.lr:g}, l2 {args.l2:g}, {args.epochs} epochs, float32, "
          f"best of {args.repeats} round(s), epochs in turns, {args.clock} clock, threads {args.threads or 'default'}")
    frameworks = [f for f in args.frameworks.split(",") if not print_skip(f)]
    if args.conv and "scikit-learn" in frameworks:
        print("scikit-learn: skipped (MLPClassifier has no convolutional layers)")
        frameworks.remove("scikit-learn")
    rows, paired = [], []
    for hidden in args.hidden:
        # rounds, each framework's fastest run kept for the table: load from other processes
        # slows runs down, never up; the paired lines use every epoch of every round
        rounds = []
        for _ in range(args.repeats):
            rounds.append(run_round(args, frameworks, hidden))
            print("  done: %s, s/epoch %s" % (arch(args, hidden), ", ".join(
                f"{f} {np.mean(r['epoch_seconds']):.3f}" for f, r in rounds[-1].items())), file=sys.stderr, flush=True)
        for framework in frameworks:
            best = min((r[framework] for r in rounds), key=lambda r: sum(r["epoch_seconds"]))
            rows.append(summarise(framework, arch(args, hidden), best, args.target))
        paired += [f"{arch(args, hidden)}: fnn / {peer} epoch by epoch = {q2:.2f} (median of {n} pairs; quartiles "
                   f"{q1:.2f}-{q3:.2f})" for peer, q2, q1, q3, n in paired_ratios(rounds)]
    print(table(rows, markdown=False))
    for line in ratios(rows) + paired:
        print(line)
    if args.out:
        if args.out.suffix == ".md":
            args.out.write_text(table(rows, markdown=True) + "\n\n" + "\n".join(ratios(rows) + paired) + "\n")
        else:
            import pandas as pd

            pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
