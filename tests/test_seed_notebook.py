"""scripts/seed_notebook.py, the tutorial, runs top to bottom and writes what it promises."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import fnn

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "seed_notebook.py"


@pytest.mark.slow
def test_seed_notebook_runs_end_to_end(tmp_path):
    done = subprocess.run(
        # 100 of the seed recipe's 500 full-batch steps: the flow is the same, in a third of the time
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--seed", "0", "--iterations", "100"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    for name in ("training_metrics.png", "model.npz", "sample_predictions.png", "tune_heatmap.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or name.endswith(".npz")
    params, metadata = fnn.load_model(tmp_path / "model.npz")
    assert metadata["layer_sizes"][0] == 784 and metadata["layer_sizes"][-1] == 10
    # the seed recipe and the tuned default both report a test accuracy well above chance
    accuracies = [float(a) for a in re.findall(r"test loss [0-9.]+\s+accuracy ([0-9.]+)", done.stdout)]
    assert accuracies and min(accuracies) > 0.85, done.stdout
