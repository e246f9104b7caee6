"""Model files: bit-exact round trips, and a clear ModelFileError for every broken file."""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import zipfile
from pathlib import Path

import attrs
import numpy as np
import pytest

import fnn
from fnn.errors import ModelFileError
from fnn.files import atomic_path
from fnn.io import FORMAT_VERSION, METADATA_KEY, load_model, save_model
from fnn.layers import Dense, LeakyRelu, Relu, Sigmoid, Tanh
from fnn.nn import predict_proba
from fnn.params import MLP, init, layer_sizes
from fnn.tree import static, static_fields, tree_leaves


@attrs.frozen
class Swish:
    """A user's layer with a static setting: Z = A σ(βA)."""

    beta: float = static(1.0)

    def forward(self, A, rng):
        S = 0.5 * (1 + np.tanh(0.5 * A.dtype.type(self.beta) * A))
        return A * S, (A, S)

    def backward(self, cache, dZ):
        A, S = cache
        return self, dZ * (S + A.dtype.type(self.beta) * A * S * (1 - S))


@attrs.frozen(eq=False)
class Scale:
    """A user's layer with a parameter and a required static setting: Z = factor · g ⊙ A, g: (n,)."""

    g: np.ndarray
    factor: float = static()

    def forward(self, A, rng):
        return A * (A.dtype.type(self.factor) * self.g), A

    def backward(self, A, dZ):
        return Scale(g=(dZ * A).sum(axis=0) * dZ.dtype.type(self.factor), factor=self.factor), dZ * (self.factor * self.g)


@pytest.fixture
def params() -> MLP:
    return init(np.random.default_rng(0), (784, 16, 8, 10))


def _user_params(dtype=np.float32) -> MLP:
    """Dense, Swish, Scale, Dense: a stack with two layers fnn does not know."""
    rng = np.random.default_rng(5)
    first, last = init(rng, (784, 16, 10), dtype=dtype).layers[::2]
    g = rng.random(16, dtype=dtype)
    return MLP(layers=(first, Swish(beta=1.5), Scale(g=g, factor=2.0), last))


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


def _assert_same_stack(loaded: MLP, params: MLP) -> None:
    """Same layer types, static fields and arrays (dtype and every bit)."""
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in params.layers]
    assert [static_fields(layer) for layer in loaded.layers] == [static_fields(layer) for layer in params.layers]
    pairs = list(zip(tree_leaves(loaded), tree_leaves(params), strict=True))
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in pairs)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    params = init(np.random.default_rng(1), (784, 32, 10), dtype=dtype)
    X = np.random.default_rng(2).random((50, 784), dtype=np.float32)
    path = save_model(tmp_path / "m.npz", params, {"class_names": list("abcdefghij"), "metrics": {"dev_acc": 0.5}})
    loaded, meta = load_model(path)
    _assert_same_stack(loaded, params)
    assert layer_sizes(loaded) == (784, 32, 10)
    assert np.array_equal(predict_proba(loaded, X), predict_proba(params, X))
    assert meta["format"] == "fnn-model" and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["fnn_version"] == fnn.__version__
    assert meta["layer_sizes"] == [784, 32, 10] and meta["dtype"] == np.dtype(dtype).name
    assert meta["layers"] == [{"type": "Dense"}, {"type": "Relu"}, {"type": "Dense"}]
    assert meta["class_names"] == list("abcdefghij") and meta["metrics"] == {"dev_acc": 0.5}
    assert "pixels / 255" in meta["preprocessing"]


_ACTIVATIONS = {"relu": (Relu, {}), "leaky_relu": (LeakyRelu, {"alpha": 0.2}), "tanh": (Tanh, {}), "sigmoid": (Sigmoid, {})}


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("activation", sorted(_ACTIVATIONS))
def test_round_trip_keeps_every_activation_and_dropout(tmp_path, activation, dropout):
    act, settings = _ACTIVATIONS[activation]
    built = init(np.random.default_rng(3), (784, 12, 8, 10), activation=activation, dropout=dropout)
    params = MLP(layers=[attrs.evolve(layer, **settings) if isinstance(layer, act) else layer for layer in built.layers])
    loaded, meta = load_model(save_model(tmp_path / "m.npz", params))
    _assert_same_stack(loaded, params)
    block = [{"type": act.__name__, **settings}] + ([{"type": "Dropout", "rate": dropout}] if dropout else [])
    assert meta["layers"] == 2 * ([{"type": "Dense"}] + block) + [{"type": "Dense"}]
    X = np.random.default_rng(4).random((20, 784), dtype=np.float32)
    assert np.array_equal(predict_proba(loaded, X), predict_proba(params, X))


