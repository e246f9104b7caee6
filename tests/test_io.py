"""Model files: bit-exact round trips, and a clear ModelFileError for every broken file."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn.errors import ModelFileError
from fnn.files import atomic_path
from fnn.io import FORMAT_VERSION, METADATA_KEY, load_model, save_model
from fnn.nn import predict_proba
from fnn.params import MLP, Dense, init, layer_sizes


@pytest.fixture
def params() -> MLP:
    return init(np.random.default_rng(0), (784, 16, 8, 10))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _write(path: Path, arrays: dict[str, np.ndarray], metadata_changes: dict | None = None) -> Path:
    """Re-write an npz from `arrays`, editing its metadata JSON by `metadata_changes`."""
    meta = json.loads(str(arrays[METADATA_KEY]))
    meta.update(metadata_changes or {})
    arrays = {**arrays, METADATA_KEY: np.array(json.dumps(meta))}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    params = init(np.random.default_rng(1), (784, 32, 10), dtype=dtype)
    X = np.random.default_rng(2).random((50, 784), dtype=np.float32)
    path = save_model(tmp_path / "m.npz", params, {"class_names": list("abcdefghij"), "metrics": {"dev_acc": 0.5}})
    loaded, meta = load_model(path)
    assert layer_sizes(loaded) == (784, 32, 10)
    for a, b in zip(loaded.layers, params.layers):
        assert a.W.dtype == dtype and np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    assert np.array_equal(predict_proba(loaded, X), predict_proba(params, X))
    assert meta["format"] == "fnn-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["fnn_version"] == fnn.__version__
    assert meta["layer_sizes"] == [784, 32, 10] and meta["dtype"] == np.dtype(dtype).name
    assert meta["class_names"] == list("abcdefghij") and meta["metrics"] == {"dev_acc": 0.5}
    assert "pixels / 255" in meta["preprocessing"]


def test_metadata_defaults_and_numpy_scalars(tmp_path, params):
    meta = {"metrics": {"acc": np.float32(0.9), "n": np.int64(3), "ok": np.bool_(True)}, "config": (1, None)}
    _, loaded = load_model(save_model(tmp_path / "m.npz", params, meta))
    assert loaded["class_names"] == [str(j) for j in range(10)]
    assert loaded["metrics"] == {"acc": 0.9, "n": 3, "ok": True} and loaded["config"] == [1, None]


def test_file_holds_only_plain_arrays(tmp_path, params):
    arrays = _arrays(save_model(tmp_path / "m.npz", params))
    assert sorted(arrays) == sorted(["W1", "b1", "W2", "b2", "W3", "b3", METADATA_KEY])
    assert all(a.dtype != object for a in arrays.values())


def test_save_does_not_change_params(tmp_path, params):
    before = [(layer.W.copy(), layer.b.copy()) for layer in params.layers]
    save_model(tmp_path / "m.npz", params)
    assert all(np.array_equal(l.W, W) and np.array_equal(l.b, b) for l, (W, b) in zip(params.layers, before))


# ---------------------------------------------------------------- what save refuses


@pytest.mark.parametrize(
    "metadata, error, words",
    [
        ({"config": {"rng": np.random.default_rng(0)}}, TypeError, "metadata['config']['rng'] is a Generator"),
        ({"metrics": {"dev_acc": float("nan")}}, ValueError, "metadata['metrics']['dev_acc'] is nan"),
        ({"metrics": {1: 0.5}}, TypeError, "non-string key 1"),
        ({"format_version": 9}, ValueError, "may not set ['format_version']"),
        ({"class_names": ["a", "b"]}, ValueError, "must be 10 strings"),
    ],
)
def test_save_rejects_bad_metadata_and_writes_nothing(tmp_path, params, metadata, error, words):
    with pytest.raises(error) as info:
        save_model(tmp_path / "m.npz", params, metadata)
    assert words in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_non_finite_or_mixed_params(tmp_path, params):
    bad = MLP(layers=(Dense(W=params.layers[0].W.copy(), b=params.layers[0].b),) + params.layers[1:])
    bad.layers[0].W[3, 4] = np.nan
    with pytest.raises(ValueError, match="W1 holds NaN"):
        save_model(tmp_path / "m.npz", bad)
    mixed = MLP(layers=(Dense(W=params.layers[0].W.astype(np.float64), b=params.layers[0].b),) + params.layers[1:])
    with pytest.raises(TypeError, match="b1 has dtype float32"):
        save_model(tmp_path / "m.npz", mixed)
    with pytest.raises(TypeError, match="params must be an fnn.MLP"):
        save_model(tmp_path / "m.npz", [(params.layers[0].W, params.layers[0].b)])
    with pytest.raises(ValueError, match="W1 must be a 2-D numpy array"):
        save_model(tmp_path / "m.npz", MLP(layers=(Dense(W=[[1.0]], b=np.zeros(1)),)))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- atomic writing


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.csv"
    for interrupt in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(interrupt)):
            with atomic_path(target) as tmp:
                tmp.write_text("half of a fi")
                raise interrupt
        assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("midway")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_interrupted_model_save_leaves_no_file(tmp_path, params, monkeypatch):
    def savez_then_crash(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.npz", params)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_and_keeps_suffix(tmp_path):
    target = tmp_path / "table.csv.gz"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".table.csv.gz") and not tmp.exists()
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_atomic_path_needs_an_existing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_path(tmp_path / "missing" / "x.png"):
            pass


# ---------------------------------------------------------------- broken and foreign files


def _tampered(tmp_path: Path, params: MLP, case: str) -> Path:
    path = save_model(tmp_path / "m.npz", params)
    arrays = _arrays(path)
    if case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    if case == "shape":
        return _write(path, {**arrays, "W2": arrays["W2"][:, :5], "b2": arrays["b2"][:5]})
    if case == "nan":
        W1 = arrays["W1"].copy()
        W1[0, 0] = np.nan
        return _write(path, {**arrays, "W1": W1})
    if case == "newer":
        return _write(path, arrays, {"format_version": FORMAT_VERSION + 1})
    if case == "format":
        return _write(path, arrays, {"format": "keras"})
    if case == "dropped":
        return _write(path, {k: v for k, v in arrays.items() if k not in ("W3", "b3")})
    if case == "sizes":
        return _write(path, arrays, {"layer_sizes": [784, 16, 9, 10]})
    if case == "dtype":
        return _write(path, {**arrays, "b1": arrays["b1"].astype(np.float64)})
    if case == "extra":
        return _write(path, {**arrays, "W4": np.zeros((10, 10), np.float32)})
    if case == "int":
        return _write(path, {**arrays, "W1": arrays["W1"].astype(np.int32)})
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, words",
    [
        ("truncated", "truncated or corrupted"),
        ("shape", "W2 has shape (16, 5) but layer_sizes [784, 16, 8, 10] say (16, 8)"),
        ("nan", "W1 holds NaN or inf"),
        ("newer", f"format version {FORMAT_VERSION + 1} is newer"),
        ("format", "format is 'keras'"),
        ("dropped", "missing arrays ['W3', 'b3']"),
        ("sizes", "W2 has shape (16, 8) but layer_sizes [784, 16, 9, 10] say (16, 9)"),
        ("dtype", "b1 has dtype float64 but metadata says float32"),
        ("extra", "unexpected arrays ['W4']"),
        ("int", "W1 has dtype int32"),
    ],
)
def test_tampered_files_are_refused(tmp_path, params, case, words):
    path = _tampered(tmp_path, params, case)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value) and words in str(info.value)


def _foreign(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.npz"
    if case == "text":
        path.write_text("784,128,10\n0.1,0.2\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
    elif case == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif case == "pickle":
        path.write_bytes(pickle.dumps({"W1": np.zeros((2, 2))}))
    elif case == "object_npz":
        with open(path, "wb") as f:
            np.savez(f, **{METADATA_KEY: np.array([{"format": "fnn-model"}], dtype=object)})
    elif case == "missing":
        pass
    elif case == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "case, words",
    [
        ("text", "is not an npz (zip) file"),
        ("empty", "is empty"),
        ("zip", "without a metadata.json entry (it holds: readme.txt)"),
        ("npy", "is not an npz (zip) file"),
        ("pickle", "is not an npz (zip) file"),
        ("object_npz", "pickled Python objects"),
        ("missing", "does not exist"),
        ("directory", "is a directory"),
    ],
)
def test_foreign_files_are_refused(tmp_path, case, words):
    path = _foreign(tmp_path, case)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_pickled_layer_in_a_valid_model_is_refused(tmp_path, params):
    path = save_model(tmp_path / "m.npz", params)
    arrays = _arrays(path)
    with open(path, "wb") as f:
        np.savez(f, **{**arrays, "b1": np.array([object()] * 16, dtype=object)})
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        load_model(path)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
