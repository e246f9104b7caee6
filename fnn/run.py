"""A training run, the way `fnn train` and `fnn tune` run one: train a `TrainConfig` on a split
data set, score the kept model on the splits, and describe the run for its model file and its
metrics. Files, prints and progress bars stay with the caller (`fnn.cli` writes the run folder).

    splits = split(load_dataset("sample"), np.random.default_rng(0), dev=0.1, test=0.1)
    result = run_training(TrainConfig(epochs=5), splits)
    result.summary["scores"]["test"]["accuracy"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
from threadpoolctl import threadpool_info

from fnn.checkpoint import load_checkpoint
from fnn.config import TrainConfig, build_network, make_optimizer, train
from fnn.data import Dataset, Splits, concat
from fnn.errors import TrainingDiverged
from fnn.fitting import FitResult, Monitor
from fnn.params import MLP, layer_sizes
from fnn.training import evaluate, steps_per_epoch


@attrs.frozen(eq=False)
class RunResult:
    """What `run_training` returns.

    fit: the FitResult; fit.best_params is the model the run keeps, fit.history its history.
    train_set: the rows it trained on (splits.train, or train + dev).
    metadata: what its model file records: class_names, training_config, data, metrics (the
        scores below), blas (see `model_metadata`).
    summary: the run in numbers (what `fnn train` writes as metrics.json): scores ({split:
        {accuracy, loss, rows}} for each non-empty split it did not train on, and train),
        seconds (training wall-clock), epochs_run, stopped, message, layer_sizes, config,
        data, blas.
    """

    fit: FitResult
    train_set: Dataset
    metadata: dict
    summary: dict


def blas() -> list[dict]:
    """The BLAS libraries this process runs, with their thread counts (threadpoolctl): results
    depend on them, since the thread count changes the order of a product's sums."""
    return [
        {key: info.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
        for info in threadpool_info()
        if info["user_api"] == "blas"
    ]


def score(params: MLP, parts: dict[str, Dataset]) -> dict:
    """{name: {accuracy, loss, rows}} for each non-empty labelled part; loss without the L2 term."""
    table = {}
    for name, dataset in parts.items():
        if len(dataset.X):
            loss, acc = evaluate(params, dataset.X, dataset.y)
            table[name] = {"accuracy": acc, "loss": loss, "rows": len(dataset.X)}
    return table


def model_metadata(config: TrainConfig, splits: Splits, data_record: dict | None = None, *,
                   on_dev: bool = False, **extra) -> dict:
    """What the model file of a run of `config` on `splits` records: class_names,
    training_config, data (`data_record`, what it trained on and each split's rows), `extra`,
    and blas.

    data_record: how `splits` was read and split (the command line records source, layout,
    seed, dev and test, which is what `fnn evaluate --split` and `fnn train --resume` need).
    """
    data = {
        **(data_record or {}),
        "trained_on": "train + dev" if on_dev else "train",
        **{f"{part}_rows": len(getattr(splits, part).X) for part in ("train", "dev", "test")},
    }
    return {
        "class_names": list(splits.train.class_names),
        "training_config": attrs.asdict(config),
        "data": data,
        **extra,
        "blas": blas(),
    }


def run_training(
    config: TrainConfig,
    splits: Splits,
    *,
    data_record: dict | None = None,
    on_dev: bool = False,
    on_row: Callable[[dict], Any] | None = None,
    checkpoint: Callable[[Monitor], Any] | None = None,
    resume: Monitor | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Train `config` (seeded by config.seed) on splits.train, watched on splits.dev, or on
    train + dev with `on_dev`; score the kept model on train, dev and test (train + dev and
    test with `on_dev`); describe the run. TrainingDiverged, naming the step and learning rate,
    when the loss blew up.

    data_record: recorded in the metadata (see `model_metadata`).
    on_row: called with each history row as it is recorded (a progress bar).
    checkpoint, resume, clock: as `fnn.fit` takes them.
    """
    train_set = (
        concat(splits.train, splits.dev, source=f"{splits.train.source} (train + dev)") if on_dev else splits.train
    )
    dev_set = None if on_dev or not len(splits.dev.X) else splits.dev
    start = clock()
    result = train(
        np.random.default_rng(config.seed), config, train_set, dev_set,
        callback=on_row, clock=clock, checkpoint=checkpoint, resume=resume,
    )
    seconds = clock() - start
    if result.stopped == "diverged":
        raise TrainingDiverged(f"training {result.message}")
    parts = {"train": train_set} if on_dev else {"train": splits.train, "dev": splits.dev}
    scores = score(result.best_params, {**parts, "test": splits.test})
    metadata = model_metadata(config, splits, data_record, on_dev=on_dev, metrics=scores)
    summary = {
        "scores": scores,
        "seconds": seconds,
        "epochs_run": result.state.epoch,
        "stopped": result.stopped,
        "message": result.message,
        "layer_sizes": list(layer_sizes(result.best_params)),
        "config": metadata["training_config"],
        "data": metadata["data"],
        "blas": metadata["blas"],
    }
    return RunResult(fit=result, train_set=train_set, metadata=metadata, summary=summary)


def load_run_checkpoint(path: str | os.PathLike, config: TrainConfig, splits: Splits) -> Monitor:
    """The Monitor a run of `config` on `splits` saved at `path` (`fnn.checkpoint.save_checkpoint`),
    to pass to `run_training(..., resume=)`; CheckpointError when it is of another network."""
    template = build_network(np.random.default_rng(0), config, splits.train.X.shape[1], len(splits.train.class_names))
    optimizer = make_optimizer(config, steps_per_epoch(len(splits.train.X), config.batch_size))
    return load_checkpoint(path, template, optimizer)[0]