def test_user_layers_need_their_classes_to_load(tmp_path):
    params = _user_params()
    path = save_model(tmp_path / "m.npz", params)
    arrays = _arrays(path)
    assert sorted(arrays) == sorted(["layers.0.W", "layers.0.b", "layers.2.g", "layers.3.W", "layers.3.b", METADATA_KEY])
    meta = json.loads(str(arrays[METADATA_KEY]))
    assert meta["layers"][1:3] == [{"type": "Swish", "beta": 1.5}, {"type": "Scale", "factor": 2.0}]
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert f"{path}: layer 1 has type 'Swish', which this fnn does not know" in str(info.value)
    assert "Pass its class: load_model(path, layers={'Swish': Swish})" in str(info.value)
    with pytest.raises(ModelFileError, match="layer 2 has type 'Scale'"):
        load_model(path, layers={"Swish": Swish})
    loaded, _ = load_model(path, layers={"Swish": Swish, "Scale": Scale})
    _assert_same_stack(loaded, params)
    X = np.random.default_rng(6).random((20, 784), dtype=np.float32)
    assert np.array_equal(predict_proba(loaded, X), predict_proba(params, X))
    with pytest.raises(TypeError, match="layers must map type names to attrs layer classes"):
        load_model(path, layers=[Swish, Scale])


def test_class_names_are_required_after_a_user_layer_at_the_end(tmp_path):
    dense = init(np.random.default_rng(7), (784, 10)).layers[0]
    params = MLP(layers=(dense, Scale(g=np.ones(10, np.float32), factor=0.5)))
    with pytest.raises(ValueError, match=r"metadata\['class_names'\] must be a list of strings"):
        save_model(tmp_path / "m.npz", params)
    path = save_model(tmp_path / "m.npz", params, {"class_names": list("abcdefghij")})
    loaded, meta = load_model(path, layers={"Scale": Scale})
    _assert_same_stack(loaded, params)
    assert meta["class_names"] == list("abcdefghij") and meta["layer_sizes"] == [784, 10]


def _version_1_file(path: Path, sizes: tuple[int, ...], dtype) -> tuple[Path, list[tuple[np.ndarray, np.ndarray]]]:
    """A model file as fnn wrote it before layers were records (format version 1)."""
    rng = np.random.default_rng(8)
    layers = [
        (rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype))
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    meta = {
        "format": "fnn-model",
        "format_version": 1,
        "fnn_version": "0.1.0",
        "layer_sizes": list(sizes),
        "dtype": np.dtype(dtype).name,
        "class_names": [str(j) for j in range(sizes[-1])],
        "preprocessing": "pixels / 255",
    }
    arrays = {f"{name}{l}": array for l, (W, b) in enumerate(layers, start=1) for name, array in (("W", W), ("b", b))}
    arrays[METADATA_KEY] = np.array(json.dumps(meta, indent=1, allow_nan=False))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path, layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_version_1_file_loads_as_the_relu_network_it_meant(tmp_path, dtype):
    path, layers = _version_1_file(tmp_path / "old.npz", (784, 16, 8, 10), dtype)
    params, meta = load_model(path)
    assert [type(layer) for layer in params.layers] == [Dense, Relu, Dense, Relu, Dense]
    assert meta["format_version"] == 1 and meta["layer_sizes"] == [784, 16, 8, 10]
    assert all(np.array_equal(d.W, W) and np.array_equal(d.b, b) for d, (W, b) in zip(params.layers[::2], layers))
    # the reference: the relu MLP and softmax in plain numpy, in the order the old fnn computed them
    X = np.random.default_rng(9).random((30, 784), dtype=np.float32)
    A = X.astype(dtype)
    for l, (W, b) in enumerate(layers, start=1):
        Z = A @ W
        Z += b
        A = np.maximum(Z, 0) if l < len(layers) else Z
    shifted = A - A.max(axis=1, keepdims=True)
    P = np.exp(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))
    assert np.array_equal(predict_proba(params, X), P)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"W2": None}, "missing arrays ['W2']"),
        ({"W4": np.zeros((10, 10))}, "unexpected arrays ['W4']"),
        ({"W2": np.zeros((16, 5)), "b2": np.zeros(5)}, "W2 has shape (16, 5) but metadata's layer_sizes [784, 16, 8, 10] give (16, 8)"),
        ({"b1": np.zeros(16, np.float32)}, "b1 has dtype float32 but metadata says float64"),
    ],
)
def test_broken_version_1_files_are_refused(tmp_path, change, words):
    path, _ = _version_1_file(tmp_path / "old.npz", (784, 16, 8, 10), np.float64)
    arrays = {key: value for key, value in {**_arrays(path), **change}.items() if value is not None}
    with pytest.raises(ModelFileError) as info:
        load_model(_write(path, arrays))
    assert str(path) in str(info.value) and words in str(info.value)


