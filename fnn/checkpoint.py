"""Checkpoints: a training run's `fit` Monitor as one `.npz` that never pickles.

    state.params.{i}   the i-th leaf of the state's params (`tree_leaves` order)
    state.opt.{i}      the i-th leaf of the optimizer state (velocities, moments over the flat
                       params, step counts)
    best.{i}           the i-th leaf of the best params so far
    history            float64 (rows, columns): the history rows so far, one column per name
                       of checkpoint.json's history_columns
    checkpoint.json    a 0-d text array: format, version, step, epoch, seed, best, since_best,
                       history_columns, history_ints (the columns that hold ints), and the
                       caller's metadata (`fnn train` records its config, data and a
                       fingerprint of the rows it trained on: `run_settings` reads them back)

Loading needs templates of the structures (a network of the run's architecture and its
optimizer), so the file holds only arrays and JSON. Written through `atomic_path`: a crash
leaves the previous checkpoint.

A checkpoint is input like any other (it may have been copied, cut short or edited), so it is
read as carefully as a model file (`fnn.io.load`): a regular file (never a FIFO or device),
a zip whose members are distinct, unencrypted, stored or deflated `.npy` arrays with the names
above and no others; checkpoint.json at most `MAX_META_CHARS` characters nested at most
`MAX_JSON_DEPTH` deep, every field checked; each array's `.npy` header is read first and must
give the template's shape and dtype (the history at most `MAX_HISTORY_VALUES` values) and the
size its zip member declares, and only then is its data read. Every failure is one
`CheckpointError` naming the file and what to do.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import attrs
import numpy as np

from fnn.config import TrainConfig
from fnn.data import LAYOUTS
from fnn.errors import UserError
from fnn.files import atomic_path
from fnn.fitting import Monitor, history_columns
from fnn.io.format import MAX_JSON_DEPTH, ZIP_MAGIC, json_depth, show
from fnn.io.npy import NpyProblem, npy_header
from fnn.optim import Optimizer
from fnn.params import MLP
from fnn.training import TrainState
from fnn.tree import ravel, ravel_spec, tree_leaves, tree_map

META_KEY = "checkpoint.json"
HISTORY_KEY = "history"
FORMAT = "fnn-checkpoint"
VERSION = 3  # 3: the history as one float64 array; 2: the optimizer state over the flat params
MAX_META_CHARS = 1 << 20  # checkpoint.json; fnn's own is about 1 KB
MAX_MEMBERS = 10_000  # zip members: three per array leaf, the history and checkpoint.json
MAX_HISTORY_VALUES = 1 << 22  # rows x columns: 200,000 evaluations of a 20-column history
MAX_COUNT = 2**62  # steps, epochs, step counts
_ARRAY_ENTRY = re.compile(r"(state\.params|state\.opt|best)\.(0|[1-9][0-9]{0,5})")
_FIELDS = ("format", "version", "step", "epoch", "seed", "best", "since_best", "history_columns", "history_ints",
           "metadata")
_FIX = "the checkpoint is damaged or was edited: start a new run with another --out"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot resume this run; the message names the file and the fix."""


def _fail(path: Path, problem: str, fix: str = _FIX) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}; {fix}")


# ---------------------------------------------------------------- writing


