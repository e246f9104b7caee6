"""Checkpoints: a run resumed from any of its evaluations ends with the same bits as a run never
interrupted, through the file form too (no pickle)."""

from __future__ import annotations

import numpy as np
import pytest

import fnn
from fnn.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from fnn.fitting import fit


def blobs(seed=0, n=300, n_in=12, k=3):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, n_in)) * 2
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, n_in))).astype(np.float32), y


def run(resume=None, checkpoint=None, optimizer=None):
    X, y = blobs()
    params = fnn.init(np.random.default_rng(1), (12, 16, 3), activation="tanh", dropout=0.2)
    return fit(
        np.random.default_rng(2), params, optimizer or fnn.adam(1e-2), (X[:240], y[:240]), (X[240:], y[240:]),
        epochs=4, batch_size=32, eval_every=5, checkpoint=checkpoint, resume=resume,
    )


def same_bits(a, b) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(fnn.tree_leaves(a), fnn.tree_leaves(b)))


@pytest.mark.parametrize("optimizer", [fnn.adam(1e-2), fnn.sgd(0.05, 0.9, nesterov=True)], ids=["adam", "sgd"])
def test_a_resumed_run_ends_with_the_same_bits(optimizer, tmp_path):
    saved = []
    whole = run(checkpoint=saved.append, optimizer=optimizer)
    assert len(saved) == len(whole.history) > 4
    for monitor in (saved[1], saved[len(saved) // 2]):  # mid-epoch (step 10) and later
        path = save_checkpoint(tmp_path / "checkpoint.npz", monitor, {"note": "test"})
        template = fnn.init(np.random.default_rng(9), (12, 16, 3), activation="tanh", dropout=0.2)
        loaded, meta = load_checkpoint(path, template, optimizer)
        assert meta == {"note": "test"} == read_metadata(path)
        resumed = run(resume=loaded, optimizer=optimizer)
        assert same_bits(resumed.state.params, whole.state.params)
        assert same_bits(resumed.best_params, whole.best_params)
        assert same_bits(resumed.state.opt_state, whole.state.opt_state)
        assert resumed.history.drop(columns="seconds").equals(whole.history.drop(columns="seconds"))


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    saved = []
    run(checkpoint=saved.append)
    path = save_checkpoint(tmp_path / "c.npz", saved[0], {})
    with pytest.raises(CheckpointError, match="needs float32"):
        load_checkpoint(path, fnn.init(np.random.default_rng(0), (12, 8, 3)), fnn.adam(1e-2))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.npz", fnn.init(np.random.default_rng(0), (12, 8, 3)), fnn.adam(1e-2))