def test_metadata_defaults_and_numpy_scalars(tmp_path, params):
    meta = {"metrics": {"acc": np.float32(0.9), "n": np.int64(3), "ok": np.bool_(True)}, "config": (1, None)}
    _, loaded = load_model(save_model(tmp_path / "m.npz", params, meta))
    assert loaded["class_names"] == [str(j) for j in range(10)]
    assert loaded["metrics"] == {"acc": 0.9, "n": 3, "ok": True} and loaded["config"] == [1, None]


def test_file_holds_only_plain_arrays(tmp_path, params):
    arrays = _arrays(save_model(tmp_path / "m.npz", params))
    names = [f"layers.{j}.{f}" for j in (0, 2, 4) for f in "Wb"]
    assert sorted(arrays) == sorted(names + [METADATA_KEY])
    assert all(a.dtype != object for a in arrays.values())


def test_save_does_not_change_params(tmp_path, params):
    before = [leaf.copy() for leaf in tree_leaves(params)]
    save_model(tmp_path / "m.npz", params)
    assert all(np.array_equal(leaf, copy) for leaf, copy in zip(tree_leaves(params), before, strict=True))


# ---------------------------------------------------------------- what save refuses


@pytest.mark.parametrize(
    "metadata, error, words",
    [
        ({"config": {"rng": np.random.default_rng(0)}}, TypeError, "metadata['config']['rng'] is a Generator"),
        ({"metrics": {"dev_acc": float("nan")}}, ValueError, "metadata['metrics']['dev_acc'] is nan"),
        ({"metrics": {1: 0.5}}, TypeError, "non-string key 1"),
        ({"format_version": 9}, ValueError, "may not set ['format_version']"),
        ({"layers": []}, ValueError, "may not set ['layers']"),
        ({"class_names": ["a", "b"]}, ValueError, "must be 10 strings"),
        ({"class_names": [*"012345678", "\x1b[2J\x1b[31mHACKED"]}, ValueError,
         "class_names'] [9] is '\\x1b[2J\\x1b[31mHACKED', which holds control or other unprintable characters"),
        ({"class_names": [*"012345678", "\ud800"]}, ValueError, "[9] is '\\ud800', which holds control"),
        ({"class_names": [*"012345678", "tab\there"]}, ValueError, "[9] is 'tab\\there'"),
        ({"class_names": ["", *"123456789"]}, ValueError, "[0] has 0 characters (''); each name needs 1 to 64"),
        ({"class_names": [*"012345678", "x" * 65]}, ValueError, "[9] has 65 characters"),
        ({"class_names": [*"012345678", 9]}, ValueError, "must be 10 strings"),
        ({"history": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, ValueError, "nests lists or dicts more than 31 deep"),
        ({"notes": "x" * (1 << 20)}, ValueError, "more than the 1,048,576 load_model reads"),
    ],
)
def test_save_rejects_bad_metadata_and_writes_nothing(tmp_path, params, metadata, error, words):
    with pytest.raises(error) as info:
        save_model(tmp_path / "m.npz", params, metadata)
    assert words in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_non_finite_or_mixed_params(tmp_path, params):
    first, rest = params.layers[0], params.layers[1:]
    bad = MLP(layers=(Dense(W=first.W.copy(), b=first.b),) + rest)
    bad.layers[0].W[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"layers\.0\.W holds NaN"):
        save_model(tmp_path / "m.npz", bad)
    mixed = MLP(layers=(Dense(W=first.W.astype(np.float64), b=first.b),) + rest)
    with pytest.raises(TypeError, match=r"layers\.0\.b has dtype float32; .* \(layers\.0\.W is float64\)"):
        save_model(tmp_path / "m.npz", mixed)
    with pytest.raises(TypeError, match="params must be an fnn.MLP"):
        save_model(tmp_path / "m.npz", [(first.W, first.b)])
    with pytest.raises(TypeError, match=r"layers\.0\.W \(Dense\) must be a numpy array, got list"):
        save_model(tmp_path / "m.npz", MLP(layers=(Dense(W=[[1.0]], b=np.zeros(1)),)))
    with pytest.raises(ValueError, match=r"layers\.2\.W has shape \(8, 10\) but the layers before it give width 16"):
        save_model(tmp_path / "m.npz", MLP(layers=(first, Relu(), params.layers[4])))
    with pytest.raises(ValueError, match="params has no Dense layer"):
        save_model(tmp_path / "m.npz", MLP(layers=(Relu(),)))
    with pytest.raises(TypeError, match=r"params\.layers\[1\]\.beta is a ndarray"):
        save_model(tmp_path / "m.npz", MLP(layers=(first, Swish(beta=np.ones(2)))))
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
    layers = json.loads(str(arrays[METADATA_KEY]))["layers"]  # Dense, Relu, Dense, Relu, Dense

    def relayer(j: int, entry) -> dict:
        return {"layers": layers[:j] + [entry] + layers[j + 1 :]}

    if case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    if case == "shape":
        return _write(path, {**arrays, "layers.2.W": arrays["layers.2.W"][:, :5], "layers.2.b": arrays["layers.2.b"][:5]})
    if case == "nan":
        W = arrays["layers.0.W"].copy()
        W[0, 0] = np.nan
        return _write(path, {**arrays, "layers.0.W": W})
    if case == "newer":
        return _write(path, arrays, {"format_version": FORMAT_VERSION + 1})
    if case == "format":
        return _write(path, arrays, {"format": "keras"})
    if case == "dropped":
        return _write(path, {k: v for k, v in arrays.items() if k not in ("layers.4.W", "layers.4.b")})
    if case == "sizes":
        return _write(path, arrays, {"layer_sizes": [784, 16, 9, 10]})
    if case == "dtype":
        return _write(path, {**arrays, "layers.0.b": arrays["layers.0.b"].astype(np.float64)})
    if case == "extra":
        return _write(path, {**arrays, "layers.5.W": np.zeros((10, 10), np.float32)})
    if case == "int":
        return _write(path, {**arrays, "layers.0.W": arrays["layers.0.W"].astype(np.int32)})
    if case == "class_names":
        return _write(path, arrays, {"class_names": list("abcdefghi")})
    if case == "no_layers":
        return _write(path, arrays, {"layers": None})
    if case == "entry_not_dict":
        return _write(path, arrays, relayer(1, "Relu"))
    if case == "type_not_str":
        return _write(path, arrays, relayer(1, {"type": 3}))
    if case == "unknown_type":
        return _write(path, arrays, relayer(1, {"type": "Softplus"}))
    if case == "unknown_key":
        return _write(path, arrays, relayer(1, {"type": "Relu", "alpha": 0.1}))
    if case == "array_as_setting":
        return _write(path, arrays, relayer(0, {"type": "Dense", "W": 1}))
    if case == "bad_setting":
        return _write(path, arrays, relayer(1, {"type": "Dropout", "rate": 1.5}))
    if case == "wrong_type":
        return _write(path, arrays, relayer(1, {"type": "Dense"}))
    if case == "dropped_layer":
        return _write(path, arrays, {"layers": layers[:3] + layers[4:]})
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, words",
    [
        ("truncated", "truncated or corrupted"),
        ("shape", "layers.2.W has shape (16, 5) but metadata's layer_sizes [784, 16, 8, 10] give (16, 8)"),
        ("nan", "layers.0.W holds NaN or inf"),
        ("newer", f"format version {FORMAT_VERSION + 1} is newer"),
        ("format", "format is 'keras'"),
        ("dropped", "missing arrays ['layers.4.W', 'layers.4.b']"),
        ("sizes", "layers.2.W has shape (16, 8) but metadata's layer_sizes [784, 16, 9, 10] give (16, 9)"),
        ("dtype", "layers.0.b has dtype float64 but metadata says float32"),
        ("extra", "unexpected arrays ['layers.5.W']"),
        ("int", "layers.0.W has dtype int32"),
        ("class_names", "class_names must be 10 strings"),
        ("no_layers", "layers is None, expected a list with one entry per layer"),
        ("entry_not_dict", "layers[1] is 'Relu', expected {'type': class name, **static fields}"),
        ("type_not_str", "layers[1] is {'type': 3}"),
        ("unknown_type", "layer 1 has type 'Softplus', which this fnn does not know. Pass its class: load_model(path, layers={'Softplus': Softplus})"),
        ("unknown_key", "layer 1 (Relu) has settings ['alpha'], which Relu does not take (it takes [])"),
        ("array_as_setting", "layer 0 (Dense) has settings ['W'], which Dense does not take"),
        ("bad_setting", "layer 1 (Dropout) cannot be rebuilt from settings {'rate': 1.5} (ValueError: Dropout.rate must be"),
        ("wrong_type", "missing arrays ['layers.1.W', 'layers.1.b']"),
        ("dropped_layer", "missing arrays ['layers.3.W', 'layers.3.b']"),
    ],
)
def test_tampered_files_are_refused(tmp_path, params, case, words):
    path = _tampered(tmp_path, params, case)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_user_layer_files_missing_a_setting_or_array_are_refused(tmp_path):
    path = save_model(tmp_path / "m.npz", _user_params())
    arrays = _arrays(path)
    layers = json.loads(str(arrays[METADATA_KEY]))["layers"]
    known = {"Swish": Swish, "Scale": Scale}
    _write(path, arrays, {"layers": layers[:2] + [{"type": "Scale"}] + layers[3:]})
    with pytest.raises(ModelFileError, match=r"layer 2 \(Scale\) cannot be rebuilt from settings \{\} \(TypeError: .*factor"):
        load_model(path, layers=known)
    _write(path, {k: v for k, v in arrays.items() if k != "layers.2.g"})
    with pytest.raises(ModelFileError, match=r"missing arrays \['layers.2.g'\]"):
        load_model(path, layers=known)
    _write(path, {**arrays, "layers.2.g": arrays["layers.2.g"].astype(np.float64)})
    with pytest.raises(ModelFileError, match="layers.2.g has dtype float64 but metadata says float32"):
        load_model(path, layers=known)


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
        ("zip", "without a metadata.json entry (it holds: 'readme.txt')"),
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
        np.savez(f, **{**arrays, "layers.0.b": np.array([object()] * 16, dtype=object)})
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        load_model(path)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_class_names_of_any_length_1_to_64_and_any_script_round_trip(tmp_path, params):
    names = ["zero", "Ankle boot", "T-shirt/top", "ünïcödé", "数字", "x" * 64, "🙂", "a b", "7", "-"]
    path = save_model(tmp_path / "m.npz", params, {"class_names": names})
    assert load_model(path)[1]["class_names"] == names


