"""The `fnn` command end to end: every subcommand on the bundled sample with tiny settings.

Most tests call `fnn.cli.main([...])` in-process (fast); `test_python_dash_m_entry_point` runs
the real entry point in a subprocess. Each failure case checks the contract: exit status 2,
exactly one line on stderr, no traceback, and no output files left behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fnn
from fnn.cli import main
from fnn.data import load_dataset
from fnn.io import load_model
from fnn.fitting import history_columns

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "2", "--hidden", "16", "--no-progress"]
RUN_FILES = {
    "model.npz", "history.csv", "metrics.json", "training_metrics.png", "training_health.png",
    "confusion_matrix.png", "sample_predictions.png", "first_layer_weights.png",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `fnn argv...` run in-process."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str) -> None:
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fnn: error: ")
    assert "Traceback" not in err


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_real_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> tuple[Path, str]:
    """One tiny `fnn train` on the bundled sample, shared by the evaluate/predict tests."""
    out = tmp_path_factory.mktemp("train") / "run"
    printed, bar = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(bar):
        status = main(["train", *TINY, "--progress", "--out", str(out)])
    assert status == 0
    assert "2/2" in bar.getvalue() and "epoch" in bar.getvalue()  # --progress: a tqdm bar on stderr
    return out, printed.getvalue()


@pytest.fixture(scope="session")
def sample_digits():
    """The first 60 digits of the bundled sample: (X (60, 784) float32, y (60,))."""
    sample = load_dataset("sample")
    return sample.X[:60], sample.y[:60]


def kaggle_csv(path: Path, X: np.ndarray, y: np.ndarray | None) -> Path:
    """Write digits in Kaggle's layout: train.csv (label first) or test.csv (pixels only)."""
    table = pd.DataFrame(np.rint(X * 255).astype(np.int64), columns=[f"pixel{i}" for i in range(784)])
    if y is not None:
        table.insert(0, "label", y)
    table.to_csv(path, index=False)
    return path


def digit_png(path: Path, x: np.ndarray, size: int = 90) -> Path:
    """A digit drawn black on white at size x size pixels, as a user's scan might be."""
    ink = (255 - np.rint(x.reshape(28, 28) * 255)).astype(np.uint8)
    Image.fromarray(ink).resize((size, size)).save(path)
    return path


# ---------------------------------------------------------------- help


@pytest.mark.parametrize(
    "command, flags",
    [
        ("train", ["--epochs", "--batch-size", "--lr", "--seed", "--hidden", "--l2", "--optimizer", "--data", "--out", "--dev", "--test", "--progress", "--debug", "--activation", "--dropout"]),
        ("tune", ["--hiddens", "--l2s", "--lrs", "--workers", "--refit-on-dev", "--epochs", "--data", "--out", "--seed", "--activation", "--dropout", "--scheduler", "--repeats", "--samples"]),
        ("evaluate", ["--model", "--data", "--split", "--out"]),
        ("predict", ["--model", "--data", "--out"]),
        ("gradcheck", ["--sizes", "--batch", "--l2", "--seed", "--activation", "--dropout"]),
    ],
)
def test_every_command_explains_its_flags(capsys, command, flags):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    for flag in flags:
        assert flag in out, flag
    if command == "train":
        assert "(default: 30)" in out and "(default: sample)" in out  # defaults are shown


# ---------------------------------------------------------------- train


def test_train_writes_every_promised_file(run_dir):
    out, printed = run_dir
    assert {p.name for p in out.iterdir()} == RUN_FILES
    for png in out.glob("*.png"):
        assert_real_png(png)
    summary = json.loads((out / "metrics.json").read_text())
    for part, rows in (("train", 4000), ("dev", 500), ("test", 500)):  # the seeded split of the sample
        assert summary["scores"][part]["rows"] == rows
        assert 0.5 < summary["scores"][part]["accuracy"] <= 1 and summary["scores"][part]["loss"] > 0
    assert summary["seconds"] > 0 and summary["config"]["epochs"] == 2 and summary["config"]["hidden"] == [16]
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == history_columns(fnn.init(np.random.default_rng(0), (784, 8, 10))) and history["epoch"].tolist() == [1, 2]
    params, meta = load_model(out / "model.npz")
    assert fnn.layer_sizes(params) == (784, 16, 10)
    assert meta["metrics"]["test"]["accuracy"] == summary["scores"]["test"]["accuracy"]
    assert f"test accuracy {summary['scores']['test']['accuracy']:.4f}" in printed


