"""Plain gradient descent, SGD with momentum and Adam on the same data from the same weights.

Each optimizer starts from ONE He-initialised network and sees the same stream of mini-batches
(the same seed drives the shuffles), so the curves differ only by the update rule. Prints a table
of final dev and test accuracy and training seconds, and writes the curves (training loss and dev
accuracy against the step) to `optimizers.png` and the table to `optimizers.csv` in --out.

    python scripts/compare_optimizers.py [--data sample] [--epochs 10] [--out runs/compare_optimizers]

Learning rates are each rule's customary one (--lr-gd, --lr-sgd, --lr-adam); the schedule is
constant so the rules are compared, not schedules.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import pandas as pd

import fnn
from fnn import plots
from fnn.optim import adam, gd, sgd
from fnn.fitting import fit
from fnn.training import evaluate


def describe_blas() -> str:
    """The BLAS numpy uses and its thread count, via threadpoolctl when it is installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS unknown (pip install threadpoolctl to report it)"
    return ", ".join(f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)" for i in threadpool_info())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default="sample", help="any source fnn.load_dataset takes")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per optimizer")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per update")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units")
    parser.add_argument("--lr-gd", type=float, default=0.1, help="learning rate of plain gradient descent")
    parser.add_argument("--lr-sgd", type=float, default=0.05, help="learning rate of SGD with momentum 0.9")
    parser.add_argument("--lr-adam", type=float, default=1e-3, help="learning rate of Adam")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_optimizers"), help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    # The split `fnn train` makes: 10% dev, 10% test, or the official test set when there is one.
    data = fnn.load_dataset(args.data)
    official = fnn.load_test_set(args.data)
    splits = fnn.split(
        data, np.random.default_rng(args.seed), dev=0.1, test=0 if official is not None else 0.1,
        stratify=True, test_set=official,
    )
    init_seed, batch_seed = np.random.SeedSequence(args.seed).spawn(2)
    params0 = fnn.init(np.random.default_rng(init_seed), (data.X.shape[1], args.hidden, len(data.class_names)))

    optimizers = {
        f"gd (lr {args.lr_gd:g})": gd(args.lr_gd),
        f"sgd + momentum 0.9 (lr {args.lr_sgd:g})": sgd(args.lr_sgd, momentum=0.9),
        f"adam (lr {args.lr_adam:g})": adam(args.lr_adam),
    }
    rows, histories = [], {}
    for name, optimizer in optimizers.items():
        # A fresh Generator in the same state for each rule: the same batches in the same order.
        result = fit(np.random.default_rng(batch_seed), params0, optimizer, splits.train, splits.dev, epochs=args.epochs, batch_size=args.batch_size)
        histories[name] = result.history
        last = result.history.iloc[-1]
        rows.append(
            {
                "optimizer": name,
                "dev_acc": last["dev_acc"],
                "test_acc": evaluate(result.state.params, splits.test.X, splits.test.y)[1],
                "train_loss": last["train_loss"],
                "seconds": last["seconds"],
                "stopped": result.stopped,
            }
        )
    table = pd.DataFrame(rows)

    blas = describe_blas()
    print(
        f"{args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev / {len(splits.test.X)} test; "
        f"784-{args.hidden}-10, {args.epochs} epochs of batch {args.batch_size}, seed {args.seed}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {blas}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("(accuracies of the final parameters; seconds = training time, evaluations excluded)")
    plots.save_figure(plots.optimizer_comparison(histories, x="step"), args.out / "optimizers.png")
    with fnn.atomic_path(args.out / "optimizers.csv") as tmp:
        table.to_csv(tmp, index=False)
    print(f"wrote {args.out}/optimizers.png and optimizers.csv")


if __name__ == "__main__":
    main()