@pytest.mark.parametrize(
    "names, words",
    [
        ([*"012345678", "\x1b[2J\x1b[31mHACKED"], "class_names [9] is '\\x1b[2J\\x1b[31mHACKED', which holds control"),
        ([*"012345678", "\ud800"], "class_names [9] is '\\ud800'"),
        ([*"012345678", "\u202e"], "class_names [9] is '\\u202e'"),  # right-to-left override
        ([*"012345678", "x" * 100_000], "class_names [9] has 100,000 characters ('xxxxxxxxxx"),
        ([*"012345678", ""], "class_names [9] has 0 characters"),
        (list("0123456789") * 2, "class_names must be 10 strings"),
    ],
)
def test_class_names_in_a_file_are_checked_at_load(tmp_path, params, names, words):
    path = save_model(tmp_path / "m.npz", params)
    _write(path, _arrays(path), {"class_names": names})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert words in message and len(message) < 400 and message.isprintable()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_is_not_a_model_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(ModelFileError, match=r"pipe.npz: model file is not a regular file \(a FIFO, device or socket\)"):
        load_model(tmp_path / "pipe.npz")
    if Path("/dev/zero").exists():
        with pytest.raises(ModelFileError, match="/dev/zero: model file is not a regular file"):
            load_model("/dev/zero")