@pytest.mark.slow
def test_train_is_reproducible_from_its_seed(run_dir, tmp_path, capsys):
    out, _ = run_dir
    status, _, _ = run(capsys, "train", *TINY, "--out", str(tmp_path / "again"))
    assert status == 0
    first, second = load_model(out / "model.npz")[0], load_model(tmp_path / "again" / "model.npz")[0]
    assert fnn.tree_allclose(first, second, rtol=0)


# ---------------------------------------------------------------- evaluate and predict


@pytest.mark.slow
def test_evaluate_a_kaggle_train_csv(run_dir, sample_digits, tmp_path, capsys):
    X, y = sample_digits
    csv = kaggle_csv(tmp_path / "train.csv", X, y)
    status, out, _ = run(capsys, "evaluate", "--model", str(run_dir[0] / "model.npz"), "--data", str(csv), "--out", str(tmp_path / "ev"))
    assert status == 0
    first = out.splitlines()[0]
    assert re.fullmatch(r"accuracy: [01]\.\d{4}", first)
    params, _ = load_model(run_dir[0] / "model.npz")
    assert float(first.split()[1]) == pytest.approx(np.mean(fnn.predict(params, X) == y), abs=5e-5)
    for section in ("precision", "recall", "f1", "macro avg", "confusion matrix", "most confidently wrong", "expected calibration error"):
        assert section in out
    assert {p.name for p in (tmp_path / "ev").iterdir()} >= {"metrics.json", "confusion_matrix.png", "reliability_diagram.png"}
    for png in (tmp_path / "ev").glob("*.png"):
        assert_real_png(png)


@pytest.mark.slow
def test_a_tanh_dropout_run_evaluates_as_the_library_scores_it(sample_digits, tmp_path, capsys):
    status, out, _ = run(capsys, "train", *TINY, "--activation", "tanh", "--dropout", "0.2", "--out", str(tmp_path / "run"))
    assert status == 0 and "tanh, dropout 0.2" in out
    params, meta = load_model(tmp_path / "run" / "model.npz")
    assert [type(layer).__name__ for layer in params.layers] == ["Dense", "Tanh", "Dropout", "Dense"]
    assert params.layers[2].rate == 0.2 and meta["training_config"]["activation"] == "tanh"
    X, y = sample_digits
    csv = kaggle_csv(tmp_path / "train.csv", X, y)
    status, out, _ = run(capsys, "evaluate", "--model", str(tmp_path / "run" / "model.npz"), "--data", str(csv), "--out", str(tmp_path / "ev"))
    assert status == 0
    assert float(out.splitlines()[0].split()[1]) == pytest.approx(np.mean(fnn.predict(params, X) == y), abs=5e-5)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert not history.filter(like="dead_frac").columns.size  # tanh units are never "dead"


@pytest.mark.slow
def test_nesterov_and_eval_every_reach_the_run(tmp_path, capsys):
    status, _, _ = run(capsys, "train", *TINY, "--nesterov", "--eval-every", "10", "--out", str(tmp_path / "run"))
    assert status == 0
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["config"]["nesterov"] is True and summary["config"]["eval_every"] == 10
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["step"].tolist()[:3] == [10, 20, 30]  # 32 updates per epoch on 4,000 rows


