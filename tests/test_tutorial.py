"""docs/tutorial.ipynb, the learner's path, runs from top to bottom, and the outputs stored in it
(so that it reads on a code host without running it) are the ones it prints today.

It runs in a fresh Jupyter kernel (nbclient + ipykernel, from the `test` extra), in a copy:
the file in docs/ is never written. The kernel inherits the suite's one BLAS thread and the
notebook sets one itself, so its numbers are the same bits on every run; when a change to fnn
changes them, store the new outputs with

    jupyter execute --inplace docs/tutorial.ipynb

and read the prose beside any number that moved. About 30 s on the 2-core machine, quiet.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def _stdout(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")


def _errors(cell) -> list[str]:
    return [f"{output['ename']}: {output['evalue']}" for output in cell.get("outputs", [])
            if output.get("output_type") == "error"]


def test_the_stored_notebook_reads_without_running():
    """Every code cell has run, in order, and kept its output; figures are stored as PNGs."""
    notebook = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [error for cell in code for error in _errors(cell)]
    figures = [output for cell in code for output in cell.outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 8
    assert all(cell.outputs for cell in code[1:-1]), "a code cell without output: did it run?"


@pytest.mark.slow
def test_the_notebook_runs_and_prints_what_it_stores(tmp_path):
    stored = nbformat.read(TUTORIAL, as_version=4)
    fresh = nbformat.read(TUTORIAL, as_version=4)
    NotebookClient(fresh, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [(old, new) for old, new in zip(stored.cells, fresh.cells) if new.cell_type == "code"]
    assert not [error for _, new in cells for error in _errors(new)]
    # what the notebook prints (never a clock: timings go to tables and progress bars) is what it stores
    for number, (old, new) in enumerate(cells, start=1):
        assert _stdout(new) == _stdout(old), (
            f"code cell {number} ({new.source.splitlines()[0]!r}) printed other numbers than the stored ones: "
            f"run `jupyter execute --inplace docs/tutorial.ipynb` and check the prose beside them"
        )
    assert re.search(r"test accuracy 0\.9\d{3}", "".join(_stdout(new) for _, new in cells))
