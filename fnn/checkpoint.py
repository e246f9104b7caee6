"""Checkpoints: a training run's `fit` Monitor as one `.npz` that never pickles.

    state.params.{i}   the i-th leaf of the state's params (`tree_leaves` order)
    state.opt.{i}      the i-th leaf of the optimizer state (velocities, moments over the flat
                       params, step counts)
    best.{i}           the i-th leaf of the best params so far
    checkpoint.json    a 0-d text array: step, epoch, seed, best, since_best, the history rows
                       so far (NaN as null), and the caller's metadata (the run's config, data)

Loading needs templates of the structures (a network of the run's architecture and its
optimizer), so the file holds only arrays and JSON; every leaf is checked against its template's
shape and dtype. Written through `atomic_path`: a crash leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from fnn.errors import UserError
from fnn.files import atomic_path
from fnn.fitting import Monitor
from fnn.optim import Optimizer
from fnn.params import MLP
from fnn.training import TrainState
from fnn.tree import ravel, ravel_spec, tree_leaves, tree_map

META_KEY = "checkpoint.json"
FORMAT = "fnn-checkpoint"
VERSION = 2  # 2: the optimizer state is over the flat params (fnn.tree.ravel); 1 had it per layer


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot resume this run; the message names the file and the fix."""


def _json_number(value: float):
    return None if isinstance(value, float) and math.isnan(value) else value


def save_checkpoint(path: str | os.PathLike, monitor: Monitor, metadata: dict) -> Path:
    """Write `monitor` (its `good` state, best params, history) and `metadata` to `path`."""
    state = monitor.good
    arrays = {
        **{f"state.params.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(state.params))},
        **{f"state.opt.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(state.opt_state))},
        **{f"best.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(monitor.best_params))},
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "seed": state.seed,
        "best": _json_number(monitor.best),
        "since_best": monitor.since_best,
        "rows": [{key: _json_number(value) for key, value in row.items()} for row in monitor.rows],
        "metadata": metadata,
    }
    arrays[META_KEY] = np.array(json.dumps(meta, allow_nan=False))
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The caller's metadata saved with a checkpoint (to rebuild the templates `load_checkpoint` needs)."""
    return _read(Path(path))[1]["metadata"]


def _read(path: Path) -> tuple[dict, dict]:
    """(arrays, checkpoint.json) of a checkpoint file, or CheckpointError."""
    fix = "resume from a folder that `fnn train` interrupted, or start a new run"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint there; {fix}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an fnn checkpoint; {fix}")
    if meta.get("version", 1) != VERSION:
        raise CheckpointError(
            f"{path}: a version {meta.get('version', 1)} checkpoint, and this fnn reads version {VERSION}; "
            "finish that run with the fnn that started it, or start a new run"
        )
    return arrays, meta


def _restore(path: Path, arrays: dict, prefix: str, template):
    """`template` with its leaves replaced by the file's `prefix.{i}` arrays, each checked."""
    leaves = tree_leaves(template)
    names = [f"{prefix}.{i}" for i in range(len(leaves))]
    missing = [name for name in names if name not in arrays]
    if missing:
        raise CheckpointError(f"{path}: missing {missing[:3]}; the checkpoint is of another network or optimizer")
    it = iter(names)

    def take(leaf):
        name = next(it)
        saved = arrays[name]
        if isinstance(leaf, np.ndarray):
            if saved.shape != leaf.shape or saved.dtype != leaf.dtype:
                raise CheckpointError(
                    f"{path}: {name} is {saved.dtype}{saved.shape}, this run needs {leaf.dtype}{leaf.shape}; "
                    "resume with the flags the run was started with"
                )
            return saved
        return type(leaf)(saved.item())  # a scalar leaf: a step count

    return tree_map(take, template)


def load_checkpoint(path: str | os.PathLike, params: MLP, optimizer: Optimizer) -> tuple[Monitor, dict]:
    """(the Monitor to pass to `fit(..., resume=)`, the caller's metadata).

    params: a network of the run's architecture (its values are not used); optimizer: the run's.
    """
    path = Path(path)
    arrays, meta = _read(path)
    spec = ravel_spec(params)
    flat = ravel(spec, _restore(path, arrays, "state.params", params))
    state = TrainState(
        flat=flat,
        spec=spec,
        opt_state=_restore(path, arrays, "state.opt", optimizer.init(flat)),
        step=int(meta["step"]),
        epoch=int(meta["epoch"]),
        seed=int(meta["seed"]),
    )
    rows = tuple({key: math.nan if value is None else value for key, value in row.items()} for row in meta["rows"])
    monitor = Monitor(
        state=state,
        start=0.0,
        good=state,
        best_params=_restore(path, arrays, "best", params),
        rows=rows,
        best=math.nan if meta["best"] is None else meta["best"],
        since_best=int(meta["since_best"]),
    )
    return monitor, meta["metadata"]
