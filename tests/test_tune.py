"""fnn.tune: grid and random points, seeds from configurations (a point scores the same in any
grid), repeats, executor-independent results, a test split never read, and deterministic choice
of the best configuration; `fnn tune --repeats/--samples` end to end."""

from __future__ import annotations

import contextlib
import http.server
import math
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import attrs
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.cli import main
from fnn.data import Splits, load_dataset, split
from fnn.config import TrainConfig, train
from fnn.io import load_model
from fnn.training import evaluate
from fnn.tune import (
    RESULT_COLUMNS,
    LogUniform,
    best_config,
    best_row,
    config_key,
    grid_points,
    grid_search,
    log_uniform_between,
    point_seeds,
    sample_points,
    search,
    train_point,
)

BASE = TrainConfig(epochs=2, batch_size=64, hidden=(8,))
GRID = {"hidden": [(4,), (8,)], "l2": [0.0, 0.5]}


@pytest.fixture(scope="module")
def splits() -> Splits:
    """600 sample digits: 400 train / 100 dev / 100 test, enough for tiny networks to differ."""
    sample = load_dataset("sample")
    rows = np.random.default_rng(1).choice(len(sample.X), size=600, replace=False)
    small = attrs.evolve(sample, X=sample.X[rows], y=sample.y[rows])
    return split(small, np.random.default_rng(2), dev=100, test=100, stratify=True)


@pytest.fixture(scope="module")
def serial(splits) -> pd.DataFrame:
    return grid_search(7, GRID, splits, base=BASE)


def scores(results: pd.DataFrame) -> pd.DataFrame:
    """Everything but the timing column, which is the one thing allowed to differ."""
    return results.drop(columns="seconds")


# ---------------------------------------------------------------- the grid and its seeds


def test_grid_points_are_the_product_last_key_fastest():
    points = grid_points({"hidden": [(4,), (8,)], "l2": [0.0, 0.1, 1.0]})
    assert points == [{"hidden": h, "l2": l2} for h in [(4,), (8,)] for l2 in [0.0, 0.1, 1.0]]


@pytest.mark.parametrize(
    "grid, named",
    [({}, "grid is empty"), ({"width": [1]}, "'width'"), ({"l2": []}, "'l2'"), ({"seed": [1, 2]}, "'seed'")],
)
def test_bad_grids_are_rejected_by_name(grid, named):
    with pytest.raises(ValueError, match=named):
        grid_points(grid)


def configs_of(grid) -> list[TrainConfig]:
    return [attrs.evolve(BASE, **point) for point in grid_points(grid)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63), repeats=st.integers(1, 6), extra=st.integers(1, 4))
def test_a_point_seed_depends_on_the_master_seed_and_its_configuration_only(seed, repeats, extra):
    configs = configs_of(GRID)
    seeds = [point_seeds(seed, config, repeats) for config in configs]
    assert [point_seeds(seed, config, repeats + extra)[:repeats] for config in configs] == seeds  # more repeats keep the first
    assert len({s for per_point in seeds for s in per_point}) == len(configs) * repeats
    assert [point_seeds(seed, config, repeats) for config in reversed(configs)] == seeds[::-1]  # not the position
    assert [point_seeds(seed + 1, config, repeats) for config in configs] != seeds
    assert [point_seeds(np.random.SeedSequence(seed), config, repeats) for config in configs] == seeds


def test_equal_configurations_written_differently_share_their_key_and_seeds():
    plain = attrs.evolve(BASE, hidden=(64,), l2=0.0, lr=0.1)
    numpy = attrs.evolve(BASE, hidden=[np.int64(64)], l2=0, lr=np.float64(0.1))
    assert config_key(numpy) == config_key(plain) == "batch_size=64;epochs=2;hidden=(64,);l2=0.0;lr=0.1"
    assert point_seeds(3, numpy, 2) == point_seeds(3, plain, 2)
    assert config_key(attrs.evolve(plain, seed=99)) == config_key(plain)  # the seed is not configuration
    assert config_key(TrainConfig()) == ""  # defaults are left out, so a new field keeps old keys
    assert point_seeds(3, attrs.evolve(plain, lr=0.2), 1) != point_seeds(3, plain, 1)


def test_master_seeds_that_are_not_ints_or_seed_sequences_are_refused(splits):
    for seed in (np.random.default_rng(0), 1.5, "7", True):
        with pytest.raises(TypeError, match="seed must be an int or a numpy SeedSequence"):
            point_seeds(seed, BASE)
    with pytest.raises(TypeError, match="SeedSequence"):
        grid_search(np.random.default_rng(0), GRID, splits, base=BASE)


