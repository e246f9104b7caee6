"""README's and docs/'s Python examples run as written, each block on its own (a README that
lies is a bug), and README stays a page a reader finishes."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_readme_is_short_and_keeps_its_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for command in ('pip install -e . && fnn train', 'pip install -e ".[test]" && pytest'):
        assert f"```\n{command}\n```" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    "page, index", [(page, i) for page in PAGES for i in range(len(blocks(page)))],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_every_python_block_runs_alone(page, index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks write model files where a reader would: here
    namespace: dict = {"__name__": "__main__"}
    exec(compile(blocks(page)[index], str(page), "exec"), namespace)
    if "state" in namespace:  # the fold
        assert namespace["fnn"].evaluate(namespace["state"].params, namespace["splits"].test.X,
                                         namespace["splits"].test.y)[1] > 0.9
    if "swish_net" in namespace:  # the user's own layer, trained through fit and reloaded
        assert namespace["swish_run"].history.dev_acc.max() > 0.8
        assert type(namespace["swish_net"].layers[1]).__name__ == "Swish"
    if "cnn_run" in namespace:
        assert namespace["cnn_run"].history.dev_acc.max() > 0.85
