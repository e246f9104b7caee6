"""The `fnn` command end to end: every subcommand on the bundled sample with tiny settings.

Most tests call `fnn.cli.main([...])` in-process (fast); `test_python_dash_m_entry_point` runs
the real entry point in a subprocess. Each failure case checks the contract: exit status 2,
exactly one line on stderr, no traceback, and no output files left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fnn.cli import main

REPO = Path(__file__).resolve().parents[1]


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


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_passes_and_names_every_parameter(capsys):
    status, out, _ = run(capsys, "gradcheck", "--sizes", "6,5,4,3", "--batch", "4", "--seed", "3")
    assert status == 0
    for name in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert f"\n{name} " in out
    assert "PASS" in out and "FAIL" not in out


def test_gradcheck_fails_with_status_1_when_the_tolerance_is_missed(capsys, monkeypatch):
    # A gradient check that reports a large error must FAIL; the CLI only compares numbers.
    monkeypatch.setattr("fnn.cli.check_grads", lambda rng, sizes, batch, l2: [("W1", 1e-3), ("b1", 1e-9)])
    status, out, _ = run(capsys, "gradcheck")
    assert status == 1
    assert "FAIL" in out


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
