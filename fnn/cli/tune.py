"""`fnn tune`: grid search on the dev split, heat map, refit the best point, test it once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from fnn import plots, tune
from fnn.cli import flags, runs
from fnn.files import staged_folder

HIDDENS = ((64,), (110,), (128,))
L2S = (0.0, 0.1, 1.0)


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "tune",
        parents=[flags.data_flags(seeded=True), flags.training_flags(search=True), common],
        formatter_class=flags.Formatter,
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
    parser.add_argument(
        "--hiddens", type=flags.int_list, nargs="+", metavar="N[,N...]",
        help=f"hidden layer widths to try (default: {' '.join(map(flags.format_sizes, HIDDENS))})",
    )
    parser.add_argument(
        "--l2s", type=flags.float_list, nargs="+", metavar="L2",
        help=f"L2 strengths to try, spaces or commas (default: {' '.join(f'{v:g}' for v in L2S)})",
    )
    parser.add_argument(
        "--lrs", type=flags.positive_float_list, nargs="+", metavar="LR",
        help=f"learning rates to try, spaces or commas (default: {flags.DEFAULTS.lr:g})",
    )
    parser.add_argument(
        "--workers", type=flags.positive_int, default=min(2, os.cpu_count() or 1),
        help="parallel training processes, each using one BLAS thread",
    )
    parser.add_argument(
        "--refit-on-dev", action="store_true",
        help="retrain the best point on train + dev instead of train alone",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/tune-<timestamp>/)")
    parser.set_defaults(run=run)


def _display_hidden(results: pd.DataFrame) -> pd.DataFrame:
    """hidden as 128 (one hidden layer everywhere) or '256,128' text, for tables and the heatmap."""
    hidden = results["hidden"]
    if all(len(h) == 1 for h in hidden):
        return results.assign(hidden=[h[0] for h in hidden])
    return results.assign(hidden=[flags.format_sizes(h) for h in hidden])


def run(args) -> int:
    grid = {
        "hidden": list(dict.fromkeys(args.hiddens or HIDDENS)),
        "l2": list(dict.fromkeys(v for values in (args.l2s or [L2S]) for v in values)),
        "lr": list(dict.fromkeys(v for values in (args.lrs or [(flags.DEFAULTS.lr,)]) for v in values)),
    }
    base = flags.config(args, hidden=grid["hidden"][0], l2=grid["l2"][0], lr=grid["lr"][0])
    out = args.out or runs.default_out("tune-")
    n_points = len(tune.grid_points(grid))
    with staged_folder(out) as folder:
        splits = runs.load_splits(args)
        if not len(splits.dev.X):
            raise flags.FlagError("tune scores each grid point on the dev split, which is empty; pass --dev > 0")
        print(
            f"data {args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev rows; "
            f"{n_points} grid points on {args.workers} worker(s), {base.epochs} epochs each"
        )
        executor = tune.worker_pool(args.workers)
        bar = tqdm(total=n_points, desc="tune", unit="run", disable=not runs.show_progress(args), file=sys.stderr)
        try:
            results = tune.grid_search(
                args.seed, grid, splits, base=base, executor=executor, on_result=lambda row: bar.update()
            )
        finally:
            bar.close()
            executor.shutdown(wait=True, cancel_futures=True)  # after a failure or Ctrl-C, start no more runs
        best = tune.best_config(results, base)  # first: it says what to do if every run diverged
        shown = _display_hidden(results)
        runs.write_csv(folder / "tune.csv", shown)
        plots.save_figure(plots.tuning_heatmap(shown), folder / "tune_heatmap.png")
        summary = runs.train_and_save(args, best, splits, folder, on_dev=args.refit_on_dev)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"best on dev: hidden {flags.format_sizes(best.hidden)}, l2 {best.l2:g}, lr {best.lr:g}; refit on "
        f"{'train + dev' if args.refit_on_dev else 'train'}"
    )
    runs.print_summary(summary, out)
    return 0
