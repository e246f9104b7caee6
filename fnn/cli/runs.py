"""Steps `fnn train` and `fnn tune` share: load and split the data, train under a progress bar,
score, and write a run folder (model, history, metrics, figures)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info
from tqdm import tqdm

from fnn.cli.flags import FlagError
from fnn.checkpoint import save_checkpoint
from fnn.config import TrainConfig, train
from fnn.data import Dataset, concat, load_dataset, load_test_set, split
from fnn.errors import DataError, TrainingDiverged
from fnn.files import atomic_path
from fnn.io import save_model
from fnn.params import layer_sizes
from fnn.train import evaluate


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


def show_progress(args) -> bool:
    """--progress / --no-progress, or when neither was given: whether stderr is a terminal."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


def download_progress(args):
    """A `progress(done, total, name)` callback drawing a tqdm bar per file on stderr, or None."""
    if not show_progress(args):
        return None
    bars: dict[str, tqdm] = {}

    def progress(done: int, total: int | None, name: str) -> None:
        bar = bars.get(name) or bars.setdefault(
            name, tqdm(total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr, leave=False)
        )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return progress


def load_splits(args):
    """--data split by --seed into train/dev/test (stratified); the official test set if any."""
    progress = download_progress(args)
    data = load_dataset(args.data, layout=args.layout, progress=progress)
    if data.y is None:
        raise DataError(f"{data.source} has no labels (a Kaggle test.csv?); training needs a labelled train.csv")
    official = load_test_set(args.data, progress=progress)
    try:
        return split(
            data,
            np.random.default_rng(args.seed),
            dev=args.dev,
            test=0 if official is not None else args.test,
            stratify=True,
            test_set=official,
        )
    except ValueError as error:  # sizes that do not fit this data set: --dev and --test
        raise FlagError(f"{error}; choose smaller --dev/--test for {len(data.X)} rows") from None


def blas() -> list[dict]:
    """The BLAS libraries this process runs, with their thread counts (threadpoolctl): results
    depend on them, since the thread count changes the order of a product's sums."""
    return [
        {key: info.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
        for info in threadpool_info()
        if info["user_api"] == "blas"
    ]


def fit_with_progress(args, config: TrainConfig, train_set: Dataset, dev_set: Dataset | None, desc: str = "train",
                      checkpoint=None, resume=None):
    """`train` under a progress bar (one tick per epoch); TrainingDiverged if the loss blew up.
    checkpoint, resume: as `fnn.fit.fit` takes them."""
    dev_set = dev_set if dev_set is not None and len(dev_set.X) else None
    initial = resume.good.epoch if resume is not None else 0
    with tqdm(total=config.epochs, initial=initial, desc=desc, unit="epoch", disable=not show_progress(args), file=sys.stderr) as bar:

        def tick(row: dict) -> None:
            bar.update(int(row["epoch"]) - bar.n)
            shown = {"loss": f"{row['train_loss']:.4f}"}
            if dev_set is not None:
                shown["dev_acc"] = f"{row['dev_acc']:.4f}"
            bar.set_postfix(shown, refresh=False)

        result = train(
            np.random.default_rng(config.seed), config, train_set, dev_set, callback=tick,
            checkpoint=checkpoint, resume=resume,
        )
    if result.stopped == "diverged":
        raise TrainingDiverged(f"training {result.message}")
    return result


def scores(params, parts: dict[str, Dataset]) -> dict:
    """{name: {accuracy, loss, rows}} for each non-empty labelled part; loss without the L2 term."""
    table = {}
    for name, dataset in parts.items():
        if len(dataset.X):
            loss, acc = evaluate(params, dataset.X, dataset.y)
            table[name] = {"accuracy": acc, "loss": loss, "rows": len(dataset.X)}
    return table


def write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def data_record(args) -> dict:
    """How the run's data was read and split: enough for `fnn evaluate --split` and `--resume`."""
    return {"source": str(args.data), "layout": args.layout, "seed": args.seed, "dev": args.dev, "test": args.test}


def _save_model(path: Path, params, config: TrainConfig, splits, data: dict, **extra) -> None:
    meta = {"class_names": list(splits.train.class_names), "training_config": attrs.asdict(config), "data": data}
    save_model(path, params, {**meta, **extra, "blas": blas()})


def train_and_save(args, config: TrainConfig, splits, folder: Path, on_dev: bool = False,
                   checkpoints: bool = False, resume=None) -> dict:
    """Train `config` on splits.train (and splits.dev with `on_dev`), score it on every split it
    did not train on, and write model.npz, history.csv, metrics.json and the run's figures.

    checkpoints: write CHECKPOINT at every evaluation; when the run is interrupted, write the
    best model and the history so far beside it and re-raise (the folder is then resumable).
    resume: a Monitor loaded from such a checkpoint, to continue from. The checkpoint is
    removed once the run completes.

    Returns metrics.json's dict: scores ({split: {accuracy, loss, rows}}), seconds (training
    wall-clock), epochs_run, stopped, message, layer_sizes, config, data, blas.
    """
    train_set = concat(splits.train, splits.dev, source=f"{splits.train.source} (train + dev)") if on_dev else splits.train
    data = {
        **data_record(args),
        "trained_on": "train + dev" if on_dev else "train",
        **{f"{part}_rows": len(getattr(splits, part).X) for part in ("train", "dev", "test")},
    }
    saved = []

    def save(monitor) -> None:
        saved[:] = [monitor]
        save_checkpoint(folder / CHECKPOINT, monitor, {"config": attrs.asdict(config), "data": data_record(args)})

    start = time.perf_counter()
    try:
        result = fit_with_progress(
            args, config, train_set, None if on_dev else splits.dev, desc="refit" if on_dev else "train",
            checkpoint=save if checkpoints else None, resume=resume,
        )
    except KeyboardInterrupt:
        if saved:  # the best model and the history as of the last checkpoint
            _save_model(folder / "model.npz", saved[0].best_params, config, splits, data, interrupted_at_step=saved[0].good.step)
            write_csv(folder / "history.csv", pd.DataFrame(list(saved[0].rows)))
        raise
    seconds = time.perf_counter() - start
    params = result.best_params
    parts = {"train": train_set} if on_dev else {"train": splits.train, "dev": splits.dev}
    table = scores(params, {**parts, "test": splits.test})
    _save_model(folder / "model.npz", params, config, splits, data, metrics=table)
    write_csv(folder / "history.csv", result.history)
    summary = {
        "scores": table,
        "seconds": seconds,
        "epochs_run": result.state.epoch,
        "stopped": result.stopped,
        "message": result.message,
        "layer_sizes": list(layer_sizes(params)),
        "config": attrs.asdict(config),
        "data": data,
        "blas": blas(),
    }
    from fnn import plots  # matplotlib loads only when figures are drawn

    shown = next(part for part in (splits.test, splits.dev, train_set) if len(part.X))
    for stem, figure in plots.run_figures(params, result.history, shown.X, shown.y, shown.class_names).items():
        plots.save_figure(figure, folder / f"{stem}.png")
    write_json(folder / "metrics.json", summary)  # last: a folder with metrics.json is complete
    (folder / CHECKPOINT).unlink(missing_ok=True)  # nothing left to resume
    return summary


def print_summary(summary: dict, out: Path) -> None:
    table = ", ".join(f"{name} accuracy {s['accuracy']:.4f}" for name, s in summary["scores"].items())
    print(f"{summary['message']}; {table}; trained in {summary['seconds']:.1f} s")
    print(f"wrote {out}/")
