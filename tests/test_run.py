"""`fnn.run`: a training run as data. Tiny networks on 400 rows of the bundled sample keep each
run to a fraction of a second."""

import attrs
import numpy as np
import pytest

import fnn
from fnn.checkpoint import save_checkpoint
from fnn.config import TrainConfig
from fnn.errors import TrainingDiverged
from fnn.run import load_run_checkpoint, run_training
from fnn.training import evaluate

CONFIG = TrainConfig(hidden=(8,), epochs=2, batch_size=32, lr=0.1, seed=3)
RECORD = {"source": "sample", "layout": "kaggle", "seed": 0, "dev": 80, "test": 80}


@pytest.fixture(scope="module")
def splits():
    sample = fnn.load_dataset("sample")
    few = attrs.evolve(sample, X=sample.X[:400], y=sample.y[:400])
    return fnn.split(few, np.random.default_rng(RECORD["seed"]), dev=RECORD["dev"], test=RECORD["test"], stratify=True)


def test_scores_are_the_kept_models_on_each_split_and_the_metadata_names_the_run(splits):
    before = splits.train.X.copy()
    rows = []
    result = run_training(CONFIG, splits, data_record=RECORD, on_row=rows.append)
    params, summary = result.fit.best_params, result.summary
    assert set(summary["scores"]) == {"train", "dev", "test"}
    for name, scored in summary["scores"].items():
        part = getattr(splits, name)
        loss, acc = evaluate(params, part.X, part.y)
        assert scored == {"accuracy": acc, "loss": loss, "rows": len(part.X)}
    assert summary["scores"]["train"]["accuracy"] > 0.5  # it learned: chance is 0.1
    assert result.metadata["training_config"] == summary["config"] == attrs.asdict(CONFIG)
    assert result.metadata["metrics"] == summary["scores"]
    assert result.metadata["class_names"] == list(splits.train.class_names)
    assert summary["data"] == {**RECORD, "trained_on": "train", "train_rows": 240, "dev_rows": 80, "test_rows": 80}
    assert summary["layer_sizes"] == [784, 8, 10] and summary["epochs_run"] == 2 and summary["stopped"] == "completed"
    assert summary["message"] == result.fit.message and summary["seconds"] > 0
    assert rows == result.fit.history.to_dict(orient="records")  # on_row saw every history row, in order
    assert result.train_set is splits.train and np.array_equal(splits.train.X, before)


def test_on_dev_trains_on_train_plus_dev_and_scores_that_and_test(splits):
    result = run_training(CONFIG, splits, on_dev=True)
    assert len(result.train_set.X) == 320
    assert set(result.summary["scores"]) == {"train", "test"}
    loss, acc = evaluate(result.fit.best_params, result.train_set.X, result.train_set.y)
    assert result.summary["scores"]["train"] == {"accuracy": acc, "loss": loss, "rows": 320}
    assert result.summary["data"]["trained_on"] == "train + dev"
    assert np.isnan(result.fit.history["dev_acc"]).all()  # no dev set watched


def test_a_diverging_config_raises_naming_the_learning_rate(splits):
    with pytest.raises(TrainingDiverged, match=r"diverged.*learning rate 1e\+30"):
        run_training(attrs.evolve(CONFIG, lr=1e30, schedule="constant"), splits)


def test_a_run_resumed_from_its_checkpoint_ends_where_the_whole_run_ends(splits, tmp_path):
    config = attrs.evolve(CONFIG, eval_every=3)
    whole = run_training(config, splits)
    path = tmp_path / "checkpoint.npz"

    def save_the_second(monitor):  # a checkpoint part way through the first epoch
        if len(monitor.rows) == 2:
            save_checkpoint(path, monitor, {})

    run_training(config, splits, checkpoint=save_the_second)
    monitor = load_run_checkpoint(path, config, splits)
    assert monitor.good.step == 6 and len(monitor.rows) == 2
    resumed = run_training(config, splits, resume=monitor)
    assert fnn.tree_allclose(whole.fit.best_params, resumed.fit.best_params, rtol=0)
    assert resumed.summary["scores"] == whole.summary["scores"]