@pytest.mark.slow
def test_evaluate_split_recreates_the_runs_own_split_and_its_metrics(run_dir, tmp_path, capsys):
    out, _ = run_dir
    summary = json.loads((out / "metrics.json").read_text())
    for part in ("test", "dev"):
        status, printed, err = run(capsys, "evaluate", "--model", str(out / "model.npz"), "--split", part, "--out", str(tmp_path / part))
        assert status == 0 and "warning" not in err
        scored = json.loads((tmp_path / part / "metrics.json").read_text())
        assert scored["rows"] == summary["scores"][part]["rows"]
        assert scored["loss"] == summary["scores"][part]["loss"]
        assert scored["accuracy"] == summary["scores"][part]["accuracy"]
        assert printed.startswith(f"accuracy: {summary['scores'][part]['accuracy']:.4f}")


@pytest.mark.slow
def test_evaluate_warns_when_the_data_names_other_classes(sample_digits, tmp_path, capsys):
    params = fnn.init(np.random.default_rng(0), (784, 8, 10))
    fnn.save_model(tmp_path / "fashion.npz", params, {"class_names": ["T-shirt/top", "Trouser", *map(str, range(2, 10))]})
    X, y = sample_digits
    csv = kaggle_csv(tmp_path / "train.csv", X, y)
    status, _, err = run(capsys, "evaluate", "--model", str(tmp_path / "fashion.npz"), "--data", str(csv), "--out", str(tmp_path / "ev"))
    assert status == 0
    assert err.count("\n") == 1 and err.startswith("fnn: warning: ") and "T-shirt/top" in err


@pytest.mark.slow
def test_evaluate_a_headerless_label_last_csv(run_dir, sample_digits, tmp_path, capsys):
    X, y = sample_digits
    csv = tmp_path / "digits.csv"
    np.savetxt(csv, np.column_stack([np.rint(X * 255), y]).astype(np.int64), fmt="%d", delimiter=",")
    model = str(run_dir[0] / "model.npz")
    status, out, _ = run(capsys, "evaluate", "--model", model, "--data", str(csv), "--layout", "label-last", "--out", str(tmp_path / "ev"))
    assert status == 0 and out.startswith("accuracy: ")
    status, _, err = run(capsys, "evaluate", "--model", model, "--data", str(csv), "--out", str(tmp_path / "ev2"))
    assert_one_line_error(status, err)
    assert "--layout" in err


def test_predict_turns_a_kaggle_test_csv_into_a_submission(run_dir, sample_digits, tmp_path, capsys):
    X, _ = sample_digits
    csv = kaggle_csv(tmp_path / "test.csv", X, None)
    submission = tmp_path / "submission.csv"
    status, out, _ = run(capsys, "predict", "--model", str(run_dir[0] / "model.npz"), "--data", str(csv), "--out", str(submission))
    assert status == 0
    assert submission.read_text().splitlines()[0] == "ImageId,Label"
    table = pd.read_csv(submission)
    assert table["ImageId"].tolist() == list(range(1, len(X) + 1))
    assert table["Label"].between(0, 9).all() and len(table) == len(X)
    params, _ = load_model(run_dir[0] / "model.npz")
    np.testing.assert_array_equal(table["Label"], fnn.predict(params, np.rint(X * 255) / 255))


def test_predict_and_evaluate_on_digit_images(run_dir, sample_digits, tmp_path, capsys):
    X, y = sample_digits
    model = str(run_dir[0] / "model.npz")
    images = [str(digit_png(tmp_path / f"digit{i}.png", X[i], size=40 + 30 * i)) for i in range(3)]
    status, out, _ = run(capsys, "predict", "--model", model, "--data", *images)
    assert status == 0
    lines = out.splitlines()
    for path, line in zip(images, lines):
        assert re.fullmatch(re.escape(path) + r": \d \(probability [01]\.\d{4}\)", line), line
    status, _, err = run(capsys, "evaluate", "--model", model, "--data", images[0], "--out", str(tmp_path / "ev"))
    assert_one_line_error(status, err)
    assert "fnn predict" in err and not (tmp_path / "ev").exists()


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_passes_and_names_every_parameter(capsys):
    status, out, _ = run(capsys, "gradcheck", "--sizes", "6,5,4,3", "--batch", "4", "--seed", "3")
    assert status == 0
    for name in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert f"\n{name} " in out
    assert "PASS" in out and "FAIL" not in out


