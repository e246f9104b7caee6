"""How much slower an Adam epoch is than an SGD-momentum epoch, measured in pairs.

    python scripts/adam_vs_sgd.py                       # 784-128-10 and 784-512-10, 60 pairs
    python scripts/adam_vs_sgd.py --hidden 512 --pairs 40 --threads 1

Two training folds run side by side in one process, the same `train_step` with `sgd(0.05,
momentum=0.9)` and with `adam(1e-3)` (the Epoch benchmark's two), on the same stream of batches (random images of
Fashion-MNIST's shape, 128 rows; the time of a dense network does not depend on the pixels).
They take turns: each pair is a block of `--block` steps of SGD then the same block of
Adam, timed with the CPU clock. The figure is the median over the pairs of Adam's block time
over SGD's: the two halves of a pair run seconds apart, so the slow and fast spells of a
shared machine (on the machine of the README's figures, a whole process can run 2x slower than
the next one) cancel out of each ratio instead of landing on one optimizer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import toolz
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import common  # noqa: E402
from benchmarks.bench_train import OPTIMIZERS, sizes_for  # noqa: E402
from fnn.training import batches, init_state, train_step  # noqa: E402


def paired_ratios(hidden: int, pairs: int, block: int, batch: int) -> tuple[list[float], float, float]:
    """(Adam/SGD block-time ratios, SGD's and Adam's best seconds per step) over `pairs` pairs;
    the first two pairs warm the buffers up and are left out."""
    X, y = common.synthetic_data(common.N_TRAIN, "float32")
    epochs = -(-(pairs + 2) * block * batch // common.N_TRAIN)  # enough batches for every block
    stream = batches(np.random.default_rng(common.SEED), X, y, batch, epochs)
    optimizers = {name: OPTIMIZERS[name]() for name in ("sgd", "adam")}  # the Epoch benchmark's two
    steps = {name: partial(train_step, optimizer=opt, donate=True) for name, opt in optimizers.items()}
    states = {name: init_state(common.network(sizes_for(hidden), "float32"), opt) for name, opt in optimizers.items()}
    seconds: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(pairs + 2):
        chunk = list(toolz.take(block, stream))
        for name in optimizers:
            start = time.process_time()
            states[name] = toolz.reduce(steps[name], chunk, states[name])
            seconds[name].append(time.process_time() - start)
    ratios = [a / s for a, s in zip(seconds["adam"][2:], seconds["sgd"][2:])]
    return ratios, min(seconds["sgd"]) / block, min(seconds["adam"]) / block


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=lambda s: [int(h) for h in s.split(",")], default=[128, 512],
                   help="comma separated hidden widths (default 128,512)")
    p.add_argument("--pairs", type=int, default=60, help="timed pairs of blocks (default 60)")
    p.add_argument("--block", type=int, default=47, help="steps per block (default 47, a tenth of an epoch)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = p.parse_args(argv)
    if min(args.hidden) < 1 or args.pairs < 1 or args.block < 1 or args.batch < 1 or args.threads < 1:
        p.error("--hidden, --pairs, --block, --batch and --threads must be positive")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = [f"{i['internal_api']} {i['version']} ({i.get('architecture')}) {i['num_threads']} threads"
                for i in threadpool_info() if i["user_api"] == "blas"]
        print(f"NumPy {np.__version__}, BLAS {', '.join(blas)}, CPU clock, batch {args.batch}, "
              f"{args.pairs} pairs of {args.block} steps")
        for hidden in args.hidden:
            ratios, sgd_step, adam_step = paired_ratios(hidden, args.pairs, args.block, args.batch)
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            print(f"784-{hidden}-10: Adam/SGD epoch time {median:.3f} (median of pairs; quartiles "
                  f"{q1:.3f}-{q3:.3f}); best step SGD {sgd_step * 1e3:.3f} ms, Adam {adam_step * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