def test_fortran_ordered_and_version_2_npy_members_load(tmp_path, params):
    """numpy writes these too: a member in Fortran order, or with a .npy header of version 2.0."""
    path = save_model(tmp_path / "m.npz", params)
    arrays = _arrays(path)
    buffers = {}
    for name, array in arrays.items():
        out = io.BytesIO()
        if name == "layers.0.W":
            np.lib.format.write_array(out, np.asfortranarray(array))
        elif name == "layers.2.W":
            np.lib.format.write_array(out, array, version=(2, 0))
        else:
            np.lib.format.write_array(out, array)
        buffers[name + ".npy"] = out.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in buffers.items():
            archive.writestr(name, data)
    _assert_same_stack(load_model(path)[0], params)


def test_a_static_field_that_overflows_the_dtype_is_refused(tmp_path):
    """A user layer's static float of 1e308 is a finite Python float but inf in float32: the
    network would compute NaN probabilities. (LeakyRelu's alpha has its own range, [0, 1).)"""
    import warnings

    net = fnn.Network((fnn.Dense(np.ones((784, 3), np.float32), np.zeros(3, np.float32)), Swish(1e308),
                       fnn.Dense(np.ones((3, 10), np.float32), np.zeros(10, np.float32))))
    path = save_model(tmp_path / "m.npz", net, {"class_names": list("0123456789")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning on the way
        with pytest.raises(ModelFileError, match="beta = 1e\\+308, which is not finite as float32"):
            load_model(path, layers={"Swish": Swish})