def test_gradcheck_fails_with_status_1_when_the_tolerance_is_missed(capsys, monkeypatch):
    # A gradient check that reports a large error must FAIL; the CLI only compares numbers.
    monkeypatch.setattr("fnn.gradcheck.check_random_network", lambda rng, sizes, batch, l2, **kw: [("W1", 1e-3), ("b1", 1e-9)])
    status, out, _ = run(capsys, "gradcheck")
    assert status == 1
    assert "FAIL" in out


def test_threads_limits_the_blas_while_the_command_runs(capsys, monkeypatch):
    import threadpoolctl
    seen = []

    def spy(rng, sizes, batch, l2, **kw):
        seen.extend(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")
        return [("W1", 1e-9)]

    monkeypatch.setattr("fnn.gradcheck.check_random_network", spy)
    status, _, _ = run(capsys, "gradcheck", "--threads", "2")  # the suite itself runs on 1
    assert status == 0 and seen and set(seen) == {2}
    assert {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"} == {1}


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv",
    [
        ["gradcheck", "--bogus"],
        ["gradcheck", "--batch", "zero"],
        ["gradcheck", "--sizes", "5"],
        ["gradcheck", "--sizes", "4,-1,3"],
        ["nonsense"],
        [],
    ],
)
def test_bad_command_lines_exit_2_with_one_line(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, err)


def test_debug_shows_the_traceback(capsys):
    status, _, err = run(capsys, "gradcheck", "--sizes", "5", "--debug")
    assert status == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("fnn: error: ")


# ---------------------------------------------------------------- the real entry point


@pytest.mark.slow
def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "fnn", "gradcheck", "--sizes", "5,4,3", "--batch", "3"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fnn", "gradcheck", "--nope"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("fnn: error: ")


# ---------------------------------------------------------------- tune


def tune_table(capsys, tmp_path: Path, workers: int) -> tuple[pd.DataFrame, str, Path]:
    out = tmp_path / f"tune{workers}"
    status, printed, _ = run(
        capsys, "tune", "--epochs", "1", "--hiddens", "8", "16", "--l2s", "0,1", "--batch-size", "256",
        "--workers", str(workers), "--no-progress", "--out", str(out),
    )
    assert status == 0
    return pd.read_csv(out / "tune.csv"), printed, out


@pytest.mark.slow
def test_tune_with_two_workers_equals_one_worker(capsys, tmp_path):
    variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    before = {variable: os.environ.get(variable) for variable in variables}
    one, printed, out = tune_table(capsys, tmp_path, 1)
    two, _, _ = tune_table(capsys, tmp_path, 2)
    pd.testing.assert_frame_equal(one.drop(columns="seconds"), two.drop(columns="seconds"))
    assert list(one[["hidden", "l2"]].itertuples(index=False, name=None)) == [(8, 0.0), (8, 1.0), (16, 0.0), (16, 1.0)]
    assert {"tune.csv", "tune_heatmap.png", "model.npz", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert_real_png(out / "tune_heatmap.png")
    assert printed.count("test accuracy") == 1  # the test split is scored once, after the search
    best = one.loc[one["dev_acc"].idxmax()]
    params, meta = load_model(out / "model.npz")
    assert fnn.layer_sizes(params) == (784, int(best["hidden"]), 10)
    assert meta["training_config"]["seed"] == best["seed"]
    assert {variable: os.environ.get(variable) for variable in variables} == before  # workers limit their own BLAS


# ---------------------------------------------------------------- failures leave one line and no files


def bad_csv(path: Path, sample_digits) -> Path:
    X, y = sample_digits
    kaggle_csv(path, X[:5], y[:5])
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",0,", ",abc,", 1)
    path.write_text("\n".join(lines) + "\n")
    return path


def garbage_model(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(500))
    return path


FAILURES = {
    "missing data": lambda tmp, digits, model: ["train", *TINY, "--data", str(tmp / "nope.csv")],
    "malformed csv": lambda tmp, digits, model: ["train", *TINY, "--data", str(bad_csv(tmp / "bad.csv", digits))],
    "unlabelled training data": lambda tmp, digits, model: [
        "train", *TINY, "--data", str(kaggle_csv(tmp / "test.csv", digits[0], None))
    ],
    "diverging run": lambda tmp, digits, model: ["train", *TINY, "--lr", "1e30", "--schedule", "constant"],
    "bad config": lambda tmp, digits, model: ["train", *TINY, "--dev", "4990", "--test", "500"],
    "corrupt model": lambda tmp, digits, model: ["evaluate", "--model", str(garbage_model(tmp / "m.npz")), "--data", "sample"],
    "missing model": lambda tmp, digits, model: ["evaluate", "--model", str(tmp / "none.npz"), "--data", "sample"],
    "predict, corrupt model": lambda tmp, digits, model: [
        "predict", "--model", str(garbage_model(tmp / "m.npz")), "--data", "sample"
    ],
    "predict, malformed csv": lambda tmp, digits, model: [
        "predict", "--model", model, "--data", str(bad_csv(tmp / "bad.csv", digits))
    ],
    "tune, bad grid value": lambda tmp, digits, model: ["tune", "--l2s", "0,-1", "--epochs", "1"],
    "tune, empty grid value": lambda tmp, digits, model: ["tune", "--l2s", ",", "--epochs", "1"],
    "tune, zero learning rate": lambda tmp, digits, model: ["tune", "--lrs", "0", "--epochs", "1"],
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_print_one_line_exit_2_and_leave_no_files(case, run_dir, sample_digits, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    argv = FAILURES[case](inputs, sample_digits, str(run_dir[0] / "model.npz"))
    before = files_under(inputs)
    out = tmp_path / "outputs" / ("submission.csv" if argv[0] == "predict" else "run")
    status, _, err = run(capsys, *argv, "--out", str(out))
    assert_one_line_error(status, err)
    assert not (tmp_path / "outputs").exists()
    assert files_under(inputs) == before


def test_a_diverging_run_names_the_learning_rate(capsys, tmp_path):
    status, _, err = run(capsys, "train", *TINY, "--lr", "1e30", "--schedule", "constant", "--out", str(tmp_path / "r"))
    assert status == 2 and "diverged" in err and "--lr" in err


def test_ctrl_c_exits_130_and_leaves_no_run_folder(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fnn.run.train", interrupted)
    status, _, err = run(capsys, "train", *TINY, "--out", str(tmp_path / "runs" / "r"))
    assert status == 130
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_an_existing_run_folder_is_never_overwritten(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    status, _, err = run(capsys, "train", *TINY, "--out", str(out))
    assert_one_line_error(status, err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_compare_optimizers_script_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/compare_optimizers.py", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "optimizers.csv")
    assert len(table) == 3 and table["test_acc"].between(0, 1).all()
    assert_real_png(tmp_path / "optimizers.png")


# ---------------------------------------------------------------- interrupts, checkpoints, resume


@pytest.mark.slow
def test_an_interrupted_run_is_left_resumable_and_resumes_to_the_same_bits(tmp_path, capsys, monkeypatch):
    import fnn.cli.runs as runs

    flags = [*TINY, "--epochs", "3", "--eval-every", "10", "--dropout", "0.1"]
    status, _, _ = run(capsys, "train", *flags, "--out", str(tmp_path / "whole"))
    assert status == 0 and not (tmp_path / "whole" / "checkpoint.npz").exists()  # complete: no checkpoint

    real, calls = runs.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_interrupt)
    out = tmp_path / "cut"
    status, _, err = run(capsys, "train", *flags, "--out", str(out))
    assert status == 130 and f"--resume {out}" in err and len(err.strip().splitlines()) == 1
    assert {p.name for p in out.iterdir()} == {"checkpoint.npz", "model.npz", "history.csv"}  # not hidden, no metrics
    assert not list(tmp_path.glob(".cut.partial-*"))
    assert len(pd.read_csv(out / "history.csv")) == 4

    monkeypatch.setattr(runs, "save_checkpoint", real)
    status, printed, _ = run(capsys, "train", "--resume", str(out), "--no-progress")
    assert status == 0 and "resuming" in printed
    assert {p.name for p in out.iterdir()} == RUN_FILES
    whole, cut = load_model(tmp_path / "whole" / "model.npz")[0], load_model(out / "model.npz")[0]
    assert fnn.tree_allclose(whole, cut, rtol=0)
    h1, h2 = (pd.read_csv(p / "history.csv").drop(columns="seconds") for p in (tmp_path / "whole", out))
    pd.testing.assert_frame_equal(h1, h2)


@pytest.mark.slow
def test_ctrl_c_while_figures_are_written_leaves_an_unfinished_resumable_run(tmp_path, capsys, monkeypatch):
    real, calls = fnn.plots.save_figure, []

    def save_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fnn.plots, "save_figure", save_then_interrupt)
    out = tmp_path / "run"
    status, printed, err = run(capsys, "train", *TINY, "--eval-every", "10", "--out", str(out))
    assert status == 130 and len(err.strip().splitlines()) == 1 and f"--resume {out}" in err
    assert "completed" not in printed + err and not (out / "metrics.json").exists()  # never reported complete
    assert (out / "checkpoint.npz").is_file() and not list(tmp_path.glob(".run.partial-*"))
    monkeypatch.setattr(fnn.plots, "save_figure", real)
    status, printed, _ = run(capsys, "train", "--resume", str(out), "--no-progress")
    assert status == 0 and "completed" in printed and {p.name for p in out.iterdir()} == RUN_FILES


def _train_until_its_first_checkpoint(tmp_path: Path, out: Path) -> subprocess.Popen:
    """`fnn train` in a child process, returned once its staging folder holds a checkpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fnn", "train", "--epochs", "200", "--hidden", "16", "--eval-every", "5",
         "--no-progress", "--threads", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".{out.name}.partial-*/checkpoint.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


@pytest.mark.slow
def test_sigterm_stops_a_run_with_one_line_and_status_143(tmp_path):
    out = tmp_path / "run"
    process = _train_until_its_first_checkpoint(tmp_path, out)
    try:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "--resume" in err
    assert (out / "checkpoint.npz").is_file() and not list(tmp_path.glob(".run.partial-*"))


@pytest.mark.slow
def test_a_killed_runs_staging_folder_is_named_and_force_discards_it(tmp_path, capsys):
    out = tmp_path / "run"
    (tmp_path / ".run.partial-abc123").mkdir()
    status, _, err = run(capsys, "train", *TINY, "--out", str(out))
    assert_one_line_error(status, err)
    assert ".run.partial-abc123" in err and "--force" in err
    status, _, _ = run(capsys, "train", *TINY, "--out", str(out), "--force")
    assert status == 0 and not list(tmp_path.glob(".run.partial-*"))


def test_predict_never_writes_over_its_inputs(run_dir, sample_digits, tmp_path, capsys):
    X, _ = sample_digits
    model = run_dir[0] / "model.npz"
    csv = kaggle_csv(tmp_path / "test.csv", X[:5], None)
    before = csv.read_bytes(), model.read_bytes()
    for out in (csv, model):
        status, _, err = run(capsys, "predict", "--model", str(model), "--data", str(csv), "--out", str(out))
        assert_one_line_error(status, err)
        assert "one of the inputs" in err
    assert (csv.read_bytes(), model.read_bytes()) == before
    image = digit_png(tmp_path / "other.png", X[0])
    status, _, err = run(capsys, "predict", "--model", str(model), "--data", str(csv), "--out", str(image))
    assert_one_line_error(status, err)
    assert "--force" in err
    status, _, _ = run(capsys, "predict", "--model", str(model), "--data", str(csv), "--out", str(image), "--force")
    assert status == 0 and image.read_text().startswith("ImageId,Label")


@pytest.mark.parametrize(
    "argv, needle",
    [(["train", "--hidden", "10000000"], "GiB"), (["gradcheck", "--threads", "1000"], "cores")],
)
def test_absurd_flags_are_refused_before_any_work(capsys, tmp_path, argv, needle):
    status, _, err = run(capsys, *argv, "--out", str(tmp_path / "r")) if argv[0] == "train" else run(capsys, *argv)
    assert_one_line_error(status, err)
    assert needle in err and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_closed_output_pipe_ends_quietly():
    """`fnn gradcheck | head -0`: the reader is gone before fnn writes; no message, status 141."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fnn", "gradcheck"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141 and err == b""


@pytest.mark.parametrize("text, size", [("1G", 1 << 30), ("512M", 512 << 20), ("2.5g", int(2.5 * (1 << 30))), ("800KiB", 800 << 10), ("4096", 4096)])
def test_max_memory_sizes(text, size):
    from fnn.cli.flags import memory_size

    assert memory_size(text) == size


def test_max_memory_refuses_a_run_over_it_before_training(tmp_path, capsys):
    status, printed, err = run(capsys, "train", "--max-memory", "100M", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert status == 2 and "more than the 100 MiB this run may use" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and "completed" not in printed
    status, _, err = run(capsys, "train", "--max-memory", "lots", "--out", str(tmp_path / "run"))
    assert status == 2 and "--max-memory" in err and "1G" in err


def test_training_data_of_one_class_is_refused_in_one_line(tmp_path, capsys):
    rows = np.zeros((50, 785), np.int64)
    rows[:, 1:] = np.random.default_rng(0).integers(0, 255, (50, 784))
    rows[:, 0] = 3
    path = tmp_path / "one.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=header, comments="")
    status, _, err = run(capsys, "train", "--data", str(path), "--out", str(tmp_path / "run"))
    assert status == 2 and "every row has label 3" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_layout_with_a_source_that_is_not_a_csv_is_one_line(tmp_path, capsys):
    status, _, err = run(capsys, "train", "--data", "sample", "--layout", "label-last", "--out", str(tmp_path / "run"))
    assert status == 2 and "applies to CSV files only" in err and len(err.strip().splitlines()) == 1


def test_train_prints_a_line_per_epoch_and_which_parameters_it_kept(tmp_path, capsys):
    status, printed, _ = run(capsys, "train", "--epochs", "3", "--hidden", "16", "--no-progress", "--out", str(tmp_path / "run"))
    lines = printed.splitlines()
    assert status == 0 and [line.split(",")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    best = history.loc[history.dev_acc.idxmax()]
    assert f"kept the parameters of step {int(best.step)} (epoch {int(best.epoch)}): best dev accuracy {best.dev_acc:.4f}" in lines
    assert lines.index(next(line for line in lines if line.startswith("kept"))) < lines.index(next(line for line in lines if line.startswith("completed")))


# ---------------------------------------------------------------- messages that name the flag and the fix


def test_a_negative_seed_says_seeds_are_at_least_0(capsys, tmp_path):
    for command in (["train", "--out", str(tmp_path / "run")], ["gradcheck"]):
        status, _, err = run(capsys, *command, "--seed", "-1")
        assert_one_line_error(status, err)
        assert "--seed" in err and ">= 0" in err and "--dev" not in err, err
    assert not (tmp_path / "run").exists()


def test_an_out_under_a_regular_file_names_the_file(run_dir, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    model = run_dir[0] / "model.npz"
    for argv in (["train", *TINY, "--out", str(blocker / "run")],
                 ["train", *TINY, "--out", str(blocker / "deeper" / "run")],
                 ["predict", "--model", str(model), "--data", "sample", "--out", str(blocker / "s.csv")]):
        status, _, err = run(capsys, *argv)
        assert_one_line_error(status, err)
        assert f"{blocker} is a file, not a folder" in err and "Errno" not in err, err
    assert blocker.read_text() == "a file, not a folder\n" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_full_disk_names_the_file_being_written_and_the_fix(run_dir, tmp_path, capsys, monkeypatch):
    import errno

    def half_then_full(self, path, *args, **kwargs):  # a disk that fills up midway through the file
        Path(path).write_text("ImageId,Label\n1,")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    out = tmp_path / "s.csv"
    status, _, err = run(capsys, "predict", "--model", str(run_dir[0] / "model.npz"), "--data", "sample", "--out", str(out))
    assert_one_line_error(status, err)
    assert f"cannot write {out}: no space left" in err and "free some space" in err and "--out" in err, err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_atomic_path_turns_a_real_enospc_into_one_line_naming_the_target(tmp_path):
    from fnn.files import DiskFull, atomic_path

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    target = tmp_path / "model.npz"
    with pytest.raises(DiskFull, match=f"cannot write {re.escape(str(target))}: no space left on its disk") as caught:
        with atomic_path(target) as tmp, open("/dev/full", "wb", buffering=0) as full:
            tmp.write_bytes(b"partial")
            full.write(b"x")  # ENOSPC, as a full disk answers
    assert isinstance(caught.value, OSError) and list(tmp_path.iterdir()) == []


def test_a_constant_label_column_under_label_last_names_the_layout(run_dir, tmp_path, capsys):
    """A headerless label-first file read with --layout label-last: pixel783 (0 on every row) is
    taken as the label. Training refuses it; evaluate and predict warn, naming the layout."""
    rows = np.zeros((40, 785), np.int64)
    rows[:, 0] = np.arange(40) % 10  # the real label, first
    rows[:, 1:-1] = np.random.default_rng(0).integers(0, 256, (40, 783))
    path = tmp_path / "label_first.csv"
    np.savetxt(path, rows, fmt="%d", delimiter=",")
    status, _, err = run(capsys, "train", *TINY, "--data", str(path), "--layout", "label-last", "--out", str(tmp_path / "run"))
    assert_one_line_error(status, err)
    assert "every row has label 0 as --layout label-last reads it" in err and "leave --layout out" in err, err
    model = str(run_dir[0] / "model.npz")
    for argv in (["evaluate", "--model", model, "--out", str(tmp_path / "ev")], ["predict", "--model", model, "--out", str(tmp_path / "s.csv")]):
        status, _, err = run(capsys, *argv, "--data", str(path), "--layout", "label-last")
        warnings = [line for line in err.splitlines() if line.startswith("fnn: warning:")]
        assert status == 0 and len(warnings) == 1 and "--layout label-last" in warnings[0], err
    status, _, err = run(capsys, "evaluate", "--model", model, "--data", str(path), "--layout", "label-last",
                         "--out", str(tmp_path / "ev2"))
    assert status == 0
    varied = rows.copy()
    varied[:, -1] = np.arange(40) % 10  # a real label-last file: no warning
    np.savetxt(path, varied, fmt="%d", delimiter=",")
    status, _, err = run(capsys, "evaluate", "--model", model, "--data", str(path), "--layout", "label-last", "--out", str(tmp_path / "ev3"))
    assert status == 0 and "warning" not in err, err


# ---------------------------------------------------------------- signals while starting and while stopping


def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (the SigCgt mask of /proc/PID/status)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_sigterm_while_the_commands_import_is_one_line_and_143(tmp_path):
    """fnn.cli imports only the standard library, so `main` takes SIGTERM before numpy, pandas
    and matplotlib load; a SIGTERM as soon as it does lands in those imports."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fnn", "train", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while not _catches(process.pid, signal.SIGTERM) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert err.strip().splitlines() == ["fnn: terminated (SIGTERM) while starting; nothing was written"], err
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_second_sigterm_during_cleanup_does_not_cut_it_short(tmp_path):
    out = tmp_path / "run"
    process = _train_until_its_first_checkpoint(tmp_path, out)
    try:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # as systemd or a second `kill` might, while the checkpoint is written
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and f"fnn train --resume {out}" in err, err
    assert (out / "checkpoint.npz").is_file() and not list(tmp_path.glob(".run.*"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left half-written