# ---------------------------------------------------------------- the search


def test_results_table_has_one_row_per_point_in_grid_order(serial):
    assert list(serial.columns) == ["hidden", "l2", *RESULT_COLUMNS]
    assert [(h, l2) for h, l2 in zip(serial["hidden"], serial["l2"])] == [
        (p["hidden"], p["l2"]) for p in grid_points(GRID)
    ]
    assert serial["seeds"].tolist() == [point_seeds(7, config) for config in configs_of(GRID)]
    assert serial["seed"].tolist() == [seeds[0] for seeds in serial["seeds"]]
    assert serial["dev_acc_std"].isna().all()  # one seed per point: no estimate of the seed noise
    assert (serial["epochs_run"] == BASE.epochs).all() and (serial["stopped"] == "completed").all()
    assert serial["dev_acc"].between(0, 1).all()
    assert serial["dev_acc"].nunique() > 1  # the points really trained different networks


class ReversedExecutor(Executor):
    """Holds the tasks until the n-th is submitted, then runs them all in reverse order: a worst
    case for code that ties seeds or rows to the order in which work is submitted or done."""

    def __init__(self, n: int):
        self.n, self.pending = n, []

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        self.pending.append((future, fn, args, kwargs))
        if len(self.pending) == self.n:
            for waiting, f, a, k in reversed(self.pending):
                waiting.set_result(f(*a, **k))
        return future


def test_any_executor_gives_the_serial_table(splits, serial):
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = grid_search(7, GRID, splits, base=BASE, executor=pool)
    pd.testing.assert_frame_equal(scores(threaded), scores(serial))


def test_execution_order_does_not_matter(splits, serial):
    finished = []
    reordered = grid_search(
        7, GRID, splits, base=BASE, executor=ReversedExecutor(4), on_result=lambda row: finished.append(row["hidden"])
    )
    pd.testing.assert_frame_equal(scores(reordered), scores(serial))
    assert sorted(finished) == sorted(p["hidden"] for p in grid_points(GRID))


def test_the_search_never_reads_the_test_split(splits, serial):
    n = len(splits.test.X)
    poisoned = attrs.evolve(splits.test, X=np.full((n, 784), np.nan, dtype=np.float32), y=np.full(n, 99))
    results = grid_search(7, GRID, attrs.evolve(splits, test=poisoned), base=BASE)
    pd.testing.assert_frame_equal(scores(results), scores(serial))

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the search read test.{name}")

    grid_search(7, {"l2": [0.0]}, attrs.evolve(splits, test=Untouchable()), base=BASE)


def test_a_diverging_point_scores_nan_and_is_never_best(splits):
    results = grid_search(0, {"lr": [0.05, 1e30]}, splits, base=attrs.evolve(BASE, schedule="constant"))
    assert results["stopped"].tolist()[1] == "diverged"
    assert math.isnan(results["dev_acc"][1]) and math.isnan(results["dev_loss"][1])
    assert best_config(results, BASE).lr == 0.05


def test_the_search_needs_a_dev_split(splits):
    empty = attrs.evolve(splits.dev, X=splits.dev.X[:0], y=splits.dev.y[:0])
    with pytest.raises(ValueError, match="dev"):
        grid_search(0, GRID, attrs.evolve(splits, dev=empty), base=BASE)


def test_a_point_scores_the_same_in_any_grid(splits, serial):
    """The bug this design fixes: a point's seed came from its position, so growing the grid
    changed the scores (and the winner) of the points already in it."""
    other = grid_search(7, {"lr": [0.05, BASE.lr], "l2": [0.25, 0.5, 0.0], "hidden": [(16,), (8,)]}, splits, base=BASE)
    for _, row in serial.iterrows():
        if row["hidden"] == (4,):
            continue
        same = other[(other["hidden"] == row["hidden"]) & (other["l2"] == row["l2"]) & (other["lr"] == BASE.lr)]
        assert len(same) == 1
        assert same["seeds"].iloc[0] == row["seeds"]
        assert same["dev_acc"].iloc[0] == row["dev_acc"] and same["dev_loss"].iloc[0] == row["dev_loss"]


