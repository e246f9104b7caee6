"""The benchmarks can't rot: every asv class sets up and runs once on tiny sizes, the plain
runner prints its table, and the BLAS-floor bookkeeping counts the right products."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import __main__ as runner
from benchmarks import common

import fnn


@pytest.fixture
def tiny(monkeypatch):
    """Small data sets and one-call timings, so every benchmark runs in milliseconds."""
    monkeypatch.setattr(common, "N_TRAIN", 300)
    monkeypatch.setattr(common, "N_TEST", 200)
    monkeypatch.setattr(common, "best_seconds", lambda fn, **_: (fn(), 1e-3)[1])


def smallest_point(cls) -> tuple:
    return runner.grid(cls)[0]


@pytest.mark.parametrize("cls", list(runner.benchmark_classes()), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_benchmark_sets_up_and_runs_once(cls, tiny):
    point = smallest_point(cls)
    bench = cls()
    bench.setup(*point)
    methods = [m for m in dir(cls) if m.startswith(("time_", "peakmem_", "track_"))]
    assert methods, f"{cls.__name__} has no asv benchmark methods"
    for name in methods:
        result = getattr(bench, name)(*point)
        if name.startswith("track_"):
            assert np.isfinite(result) and result > 0, f"{cls.__name__}.{name} tracked {result}"
    assert "params" not in vars(bench), "asv owns the name `params`: don't set it on the instance"


@pytest.mark.slow
def test_runner_prints_a_row_per_benchmark_and_grid_point(tiny, capsys):
    assert runner.main(["-k", "StepProducts", "--quick"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("StepProducts.time_step_products")]
    assert len(rows) == len(runner.grid(runner_class("StepProducts")))
    assert "BLAS" in out.splitlines()[0]


def runner_class(name: str) -> type:
    (cls,) = [c for c in runner.benchmark_classes() if c.__name__ == name]
    return cls


def test_step_products_are_the_five_of_a_one_hidden_layer_step():
    products = common.step_products(128, (784, 128, 10))
    assert [p.name for p in products] == ["X@W1", "A1@W2", "A1.T@dZ2", "dZ2@W2.T", "X.T@dZ1"]
    # 2·m·n_in·n_out per product: twice per layer (forward, dW), plus dA for every layer but the first
    assert common.step_flops(128, (784, 128, 10)) == 2 * 128 * (2 * 784 * 128 + 3 * 128 * 10)
    assert common.forward_flops(10, (784, 128, 10)) == 2 * 10 * (784 * 128 + 128 * 10)


def test_product_operands_have_the_products_shapes():
    for p in common.step_products(7, (5, 4, 3, 2)):
        (a, b, out), = common.product_operands((p,), "float64")
        assert a.shape[1] == b.shape[0] and out.shape == (a.shape[0], b.shape[1])
        assert 2 * a.shape[0] * a.shape[1] * b.shape[1] == common.product_flops(p)
        assert a.dtype == b.dtype == np.float64


@pytest.mark.parametrize("n, batch", [(60_000, 128), (256, 128), (5, 10), (1, 1)])
def test_batch_sizes_cover_every_row_once(n, batch):
    sizes = common.batch_sizes(n, batch)
    assert sum(sizes) == n and all(0 < s <= batch for s in sizes) and len(sizes) == -(-n // batch)


def test_cached_inputs_are_read_only_and_reproducible():
    X, y = common.synthetic_data(50)
    assert X.shape == (50, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert not X.flags.writeable and not y.flags.writeable
    assert 0 <= X.min() and X.max() < 1 and 0 <= y.min() and y.max() < 10
    common.synthetic_data.cache_clear()
    np.testing.assert_array_equal(common.synthetic_data(50)[0], X)


def load_script(name: str):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_side_by_side():
    return load_script("side_by_side")


def test_side_by_side_summary_table_and_ratios():
    sbs = load_side_by_side()
    run = {"epoch_seconds": [0.5, 0.25, 0.25], "epoch_test_acc": [0.80, 0.881, 0.89],
           "n_train": 1000, "base_rss_mb": 100.0, "peak_rss_mb": 150.0}
    fnn_row = sbs.summarise("fnn", "784-128-10", run, target=0.88)
    assert fnn_row["s to 0.88"] == 0.75  # cumulative training seconds at the first epoch >= target
    assert fnn_row["samples/s"] == 1000 / (1.0 / 3) and fnn_row["test acc"] == 0.89
    slow = sbs.summarise("pytorch", "784-128-10", {**run, "epoch_seconds": [1.0] * 3, "epoch_test_acc": [0.5] * 3}, 0.88)
    assert np.isnan(slow["s to 0.88"])
    assert sbs.ratios([fnn_row, slow]) == ["784-128-10: fnn / pytorch seconds per epoch = 0.33"]
    text = sbs.table([fnn_row, slow], markdown=True)
    assert text.splitlines()[0].startswith("| framework | arch |") and len(text.splitlines()) == 4


def test_runner_cpu_clock_and_thread_limit_are_undone_afterwards(tiny, capsys):
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info()]
    assert runner.main(["-k", "EachProduct", "--quick", "--clock", "cpu", "--threads", "1"]) == 0
    assert "clock cpu" in capsys.readouterr().out
    assert common.CLOCK is __import__("time").perf_counter
    assert [i["num_threads"] for i in threadpool_info()] == before


@pytest.mark.parametrize("make", [lambda: fnn.optim.sgd(0.1, 0.9), lambda: fnn.optim.adam(1e-3)], ids=["sgd", "adam"])
def test_decaying_optimizer_state_never_turns_subnormal(make):
    """A parameter whose gradient goes to exactly 0 (a dead unit, a blank pixel) has its velocity
    or first moment decay as 0.9^t: without flushing, it and lr times it spend hundreds of steps
    subnormal, where x86 multiplies ~17x slower (see fnn.optim._flush_subnormals)."""
    optimizer = make()
    params = {"w": np.zeros(2, dtype=np.float32)}
    state = optimizer.init(params)
    tiny = np.finfo(np.float32).tiny
    g = {"w": np.array([1.0, -1.0], dtype=np.float32)}
    zero = {"w": np.zeros(2, dtype=np.float32)}
    for t in range(1100):  # 0.9^t passes below tiny near t = 830 and underflows to 0 near t = 985
        updates, state = optimizer.update(g if t == 0 else zero, state, params)
        for leaf in fnn.tree_leaves(state[0]) + fnn.tree_leaves(updates):
            if isinstance(leaf, np.ndarray):
                assert not ((leaf != 0) & (np.abs(leaf) < tiny)).any(), f"subnormal state at step {t}"


def test_side_by_side_pairs_each_epoch_with_the_peers_same_epoch():
    sbs = load_side_by_side()
    rounds = [{"fnn": {"epoch_seconds": [9.0, 1.0, 2.0]}, "pytorch": {"epoch_seconds": [1.0, 2.0, 2.0]}},
              {"fnn": {"epoch_seconds": [5.0, 3.0, 1.0]}, "pytorch": {"epoch_seconds": [5.0, 4.0, 4.0]}}]
    [(peer, median, q1, q3, n)] = sbs.paired_ratios(rounds)  # no scikit-learn runs: no line for it
    assert peer == "pytorch" and n == 4  # first epochs left out
    assert median == np.median([0.5, 1.0, 0.75, 0.25]) and q1 < median < q3


def test_side_by_side_reports_a_failed_worker_whatever_it_wrote_to_stderr(monkeypatch):
    """A worker that floods stderr (100 KB, more than a pipe holds) and dies must come back as an
    error naming it with its last words, not hang the parent."""
    import sys
    import threading

    sbs = load_side_by_side()
    flood = "import sys; sys.stderr.write('w' * 100_000 + ' the end'); sys.exit(1)"
    monkeypatch.setattr(sbs, "worker_command", lambda args, f, h: [sys.executable, "-c", flood])
    args = sbs.parse(["--epochs", "1"])
    outcome = {}

    def run():
        try:
            sbs.run_round(args, ["fnn"], 8)
        except RuntimeError as e:
            outcome["error"] = str(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "run_round hung on a worker's stderr"
    assert outcome["error"].startswith("fnn (H=8) failed:") and outcome["error"].endswith("the end")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed")
def test_side_by_side_runs_frameworks_in_turns_end_to_end(tmp_path, capsys):
    sbs = load_side_by_side()
    out = tmp_path / "table.md"
    frameworks = "fnn,scikit-learn" if sbs.available("scikit-learn") is None else "fnn"
    assert sbs.main(["--quick", "--n-train", "2000", "--frameworks", frameworks, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fnn  784-128-10" in text and out.read_text().startswith("| framework | arch |")
    if frameworks != "fnn":
        assert "fnn / scikit-learn epoch by epoch" in text and "(median of 1 pairs" in text


def test_adam_vs_sgd_pairs_blocks_of_the_same_batches(tiny, capsys):
    script = load_script("adam_vs_sgd")
    ratios, sgd_step, adam_step = script.paired_ratios(hidden=8, pairs=3, block=2, batch=50)
    assert len(ratios) == 3 and all(r > 0 for r in ratios) and sgd_step > 0 and adam_step > 0
    assert script.main(["--hidden", "8", "--pairs", "3", "--block", "2", "--batch", "50"]) == 0
    out = capsys.readouterr().out
    assert "784-8-10: Adam/SGD epoch time" in out and "1 threads" in out
    with pytest.raises(SystemExit):
        script.main(["--pairs", "0"])
