"""Tuning on a Dask cluster: `grid_search` on a real LocalCluster's executor and `fnn tune
--scheduler` give the local table, and a missing package, an unreachable scheduler or a bad
address end in one line naming the fix."""

from __future__ import annotations

import socket
import sys

import attrs
import numpy as np
import pandas as pd
import pytest

from fnn.cli import main
from fnn.cli import tune as tune_command
from fnn.config import TrainConfig
from fnn.data import load_dataset, split
from fnn.tune import grid_search

BASE = TrainConfig(epochs=2, batch_size=64, hidden=(8,))
GRID = {"hidden": [(4,), (8,)], "l2": [0.0, 0.5]}
TUNE = ["tune", "--epochs", "1", "--hiddens", "8", "16", "--l2s", "0,1", "--batch-size", "256", "--repeats", "2", "--no-progress"]


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and 2 worker processes (spawned, one thread each) on this machine."""
    import distributed

    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as local_cluster:
        yield local_cluster


def assert_one_line_error(status: int, err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("fnn: error: "), err
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Large object:UserWarning", "ignore:Sending large graph:UserWarning")
def test_tune_grid_search_on_a_cluster_executor_equals_the_serial_table(cluster):
    """The plain executor, which sends the data with every task (`fnn tune` scatters it once)."""
    from distributed import Client

    sample = load_dataset("sample")
    rows = np.random.default_rng(1).choice(len(sample.X), size=600, replace=False)
    splits = split(attrs.evolve(sample, X=sample.X[rows], y=sample.y[rows]), np.random.default_rng(2), dev=100, test=100)
    serial = grid_search(7, GRID, splits, base=BASE, repeats=2)
    with Client(cluster, set_as_default=False) as client:
        distributed = grid_search(7, GRID, splits, base=BASE, repeats=2, executor=client.get_executor())
    pd.testing.assert_frame_equal(distributed.drop(columns="seconds"), serial.drop(columns="seconds"))


@pytest.mark.slow
def test_tune_with_scheduler_writes_the_local_table(cluster, capsys, tmp_path):
    assert main([*TUNE, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "cluster")]) == 0
    printed = capsys.readouterr().out
    assert main([*TUNE, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    on_cluster = pd.read_csv(tmp_path / "cluster" / "tune.csv")
    local = pd.read_csv(tmp_path / "local" / "tune.csv")
    pd.testing.assert_frame_equal(on_cluster.drop(columns="seconds"), local.drop(columns="seconds"))
    assert f"on Dask scheduler {cluster.scheduler_address} (2 workers)" in printed
    assert {"tune.csv", "tune_heatmap.png", "model.npz"} <= {p.name for p in (tmp_path / "cluster").iterdir()}


def test_tune_scheduler_without_distributed_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    status = main([*TUNE, "--scheduler", "tcp://127.0.0.1:8786", "--out", str(tmp_path / "run")])
    assert_one_line_error(status, capsys.readouterr().err, "pip install 'fnn[dask]'")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tune_unreachable_scheduler_fails_fast_in_one_line(monkeypatch, capsys, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(tune_command, "CONNECT_TIMEOUT_S", 1)
    status = main([*TUNE, "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "run")])
    assert_one_line_error(status, capsys.readouterr().err, "no Dask scheduler answered within 1 s", "dask scheduler")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tune_scheduler_without_workers_says_to_start_some(monkeypatch, capsys, tmp_path):
    import distributed

    monkeypatch.setattr(tune_command, "CONNECT_TIMEOUT_S", 1)
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=":0") as empty:
        status = main([*TUNE, "--scheduler", empty.scheduler_address, "--out", str(tmp_path / "run")])
    assert_one_line_error(status, capsys.readouterr().err, "no workers after 1 s", "dask worker")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("address", ["localhost", "http://host:80", "tcp://host:port", "tcp://:8786", "tcp://host:70000"])
def test_tune_scheduler_address_is_checked_before_any_work(address, capsys, tmp_path):
    status = main([*TUNE, "--scheduler", address, "--out", str(tmp_path / "run")])
    assert_one_line_error(status, capsys.readouterr().err, "--scheduler", "tcp://10.0.0.5:8786")
