"""The package's shape: what the design promises about fnn/ as a whole, checked on its source."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import fnn
import fnn.layers

PACKAGE = Path(fnn.__file__).parent


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_function_of_fnn_shadows_a_module():
    """`import fnn.training; fnn.training.evaluate` must work: no name in `fnn` is both a
    function and a module of the package."""
    modules = {info.name for info in pkgutil.iter_modules([str(PACKAGE)])}
    shadowed = [name for name in modules if callable(getattr(fnn, name, None)) and not isinstance(
        getattr(fnn, name), type(fnn))]
    assert not shadowed, shadowed
    for name in ("training", "fitting", "nn", "optim", "tree"):
        assert importlib.import_module(f"fnn.{name}") is getattr(fnn, name)


def test_no_module_state_reference_counts_or_weak_tables():
    for path in sources():
        text = path.read_text()
        for banned in ("getrefcount", "weakref", "threading.local", "np.random.seed"):
            assert banned not in text, f"{path.relative_to(PACKAGE)} uses {banned!r}"
        assert not any(isinstance(node, ast.Global) for node in ast.walk(ast.parse(text))), path


def test_the_core_names_no_layer_class():
    """nn.py, training.py and fitting.py work through what layers declare, never their types."""
    layer_classes = set(fnn.params.BUILT_IN)
    for name in ("nn.py", "training.py", "fitting.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not used & layer_classes, f"{name} names {sorted(used & layer_classes)}"
