"""Steps `fnn train` and `fnn tune` share: load and split the data, run the training
(`fnn.run`) under a progress bar, and write the run folder (model, history, metrics, figures)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from tqdm import tqdm

from fnn.augment import describe
from fnn.checkpoint import save_checkpoint
from fnn.cli import sources
from fnn.cli.flags import FlagError
from fnn.config import TrainConfig
from fnn.conv import conv_stack_shape, square_image
from fnn.data import Splits, load_dataset, load_test_set, split
from fnn.errors import DataError
from fnn.files import atomic_path
from fnn.fitting import Monitor
from fnn.io import save_model
from fnn.run import RunResult, load_run_checkpoint, model_metadata, run_training


CHECKPOINT = "checkpoint.npz"


@contextlib.contextmanager
def leave_resumable(out: Path):
    """When the block is interrupted after a checkpoint was written, say where the run is and
    how to resume it (the message `fnn`'s interrupt handler prints)."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if (out / CHECKPOINT).is_file():
            stop.message = f"interrupted; the run so far is in {out}/: continue it with `fnn train --resume {out}`"
        raise


def default_out(prefix: str = "") -> Path:
    """runs/<prefix><YYYYmmdd-HHMMSS>, the default --out of commands that write a folder."""
    return Path("runs") / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"


def show_progress(progress: bool | None) -> bool:
    """--progress / --no-progress, or when neither was given: whether stderr is a terminal."""
    return progress if progress is not None else sys.stderr.isatty()


def download_progress(progress: bool | None):
    """A `progress(done, total, name)` callback drawing a tqdm bar per file on stderr, or None
    (progress: the --progress flag)."""
    if not show_progress(progress):
        return None
    bars: dict[str, tqdm] = {}

    def report(done: int, total: int | None, name: str) -> None:
        bar = bars.get(name) or bars.setdefault(
            name, tqdm(total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr, leave=False)
        )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return report


def load_splits(source: str, layout: str, seed: int, dev, test, progress: bool | None) -> Splits:
    """The data `source` split by `seed` into train/dev/test (stratified); the official test set
    if any. The arguments are the flags --data, --layout, --seed, --dev, --test, --progress
    (or a run's data record, which holds the first five under these names)."""
    downloads = download_progress(progress)
    data = load_dataset(source, layout=layout, progress=downloads)
    if data.y is None:
        raise DataError(f"{data.source} has no labels (a Kaggle test.csv?); training needs a labelled train.csv")
    labels = np.unique(data.y)
    if len(labels) < 2:
        note = sources.constant_label_note(data, layout)
        raise DataError(
            f"{note}; a classifier needs rows of at least two classes" if note else
            f"{data.source}: every row has label {labels[0]}: a classifier needs rows of at least two classes"
        )
    official = load_test_set(source, progress=downloads)
    try:
        return split(
            data,
            np.random.default_rng(seed),
            dev=dev,
            test=0 if official is not None else test,
            stratify=True,
            test_set=official,
        )
    except ValueError as error:  # sizes that do not fit this data set: --dev and --test
        raise FlagError(f"{error}; choose smaller --dev/--test for {len(data.X)} rows") from None


def check_conv_fits(config: TrainConfig, n_in: int, command: str) -> None:
    """FlagError when --conv or --augment cannot run on rows of n_in values (not square images,
    or blocks that shrink them to nothing), before any training."""
    if config.augment is not None and math.isqrt(n_in) ** 2 != n_in:
        raise FlagError(
            f"--augment {describe(config.augment)} distorts square images, but the rows have {n_in} columns "
            f"(784 = 28x28); leave --augment out for this data"
        )
    if not config.conv:
        return
    try:
        conv_stack_shape(square_image(n_in), config.conv, config.kernel)
    except ValueError as error:
        raise FlagError(f"--conv {','.join(map(str, config.conv))}: {error}; see 'fnn {command} --help'") from None


def augment_note(config: TrainConfig) -> str:
    """", augment shift=2,elastic=34:4" for the line a command prints before training; "" without."""
    return f", augment {describe(config.augment)}" if config.augment is not None else ""


def write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def train_and_save(config: TrainConfig, splits: Splits, folder: Path, data_record: dict, *, progress: bool | None,
                   on_dev: bool = False, checkpoints: bool = False, resume: Monitor | None = None) -> RunResult:
    """`fnn.run.run_training` under a progress bar (one tick per epoch), then the run folder:
    model.npz, history.csv, the run's figures and metrics.json.

    data_record: how splits was read and split (`flags.data_record`); progress: the --progress flag.
    checkpoints: write CHECKPOINT at every evaluation; when the run is interrupted, write the
    best model and the history as of that checkpoint beside it and re-raise (the folder is
    then resumable). resume: a Monitor loaded from such a checkpoint, to continue from. The
    checkpoint is removed once the run completes.
    """
    saved_with = {"config": attrs.asdict(config), "data": data_record}
    checkpoint = (lambda monitor: save_checkpoint(folder / CHECKPOINT, monitor, saved_with)) if checkpoints else None
    initial = resume.good.epoch if resume is not None else 0
    try:
        with tqdm(total=config.epochs, initial=initial, desc="refit" if on_dev else "train", unit="epoch",
                  disable=not show_progress(progress), file=sys.stderr) as bar:
            result = run_training(
                config, splits, data_record=data_record, on_dev=on_dev, on_row=functools.partial(_tick, bar),
                checkpoint=checkpoint, resume=resume,
            )
    except KeyboardInterrupt:
        if checkpoints and (folder / CHECKPOINT).is_file():
            _save_interrupted(folder, config, splits, data_record, on_dev)
        raise
    params = result.fit.best_params
    print(kept_line(result.fit.history, config.monitor))
    save_model(folder / "model.npz", params, result.metadata)
    write_csv(folder / "history.csv", result.fit.history)
    from fnn import plots  # matplotlib loads only when figures are drawn

    split_name, shown = next((name, part) for name, part in (("test", splits.test), ("dev", splits.dev),
                                                             ("train", result.train_set)) if len(part.X))
    figures = plots.run_figures(params, result.fit.history, shown.X, shown.y, shown.class_names,
                                split=split_name, data=str(data_record.get("source", "")) or None)
    for stem, figure in figures.items():
        plots.save_figure(figure, folder / f"{stem}.png")
    if config.augment is not None:  # what the network saw: training digits and their distortions
        samples = plots.augmented_samples(np.random.default_rng([config.seed, 1]), result.train_set.X, config.augment)
        plots.save_figure(samples, folder / "augmented_samples.png")
    write_json(folder / "metrics.json", result.summary)  # last: a folder with metrics.json is complete
    (folder / CHECKPOINT).unlink(missing_ok=True)  # nothing left to resume
    return result


def _tick(bar: tqdm, row: dict) -> None:
    """Print the history row as a line of its own (kept above the bar on a terminal, one per row
    in a pipe or a log), then move the bar to its epoch and show its loss (and dev accuracy)."""
    dev = "" if math.isnan(row["dev_acc"]) else f"; dev loss {row['dev_loss']:.4f}, accuracy {row['dev_acc']:.4f}"
    tqdm.write(f"epoch {int(row['epoch'])}/{bar.total}, step {int(row['step'])}: train loss {row['train_loss']:.4f}, "
               f"accuracy {row['train_acc']:.4f}{dev}; lr {row['lr']:.4g}", file=sys.stdout)
    bar.update(int(row["epoch"]) - bar.n)
    shown = {"loss": f"{row['train_loss']:.4f}"}
    if not math.isnan(row["dev_acc"]):  # NaN: no dev set
        shown["dev_acc"] = f"{row['dev_acc']:.4f}"
    bar.set_postfix(shown, refresh=False)


def kept_line(history: pd.DataFrame, monitor: str) -> str:
    """Which step's parameters the run keeps: the first best `monitor` row (fit's rule), or the
    last row when there is no dev set."""
    scores = history[monitor]
    if scores.isna().all():
        row = history.iloc[-1]
        return f"kept the final parameters, step {int(row.step)} (epoch {int(row.epoch)}): no dev set to choose by"
    row = history.loc[scores.idxmax() if monitor == "dev_acc" else scores.idxmin()]
    return (f"kept the parameters of step {int(row.step)} (epoch {int(row.epoch)}): best {'dev accuracy' if monitor == 'dev_acc' else 'dev loss'} "
            f"{row[monitor]:.4f}")


def _save_interrupted(folder: Path, config: TrainConfig, splits: Splits, data_record: dict, on_dev: bool) -> None:
    """model.npz (the best model) and history.csv as of the run's last checkpoint."""
    monitor = load_run_checkpoint(folder / CHECKPOINT, config, splits)
    metadata = model_metadata(config, splits, data_record, on_dev=on_dev, interrupted_at_step=monitor.good.step)
    save_model(folder / "model.npz", monitor.best_params, metadata)
    write_csv(folder / "history.csv", pd.DataFrame(list(monitor.rows)))


def print_summary(summary: dict, out: Path) -> None:
    """The run's stop message, its accuracy on each split and its time; where it was written."""
    table = ", ".join(f"{name} accuracy {s['accuracy']:.4f}" for name, s in summary["scores"].items())
    print(f"{summary['message']}; {table}; trained in {summary['seconds']:.1f} s")
    print(f"wrote {out}/")