def save_checkpoint(path: str | os.PathLike, monitor: Monitor, metadata: dict) -> Path:
    """Write `monitor` (its `good` state, best params, history) and `metadata` to `path`."""
    state = monitor.good
    columns = list(monitor.rows[0]) if monitor.rows else []
    ints = [c for c in columns if all(isinstance(row[c], (int, np.integer)) for row in monitor.rows)]
    arrays = {
        **{f"state.params.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(state.params))},
        **{f"state.opt.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(state.opt_state))},
        **{f"best.{i}": np.asarray(a) for i, a in enumerate(tree_leaves(monitor.best_params))},
        HISTORY_KEY: np.array([[row[c] for c in columns] for row in monitor.rows], dtype=np.float64).reshape(
            len(monitor.rows), len(columns)
        ),
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "seed": state.seed,
        "best": None if math.isnan(monitor.best) else monitor.best,
        "since_best": monitor.since_best,
        "history_columns": columns,
        "history_ints": ints,
        "metadata": metadata,
    }
    arrays[META_KEY] = np.array(json.dumps(meta, allow_nan=False))
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------- reading, bounded


def _open(path: Path) -> zipfile.ZipFile:
    """The checkpoint as an open zip, after checking it is a regular file that starts as a zip."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise _fail(path, "no checkpoint there", "resume a folder that `fnn train` left interrupted "
                    "(it holds checkpoint.npz), or start a new run") from None
    except OSError as error:
        raise _fail(path, f"cannot read the checkpoint ({error.strerror})",
                    "check the path and its permissions") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise _fail(path, f"the checkpoint is {what}", "pass a run folder whose checkpoint.npz is the file "
                    "`fnn train` wrote")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in ZIP_MAGIC:
        problem = "empty" if not head else f"it starts with {head!r}, not as an npz (zip) file does"
        raise _fail(path, f"not a readable checkpoint ({problem})")
    return zipfile.ZipFile(path)


def _index(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """{entry name: zip member}, each checked before any is read: at most MAX_MEMBERS, no two
    of one name, each a known `.npy` entry, not encrypted, stored or deflated."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(path, f"holds {len(infos):,} zip members; a checkpoint has at most {MAX_MEMBERS:,}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = show(info.filename, 60)
        entry = info.filename.removesuffix(".npy")
        known = entry in (META_KEY, HISTORY_KEY) or _ARRAY_ENTRY.fullmatch(entry)
        if not info.filename.endswith(".npy") or not known:
            raise _fail(path, f"holds a zip member {name}, which no checkpoint has")
        if entry in members:
            raise _fail(path, f"holds two zip members named {name}")
        if info.flag_bits & 0x1:
            raise _fail(path, f"zip member {name} is encrypted; checkpoints never are")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _fail(path, f"zip member {name} is compressed with method {info.compress_type}, not as numpy writes")
        members[entry] = info
    if META_KEY not in members:
        raise _fail(path, f"a zip without {META_KEY}, so not an fnn checkpoint",
                    "resume a folder that `fnn train` left interrupted, or start a new run")
    return members


def _npy_header(path: Path, entry: str, stream) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """`fnn.io.npy.npy_header`, its problem a CheckpointError naming the file."""
    try:
        return npy_header(entry, stream)
    except NpyProblem as problem:
        raise _fail(path, str(problem)) from None



def _read_array(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: str, check) -> np.ndarray:
    """The array of one member, its data read only after `check(shape, dtype)` (a problem or
    None) passed on its header and the member's declared size matched the header's."""
    with archive.open(info) as stream:
        shape, fortran, dtype, offset = _npy_header(path, entry, stream)
        problem = check(shape, dtype)
        if problem:
            raise _fail(path, problem)
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            raise _fail(path, f"{entry} declares {info.file_size:,} bytes in the zip, but its .npy header "
                        f"{shape} {dtype} means {offset + nbytes:,}")
        data = np.empty(nbytes, dtype=np.uint8)
        view, got = memoryview(data), 0
        while got < nbytes:
            chunk = stream.read(min(1 << 20, nbytes - got))
            if not chunk:
                raise _fail(path, f"{entry} is truncated ({got:,} of {nbytes:,} bytes)")
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        stream.read(1)  # at the member's end: zipfile checks its CRC here
    array = data.view(dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _count(value, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_COUNT


def _read_meta(path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict:
    """checkpoint.json, every field checked."""

    def text(shape, dtype):
        if dtype.kind != "U" or shape != ():
            return f"{META_KEY} should be a 0-d text array, got dtype {dtype} shape {shape}"
        if dtype.itemsize > 4 * MAX_META_CHARS:
            return f"{META_KEY} holds {dtype.itemsize // 4:,} characters, more than the {MAX_META_CHARS:,} fnn reads"
        return None

    entry = _read_array(path, archive, members[META_KEY], META_KEY, text)
    try:
        meta = json.loads(str(entry[()]))
    except RecursionError:
        raise _fail(path, f"{META_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep") from None
    except ValueError as err:  # JSONDecodeError, an integer of over 4300 digits, invalid code points
        raise _fail(path, f"{META_KEY} is not valid JSON ({type(err).__name__})") from None
    if json_depth(meta) > MAX_JSON_DEPTH:
        raise _fail(path, f"{META_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, "not an fnn checkpoint",
                    "resume a folder that `fnn train` left interrupted, or start a new run")
    version = meta.get("version", 1)
    if version != VERSION:
        older = _count(version) and version < VERSION
        raise _fail(path, f"a checkpoint of format version {show(version, 40)}, and this fnn reads version {VERSION}",
                    "finish that run with the fnn that started it, or start a new run" if older
                    else "upgrade fnn to resume it, or start a new run")
    unknown = sorted(set(meta) - set(_FIELDS))
    missing = [key for key in _FIELDS if key not in meta]
    if unknown or missing:
        wrong = f"lacks {show(missing)}" if missing else f"has unknown fields {show(unknown)}"
        raise _fail(path, f"{META_KEY} {wrong}")
    for key, low in (("step", 1), ("epoch", 0), ("since_best", 0)):
        if not _count(meta[key], low):
            raise _fail(path, f"{key} is {show(meta[key], 60)}, expected a whole number >= {low}")
    if not (_count(meta["seed"]) and meta["seed"] < 2**63):
        raise _fail(path, f"seed is {show(meta['seed'], 60)}, expected a whole number in [0, 2**63)")
    best = meta["best"]
    if best is not None and not (isinstance(best, (int, float)) and not isinstance(best, bool) and math.isfinite(best)):
        raise _fail(path, f"best is {show(best, 60)}, expected a finite number or null")
    columns, ints = meta["history_columns"], meta["history_ints"]
    if not (isinstance(columns, list) and 0 < len(columns) <= 1000 and len(set(columns)) == len(columns)
            and all(isinstance(c, str) and 0 < len(c) <= 100 and c.isprintable() for c in columns)):
        raise _fail(path, f"history_columns is {show(columns, 80)}, expected distinct names")
    if not (isinstance(ints, list) and all(isinstance(c, str) for c in ints) and set(ints) <= set(columns)):
        raise _fail(path, f"history_ints is {show(ints, 80)}, expected some of history_columns")
    for needed in ("step", "epoch", "seconds", "train_loss"):
        if needed not in columns:
            raise _fail(path, f"history_columns {show(columns, 80)} lacks {needed!r}")
    if not isinstance(meta["metadata"], dict):
        raise _fail(path, f"metadata is {show(meta['metadata'], 60)}, expected an object")
    return meta


def _read(path: Path, read) -> tuple:
    """(checkpoint.json, read(archive, members, meta)), every failure a CheckpointError."""
    try:
        with _open(path) as archive:
            members = _index(path, archive)
            meta = _read_meta(path, archive, members)
            return meta, read(archive, members, meta)
    except CheckpointError:
        raise
    except NotImplementedError as err:  # zipfile: a "version needed to extract" or feature it lacks
        raise _fail(path, f"uses a zip feature fnn cannot read ({err})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, struct.error) as err:
        raise _fail(path, f"the checkpoint is truncated or corrupted ({type(err).__name__})") from None


def read_metadata(path: str | os.PathLike) -> dict:
    """The caller's metadata saved with a checkpoint (to rebuild the templates `load_checkpoint`
    needs); only checkpoint.json is read."""
    return _read(Path(path), lambda *_: None)[0]["metadata"]


def _restore(path: Path, archive, members, prefix: str, template):
    """`template` with its leaves replaced by the file's `prefix.{i}` arrays, each header
    checked against its leaf before its data is read."""
    leaves = tree_leaves(template)
    it = iter(f"{prefix}.{i}" for i in range(len(leaves)))

    def take(leaf):
        name = next(it)
        if isinstance(leaf, np.ndarray):
            def same(shape, dtype):
                if shape != leaf.shape or dtype != leaf.dtype:
                    return (f"{name} is {dtype}{shape}, this run needs {leaf.dtype}{leaf.shape}; "
                            "resume with the fnn and flags the run was started with")
                return None

            saved = _read_array(path, archive, members[name], name, same)
            if saved.dtype.kind == "f" and not np.isfinite(saved).all():
                raise _fail(path, f"{name} holds NaN or inf values")
            return saved

        def count(shape, dtype):  # a scalar leaf: a step count
            return None if shape == () and dtype.kind in "iu" and dtype.itemsize <= 8 else (
                f"{name} is {dtype}{shape}, expected a 0-d integer (a step count)")

        value = int(_read_array(path, archive, members[name], name, count)[()])
        if not 0 <= value <= MAX_COUNT:
            raise _fail(path, f"{name} is {value}, expected a count >= 0")
        return type(leaf)(value)

    return tree_map(take, template)


def _history(path: Path, archive, members, meta: dict, columns: list[str]) -> tuple[dict, ...]:
    """The history rows, checked: the template's columns, at most MAX_HISTORY_VALUES values;
    steps and epochs whole and non-decreasing, ending at the checkpoint's; seconds and
    train_loss finite."""
    if meta["history_columns"] != columns:
        extra = [c for c in meta["history_columns"] if c not in columns]
        lacks = [c for c in columns if c not in meta["history_columns"]]
        differ = (f"has columns {show(extra, 80)} this network's has not" if extra
                  else f"lacks this network's columns {show(lacks, 80)}" if lacks
                  else "has this network's columns in another order")
        raise _fail(path, f"its history {differ}", "resume with the fnn and flags the run was started with")
    if HISTORY_KEY not in members:
        raise _fail(path, f"missing {HISTORY_KEY!r}")

    def table(shape, dtype):
        if dtype != np.float64 or len(shape) != 2 or shape[1] != len(columns) or shape[0] < 1:
            return f"{HISTORY_KEY} is {dtype}{shape}, expected float64 (rows, {len(columns)})"
        if shape[0] * shape[1] > MAX_HISTORY_VALUES:
            return f"{HISTORY_KEY} holds {shape[0] * shape[1]:,} values, more than the {MAX_HISTORY_VALUES:,} fnn reads"
        return None

    values = _read_array(path, archive, members[HISTORY_KEY], HISTORY_KEY, table)
    at = {c: j for j, c in enumerate(columns)}
    for name in ("step", "epoch", "seconds", "train_loss"):
        column = values[:, at[name]]
        if not np.isfinite(column).all() or (name != "train_loss" and (column < 0).any()):
            raise _fail(path, f"the history's {name} column holds negative, NaN or infinite values")
    for name in ("step", "epoch"):
        column = values[:, at[name]]
        if (column != np.floor(column)).any() or (np.diff(column) < 0).any() or column.max() > MAX_COUNT:
            raise _fail(path, f"the history's {name} column is not whole numbers counting up")
        if column[-1] != meta[name]:
            raise _fail(path, f"{name} is {meta[name]} but the history's last row says {column[-1]:g}")
    if meta["since_best"] > len(values):
        raise _fail(path, f"since_best is {meta['since_best']}, more than the history's {len(values)} rows")
    ints = set(meta["history_ints"])
    kinds = [int if c in ints else float for c in columns]
    return tuple({c: kind(v) for c, kind, v in zip(columns, kinds, row)} for row in values.tolist())


def load_checkpoint(path: str | os.PathLike, params: MLP, optimizer: Optimizer) -> tuple[Monitor, dict]:
    """(the Monitor to pass to `fit(..., resume=)`, the caller's metadata).

    params: a network of the run's architecture (its values are not used); optimizer: the run's.
    CheckpointError, naming the file, for anything that does not fit them (see the module).
    """
    path = Path(path)
    spec = ravel_spec(params)
    opt_template = optimizer.init(ravel(spec, params))
    leaves = {"state.params": params, "state.opt": opt_template, "best": params}

    def read(archive, members, meta):
        expected = {META_KEY, HISTORY_KEY} | {f"{p}.{i}" for p, t in leaves.items() for i in range(len(tree_leaves(t)))}
        missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
        if missing or extra:
            problem = (f"missing {show(missing[:3])}" if missing
                       else f"holds arrays {show(extra[:3])} this network has not")
            raise _fail(path, f"{problem}; the checkpoint is of another network or optimizer",
                        "resume with the fnn and flags the run was started with")
        restored = {prefix: _restore(path, archive, members, prefix, t) for prefix, t in leaves.items()}
        return _history(path, archive, members, meta, history_columns(params)), restored

    meta, (rows, restored) = _read(path, read)
    state = TrainState(
        flat=ravel(spec, restored["state.params"]),
        spec=spec,
        opt_state=restored["state.opt"],
        step=meta["step"],
        epoch=meta["epoch"],
        seed=meta["seed"],
    )
    monitor = Monitor(
        state=state,
        start=0.0,
        good=state,
        best_params=restored["best"],
        rows=rows,
        best=math.nan if meta["best"] is None else float(meta["best"]),
        since_best=meta["since_best"],
    )
    return monitor, meta["metadata"]


def check_progress(path: str | os.PathLike, monitor: Monitor, epochs: int, steps_per_epoch: int) -> None:
    """CheckpointError unless the checkpoint's step and epoch are those of a run of `epochs`
    epochs of `steps_per_epoch` updates: epoch = step // steps_per_epoch, step <= the last."""
    step, epoch = monitor.good.step, monitor.good.epoch
    if step > epochs * steps_per_epoch or epoch != step // steps_per_epoch:
        raise _fail(Path(path), f"it says step {step} and epoch {epoch}, which a run of {epochs} epochs of "
                    f"{steps_per_epoch} steps never reaches together")


# ---------------------------------------------------------------- what `fnn train` records

DATA_KEYS = ("source", "layout", "seed", "dev", "test")


def _is_split_size(value) -> bool:
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and 0 <= value <= MAX_COUNT) or (isinstance(value, float) and 0 < value < 1)


def run_settings(path: str | os.PathLike, metadata: dict) -> tuple[TrainConfig, dict, dict]:
    """(config, data record, fingerprint) from the metadata `fnn train` saves with its
    checkpoints: {"config": the TrainConfig's fields, "data": {source, layout, seed, dev, test,
    fingerprint}}; each value checked for its type and range. CheckpointError otherwise."""
    path = Path(path)
    config, data = metadata.get("config"), metadata.get("data")
    if not isinstance(config, dict) or not isinstance(data, dict):
        raise _fail(path, "its metadata does not hold the run's config and data as `fnn train` writes them",
                    "resume a folder that `fnn train` left interrupted, or start a new run")
    fields = {f.name: f for f in attrs.fields(TrainConfig)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise _fail(path, f"its config has settings {show(unknown, 80)}, which this fnn does not know",
                    "finish that run with the fnn that started it, or start a new run")
    values = {}
    for name, value in config.items():
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise _fail(path, f"config {name} is {show(value, 60)}, expected true or false")
        values[name] = value
    try:
        settings = TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"its config does not make a run ({str(err)[:200]})") from None
    if not (_count(settings.seed) and settings.seed < 2**64):
        raise _fail(path, f"config seed is {show(settings.seed, 60)}, expected a whole number in [0, 2**64)")
    record = {key: data.get(key) for key in DATA_KEYS}
    if not (isinstance(record["source"], str) and 0 < len(record["source"]) <= 4096 and record["source"].isprintable()):
        raise _fail(path, f"data source is {show(record['source'], 60)}, expected a path or a data set's name")
    if record["layout"] not in LAYOUTS or not (_count(record["seed"]) and record["seed"] < 2**64):
        raise _fail(path, f"data layout {show(record['layout'], 40)} or seed {show(record['seed'], 40)} is not one "
                    "`fnn train` writes")
    if not (_is_split_size(record["dev"]) and _is_split_size(record["test"])):
        raise _fail(path, f"data dev {show(record['dev'], 40)} or test {show(record['test'], 40)} is not a row count "
                    "or a fraction")
    fingerprint = data.get("fingerprint")
    if not (isinstance(fingerprint, dict) and set(fingerprint) == {"train_rows", "dev_rows", "test_rows", "sha256"}
            and all(_count(fingerprint[k]) for k in ("train_rows", "dev_rows", "test_rows"))
            and isinstance(fingerprint["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint["sha256"])):
        raise _fail(path, f"its data fingerprint is {show(fingerprint, 80)}, not one `fnn train` writes")
    return settings, record, fingerprint
