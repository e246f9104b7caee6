"""`fnn train`: split the data, train, score on every split, write the run folder."""

from __future__ import annotations

from pathlib import Path

from fnn.cli import flags, runs
from fnn.files import staged_folder


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "train",
        parents=[flags.data_flags(seeded=True), flags.training_flags(search=False), common],
        formatter_class=flags.Formatter,
        help="train a network and write the model, its history, metrics and figures",
        description=(
            "Split the data (seeded, stratified), train a 784-hidden-10 network (ReLU unless "
            "--activation says otherwise) on the train split and write into --out: model.npz, "
            "history.csv, metrics.json (train/dev/test accuracy and loss, seconds, config, BLAS) "
            "and the figures training_metrics.png, training_health.png, confusion_matrix.png "
            "(test split), sample_predictions.png and first_layer_weights.png. The saved "
            "parameters are those of the run's best dev accuracy."
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<timestamp>/)")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = flags.config(args)
    out = args.out or runs.default_out()
    with staged_folder(out) as folder:
        splits = runs.load_splits(args)
        sizes = (splits.train.X.shape[1], *config.hidden, len(splits.train.class_names))
        dropout = f", dropout {config.dropout:g}" if config.dropout else ""
        print(
            f"data {args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev / "
            f"{len(splits.test.X)} test rows; network {flags.format_sizes(sizes)} {config.activation}{dropout}, "
            f"{config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
            f"{config.epochs} epochs"
        )
        summary = runs.train_and_save(args, config, splits, folder)
    runs.print_summary(summary, out)
    return 0