@pytest.mark.slow
def test_repeats_train_each_point_with_k_seeds_and_report_their_mean_and_spread(splits, serial):
    runs = []
    results = grid_search(7, GRID, splits, base=BASE, repeats=3, on_result=runs.append)
    assert list(results.columns) == list(serial.columns) and len(results) == len(serial) and len(runs) == 12
    for (_, row), (_, single) in zip(results.iterrows(), serial.iterrows()):
        assert len(row["seeds"]) == 3 and row["seeds"][0] == single["seed"] == row["seed"]
        accs = [run["dev_acc"] for seed in row["seeds"] for run in runs if run["seed"] == seed]
        assert row["dev_acc"] == np.mean(accs) and row["dev_acc_std"] == pytest.approx(np.std(accs, ddof=1))
        first = next(run for run in runs if run["seed"] == row["seed"])
        assert first["repeat"] == 0 and first["dev_acc"] == single["dev_acc"]  # repeat 0 is the K = 1 run
    assert best_row(results).name == int(np.argmax(results["dev_acc"].to_numpy()))  # chosen on the mean
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = grid_search(7, GRID, splits, base=BASE, repeats=3, executor=pool)
    pd.testing.assert_frame_equal(scores(threaded), scores(results))


def test_a_point_that_diverges_under_one_seed_scores_nan():
    diverged = {"dev_acc": math.nan, "dev_loss": math.nan, "seconds": 1.0, "epochs_run": 1, "stopped": "diverged"}
    fine = {"dev_acc": 0.9, "dev_loss": 0.3, "seconds": 3.0, "epochs_run": 2, "stopped": "completed"}
    from fnn.tune import _summary

    row = _summary((1, 2), [fine, diverged])
    assert math.isnan(row["dev_acc"]) and row["stopped"] == "diverged" and row["epochs_run"] == 2
    assert row["seconds"] == 2.0 and row["seeds"] == (1, 2) and row["seed"] == 1


def test_search_takes_any_list_of_points_and_checks_them(splits):
    points = [{"hidden": (8,), "l2": 0.5}, {"hidden": (4,), "l2": 0.0}]
    results = search(7, points, splits, base=BASE)
    assert results[["hidden", "l2"]].to_dict("records") == points
    with pytest.raises(ValueError, match="same fields"):
        search(7, [{"l2": 0.0}, {"lr": 0.1}], splits, base=BASE)
    with pytest.raises(ValueError, match="'seed'"):
        search(7, [{"seed": 1}], splits, base=BASE)
    with pytest.raises(ValueError, match="repeats"):
        search(7, points, splits, base=BASE, repeats=0)


# ---------------------------------------------------------------- random points


def test_log_uniform_between_spans_the_positive_values_and_keeps_zero_apart():
    assert log_uniform_between([0.0, 0.1, 1e-3]) == LogUniform(1e-3, 0.1, zero=True)
    assert log_uniform_between([0.5, 0.05]) == LogUniform(0.05, 0.5)
    assert log_uniform_between([0.0, 0.1]) == [0.0, 0.1]  # nothing to spread between
    assert log_uniform_between([0.2, 0.2]) == [0.2]
    assert log_uniform_between([0.0]) == [0.0]
    with pytest.raises(ValueError, match="low <= high"):
        LogUniform(0.1, 0.01)


def test_sampled_points_are_seeded_log_uniform_and_in_range():
    space = {"hidden": [(8,), (16,), (32,)], "l2": LogUniform(1e-4, 1.0, zero=True), "lr": LogUniform(1e-3, 1.0)}
    points = sample_points(np.random.default_rng(5), space, 400)
    assert points == sample_points(np.random.default_rng(5), space, 400)  # seeded
    assert points != sample_points(np.random.default_rng(6), space, 400)
    assert 390 <= len(points) == len({repr(p) for p in points})  # the odd duplicate is dropped
    assert all(list(point) == ["hidden", "l2", "lr"] for point in points)
    lrs = np.array([p["lr"] for p in points])
    l2s = np.array([p["l2"] for p in points])
    assert {p["hidden"] for p in points} == set(space["hidden"])
    assert lrs.min() >= 1e-3 and lrs.max() <= 1.0 and all(float(f"{lr:.3g}") == lr for lr in lrs)
    assert 0.4 < np.mean(l2s == 0) < 0.6  # 0 is its own choice, half the time
    assert l2s[l2s > 0].min() >= 1e-4 and l2s.max() <= 1.0
    # log-uniform: each decade of the lr range gets about a third of the draws
    decades = np.histogram(np.log10(lrs), bins=[-3, -2, -1, 0])[0] / len(lrs)
    assert np.all(np.abs(decades - 1 / 3) < 0.08), decades


