"""`fnn train`: split the data, train, score on every split, write the run folder; or continue an
interrupted run (`--resume RUN_DIR`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from fnn.checkpoint import read_metadata
from fnn.cli import flags, runs
from fnn.config import TrainConfig
from fnn.files import staged_folder
from fnn.run import load_run_checkpoint
from fnn.text import count


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "train",
        parents=[flags.data_flags(), flags.training_flags(search=False), common],
        formatter_class=flags.Formatter,
        help="train a network and write the model, its history, metrics and figures",
        description=(
            "Split the data (seeded, stratified), train a 784-hidden-10 network (ReLU unless "
            "--activation says otherwise) on the train split and write into --out: model.npz, "
            "history.csv, metrics.json (train/dev/test accuracy and loss, seconds, config, BLAS) "
            "and the figures training_metrics.png, training_health.png, confusion_matrix.png "
            "(test split), sample_predictions.png and first_layer_weights.png. The saved "
            "parameters are those of the run's best dev accuracy. While it trains, the folder "
            "holds checkpoint.npz (updated at every evaluation); Ctrl-C or SIGTERM leaves the run "
            "at --out with the best model and history so far, and --resume continues it."
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<timestamp>/)")
    parser.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR",
        help="continue the interrupted run in RUN_DIR (its own flags are used) and complete its folder",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="discard what a killed run with the same --out left behind (a hidden .OUT.partial-* folder)",
    )
    parser.set_defaults(run=run)


def _leftovers(out: Path) -> list[Path]:
    """Hidden staging folders a killed run with this --out left behind."""
    return sorted(out.parent.glob(f".{out.name}.partial-*")) if out.parent.is_dir() else []


def run(args) -> int:
    if args.resume is not None:
        return _resume(args)
    config = flags.config(args)
    out = args.out or runs.default_out()
    left = _leftovers(out)
    if left and not args.force:
        resumable = [p for p in left if (p / runs.CHECKPOINT).is_file()]
        offer = f"resume it with `fnn train --resume {resumable[0]}`, or " if resumable else ""
        raise flags.FlagError(
            f"a run with --out {out} was killed before it finished and left {left[0]}; "
            f"{offer}pass --force to discard it"
        )
    for folder in left:
        shutil.rmtree(folder)
    record = flags.data_record(args)
    with runs.leave_resumable(out), staged_folder(out, keep_interrupted=True) as folder:
        splits = runs.load_splits(**record, progress=args.progress)
        runs.check_conv_fits(config, splits.train.X.shape[1], "train")
        sizes = (splits.train.X.shape[1], *config.hidden, len(splits.train.class_names))
        dropout = f", dropout {config.dropout:g}" if config.dropout else ""
        conv = f"conv {flags.format_sizes(config.conv)} ({config.kernel}x{config.kernel}) + " if config.conv else ""
        print(
            f"data {args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev / "
            f"{len(splits.test.X)} test rows; network {conv}{flags.format_sizes(sizes)} {config.activation}{dropout}, "
            f"{config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
            f"{count(config.epochs, 'epoch')}{runs.augment_note(config)}"
        )
        result = runs.train_and_save(config, splits, folder, record, progress=args.progress, checkpoints=True)
    runs.print_summary(result.summary, out)
    return 0


def _resume(args) -> int:
    """Continue the run in args.resume from its checkpoint, with the flags it was started with."""
    folder = args.resume
    saved = read_metadata(folder / runs.CHECKPOINT)
    config, record = TrainConfig(**saved["config"]), saved["data"]
    splits = runs.load_splits(**record, progress=args.progress)
    monitor = load_run_checkpoint(folder / runs.CHECKPOINT, config, splits)
    print(f"resuming {folder} at step {monitor.good.step} (epoch {monitor.good.epoch} of {config.epochs})")
    with runs.leave_resumable(folder):
        result = runs.train_and_save(
            config, splits, folder, record, progress=args.progress, checkpoints=True, resume=monitor
        )
    runs.print_summary(result.summary, folder)
    return 0
