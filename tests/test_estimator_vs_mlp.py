"""scripts/estimator_vs_mlp.py can't rot: one pair of tiny fits on the bundled sample prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("threadpoolctl")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "estimator_vs_mlp.py"


@pytest.mark.slow  # two fits in fresh processes: about 5 s
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux /proc")
def test_one_tiny_pair_prints_every_line_of_the_table(tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", "sample", "--rows", "500", "--epochs", "1", "--pairs", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text in done.stdout
    for needle in ("machine:", "threads: 1", "BLAS seen by the FNNClassifier child", "| 1 | FNNClassifier |",
                   "| 1 | MLPClassifier |", "time ratio fnn / sklearn, wall", "test accuracy fnn − sklearn, points",
                   "peak MB fnn / sklearn", "MLPClassifier ran all 1 epochs", "Targets (issue 24)"):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert len([line for line in text.splitlines() if line.startswith("| 1 |")]) == 2  # one row per run
    assert "500 training rows, 1,000 test rows" in text and "threads=1" in text