def test_sampling_drops_duplicates_and_checks_the_space():
    points = sample_points(np.random.default_rng(0), {"hidden": [(8,), (16,)], "l2": [0.0]}, 30)
    assert points == [{"hidden": (8,), "l2": 0.0}, {"hidden": (16,), "l2": 0.0}] or points == [
        {"hidden": (16,), "l2": 0.0}, {"hidden": (8,), "l2": 0.0}
    ]
    with pytest.raises(ValueError, match="'width'"):
        sample_points(np.random.default_rng(0), {"width": [1]}, 3)
    with pytest.raises(ValueError, match="non-empty"):
        sample_points(np.random.default_rng(0), {"l2": []}, 3)
    with pytest.raises(ValueError, match="n must be"):
        sample_points(np.random.default_rng(0), {"l2": [0.0]}, 0)


# ---------------------------------------------------------------- fnn tune --repeats --samples


@pytest.mark.slow
def test_tune_command_samples_points_and_repeats_seeds(capsys, tmp_path):
    out = tmp_path / "tune"
    argv = [
        "tune", "--epochs", "1", "--batch-size", "256", "--hiddens", "8", "16", "--l2s", "0", "0.01", "1",
        "--lrs", "0.05", "0.5", "--samples", "4", "--repeats", "2", "--workers", "1", "--no-progress",
        "--out", str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "tune.csv")
    assert list(table.columns) == ["hidden", "l2", "lr", *RESULT_COLUMNS]
    assert 1 <= len(table) <= 4 and set(table["hidden"]) <= {8, 16}
    assert table["lr"].between(0.05, 0.5).all()
    assert ((table["l2"] == 0) | table["l2"].between(0.01, 1)).all()
    seeds = [tuple(map(int, text.split())) for text in table["seeds"]]
    assert all(len(s) == 2 and s[0] == first for s, first in zip(seeds, table["seed"]))
    assert table["dev_acc_std"].notna().all()
    best = table.loc[table["dev_acc"].idxmax()]
    _, meta = load_model(out / "model.npz")
    assert meta["training_config"]["seed"] == best["seed"] and meta["training_config"]["lr"] == best["lr"]
    assert "mean of 2 seeds" in printed and "random points x 2 seeds" in printed


# ---------------------------------------------------------------- choosing the best


def table(dev_acc, dev_loss) -> pd.DataFrame:
    n = len(dev_acc)
    return pd.DataFrame(
        {
            "hidden": [(10 * (i + 1),) for i in range(n)],
            "l2": [0.1 * i for i in range(n)],
            "seed": list(range(100, 100 + n)),
            "dev_acc": dev_acc,
            "dev_loss": dev_loss,
            "seconds": [1.0] * n,
            "epochs_run": [2] * n,
            "stopped": ["completed"] * n,
        }
    )


def test_best_row_breaks_ties_by_loss_then_by_grid_order():
    assert best_row(table([0.9, 0.95, 0.95], [0.3, 0.2, 0.1])).name == 2  # tie on accuracy: lower loss
    assert best_row(table([0.95, 0.9, 0.95], [0.2, 0.1, 0.2])).name == 0  # full tie: earlier row
    assert best_row(table([math.nan, 0.5], [math.nan, 2.0])).name == 1  # NaN never wins
    with pytest.raises(ValueError, match="diverged"):
        best_row(table([math.nan, math.nan], [math.nan, math.nan]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0.5, 0.8, 0.9, math.nan]), min_size=1, max_size=8), st.randoms())
def test_best_row_does_not_depend_on_how_the_table_is_shuffled_before_sorting(accs, random):
    if all(math.isnan(a) for a in accs):
        return
    results = table(accs, [1.0] * len(accs))
    winner = best_row(results)
    assert winner["dev_acc"] == np.nanmax(accs)
    assert winner.name == int(np.nanargmax(accs))  # the first of the best, in grid order


def test_best_config_trains_back_to_the_search_score(splits, serial):
    config = best_config(serial, BASE)
    winner = best_row(serial)
    assert config.hidden == winner["hidden"] and config.l2 == winner["l2"] and config.seed == winner["seed"]
    assert (config.epochs, config.batch_size) == (BASE.epochs, BASE.batch_size)
    refit = train(np.random.default_rng(config.seed), config, splits.train, splits.dev)
    assert evaluate(refit.best_params, splits.dev.X, splits.dev.y)[1] == winner["dev_acc"]


