"""README's Python examples run as written (a README that lies is a bug)."""

import re

import pytest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_every_python_block_in_readme_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write model files where a reader would: here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:  # later blocks build on earlier ones, as a reader would run them
        exec(compile(block, str(README), "exec"), namespace)
    loss, accuracy = namespace["fnn"].evaluate(
        namespace["state"].params, namespace["splits"].test.X, namespace["splits"].test.y
    )
    assert accuracy > 0.9
    swish = namespace["swish_run"]  # the user's own layer trained through fit and reloaded
    assert swish.history.dev_acc.max() > 0.8
    assert type(namespace["swish_net"].layers[1]).__name__ == "Swish"