def _tune_on_two_workers_in_its_own_group(tmp_path):
    """`fnn tune --workers 2` in a child process leading its own process group (so a test can
    signal the group, as a terminal or `timeout` does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "fnn", "tune", "--epochs", "50", "--hiddens", "32", "64", "--l2s", "0,1",
         "--workers", "2", "--no-progress", "--out", str(tmp_path / "tune")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
    )


@pytest.mark.slow
def test_ctrl_c_of_tune_with_workers_is_one_line_without_worker_tracebacks(tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    # a terminal's Ctrl-C sends SIGINT to the whole foreground process group: parent and workers
    process = _tune_on_two_workers_in_its_own_group(tmp_path)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    try:
        deadline = time.monotonic() + 60
        while len(children.read_text().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the workers are importing fnn or training
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "completed" not in out and not (tmp_path / "tune").exists()


# ---------------------------------------------------------------- --scheduler at something that is not Dask


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the server's log would share the command's stderr
        pass


@contextlib.contextmanager
def foreign_server(kind: str):
    """A server on 127.0.0.1 (port 0) that is not a Dask scheduler, in a thread: 'silent'
    accepts and never answers, 'random' answers each connection with 4 KiB of seeded random
    bytes, 'http' is `python -m http.server`. Yields its port."""
    if kind == "http":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
        return
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # the 0.1 s timeout: look at `stop` again
                continue
            accepted.append(conn)
            if kind == "random":
                with contextlib.suppress(OSError):
                    conn.sendall(random.Random(len(accepted)).randbytes(4096))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize(
    "kind, scheme",
    [
        ("silent", "tcp"), ("random", "tls"),  # about 1 s each, in the fast set; the others in the full suite
        *(pytest.param(*case, marks=pytest.mark.slow) for case in [("http", "tcp"), ("random", "tcp"), ("silent", "ws"), ("http", "ws")]),
    ],
)
def test_tune_scheduler_that_is_not_dask_is_one_line_within_the_deadline(kind, scheme, monkeypatch, capsys, tmp_path):
    from fnn.cli import tune as tune_command

    pytest.importorskip("distributed")
    monkeypatch.setattr(tune_command, "CONNECT_TIMEOUT_S", 1)
    with foreign_server(kind) as port:
        address = f"{scheme}://127.0.0.1:{port}"
        started = time.monotonic()
        status = main(["tune", "--epochs", "1", "--hiddens", "8", "--no-progress", "--scheduler", address,
                       "--out", str(tmp_path / "run")])
        seconds = time.monotonic() - started
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"fnn: error: --scheduler {address}: "), lines[0]
    assert ("TLS settings" if scheme == "tls" else "dask scheduler") in lines[0], lines[0]
    assert seconds < 1 + 2, seconds  # the deadline covers the whole handshake, not only the connect
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tune_scheduler_at_a_silent_port_ends_within_10_seconds_from_the_shell(tmp_path):
    with foreign_server("silent") as port:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "fnn", "tune", "--epochs", "1", "--no-progress",
             "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
        seconds = time.monotonic() - started
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "within 5 s" in done.stderr and seconds < 10, (seconds, done.stderr)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_tunes_process_group_ends_tune_and_its_workers_within_5_seconds(tmp_path):
    """What `timeout` and systemd do: SIGTERM to the parent and its 2 workers at once."""
    import os
    import signal
    from pathlib import Path

    process = _tune_on_two_workers_in_its_own_group(tmp_path)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    try:
        deadline = time.monotonic() + 60
        while "on 2 workers" not in (process.stdout.readline() or "on 2 workers") and time.monotonic() < deadline:
            pass  # the data line: the pool is up and runs are submitted
        while len(children.read_text().split()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # the resource tracker and both workers
        time.sleep(0.5)  # the workers are training
        os.killpg(process.pid, signal.SIGTERM)
        started = time.monotonic()
        out, err = process.communicate(timeout=30)
        seconds = time.monotonic() - started
    finally:
        process.kill()
    assert process.returncode == 143 and seconds < 5, (process.returncode, seconds, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    time.sleep(0.2)
    live = [pid for pid in os.listdir("/proc") if pid.isdigit() and _session_of(pid) == process.pid]
    assert live == [], live  # exited children not reaped by this container's init are zombies, not counted
    assert not (tmp_path / "tune").exists()


def _session_of(pid: str) -> int | None:
    """The session id of a live (not zombie) process, None for a zombie or one gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[3])
