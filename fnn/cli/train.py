"""`fnn train`: split the data, train, score on every split, write the run folder; or continue an
interrupted run (`--resume RUN_DIR`).

A run folder is filled under a hidden name (`fnn.files.staged_folder`) that the run holds a lock
on, so a second command with the same --out can tell a live run (refused, even with --force)
from one a SIGKILL or power cut left behind (resumable with `--resume OUT`, or discarded with
--force). `--resume` continues with the run's own flags and data: a flag that changes the run
is an error unless it matches, and data that changed since the run started is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
from pathlib import Path

import attrs

from fnn.checkpoint import CheckpointError, check_progress, read_metadata, run_settings
from fnn.cli import flags, runs
from fnn.config import TrainConfig
from fnn.data import Splits, fingerprint
from fnn.files import FolderInUse, folder_lock, is_locked, remove_temporaries, staged_folder, staging_folders
from fnn.run import load_run_checkpoint
from fnn.text import count
from fnn.training import steps_per_epoch

# flags that do not change what a run computes, so --resume takes them
RESUME_TAKES = ("progress", "threads", "debug", "resume", "help")
_STAGING = re.compile(r"\.(?P<out>.+)\.partial-[^/]+")  # a staging folder's name: .<out>.partial-<random>


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "train",
        parents=[flags.data_flags(), flags.training_flags(search=False), common],
        formatter_class=flags.Formatter,
        help="train a network and write the model, its history, metrics and figures",
        description=(
            "Split the data (seeded, stratified), train a 784-hidden-10 network (ReLU unless "
            "--activation says otherwise) on the train split and write into --out: model.npz, "
            "history.csv, metrics.json (train/dev/test accuracy and loss, seconds, config, BLAS) "
            "and the figures training_metrics.png, training_health.png, confusion_matrix.png "
            "(test split), sample_predictions.png and first_layer_weights.png. The saved "
            "parameters are those of the run's best dev accuracy. While it trains, the folder "
            "holds checkpoint.npz (updated at every evaluation); Ctrl-C or SIGTERM leaves the run "
            "at --out with the best model and history so far, and --resume continues it."
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<timestamp>/)")
    parser.add_argument(
        "--resume", type=Path, default=None, metavar="RUN_DIR",
        help="continue the interrupted run whose --out was RUN_DIR with its own flags and data, and complete "
        "its folder; flags that would change the run are refused unless they match (--progress, --threads "
        "and --debug are taken)",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="discard what a killed run with the same --out left behind (a hidden .OUT.partial-* folder); "
        "never a live run's",
    )
    parser.set_defaults(run=run)
    _note_given_flags(parser)


def _note_given_flags(parser: argparse.ArgumentParser) -> None:
    """Make each flag of `parser` that could change a run record that it was given, in
    `args.given` ({dest: the option as typed}), so --resume can tell a flag given with its
    default value from one not given at all. The common flags' actions, shared with other
    commands, are left alone (they are all in RESUME_TAKES)."""
    for action in parser._actions:  # noqa: SLF001 - argparse lists a parser's actions only here
        if action.option_strings and action.dest not in RESUME_TAKES:
            action.__class__ = _noting(type(action))


def _noting(cls: type) -> type:
    class Noting(cls):
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            namespace.given = {**getattr(namespace, "given", {}), self.dest: option_string}

    Noting.__name__ = cls.__name__
    return Noting


# ---------------------------------------------------------------- a new run


def _clear_the_way(out: Path, force: bool) -> None:
    """Refuse an --out a live run is writing; refuse (or with --force discard) what killed
    runs with this --out left behind; never discard a completed run's folder."""
    left = staging_folders(out)
    live = [p for p in left if is_locked(p)] + ([out] if out.is_dir() and is_locked(out) else [])
    if live:
        raise flags.FlagError(
            f"--out {out}: another fnn process is training into it right now (in {live[0]}); wait for it to "
            "finish, or choose another --out"
        )
    done = [p for p in left if (p / "metrics.json").is_file() and not (p / runs.CHECKPOINT).is_file()]
    if done:
        raise flags.FlagError(
            f"--out {out}: {done[0]} holds a completed run that never reached {out}; move it there "
            f"(`mv {done[0]} {out}`), or choose another --out"
        )
    if left and not force:
        resumable = [p for p in left if (p / runs.CHECKPOINT).is_file()]
        offer = ""
        if resumable:  # `--resume OUT` finds a lone one
            offer = f"resume it with `fnn train --resume {out if len(resumable) == 1 else resumable[0]}`, or "
        raise flags.FlagError(
            f"a run with --out {out} was killed before it finished and left {left[0]}; "
            f"{offer}pass --force to discard it"
        )
    for folder in left:
        with folder_lock(folder):  # FolderInUse if a --resume took it meanwhile: then nothing is deleted
            shutil.rmtree(folder)


def _check_memory(config: TrainConfig, splits: Splits, command: str, budget: int | None) -> None:
    """FlagError when the run would hold more than fnn's memory budget (see
    `flags.check_fits_in_memory`), with the data's real width, classes and rows."""
    flags.check_fits_in_memory(
        config.hidden, command, splits.train.X.shape[1], len(splits.train.class_names),
        optimizer=config.optimizer, batch_size=config.batch_size, conv=config.conv, kernel=config.kernel,
        rows=len(splits.train.X) + len(splits.dev.X) + len(splits.test.X), budget=budget,
    )


def run(args) -> int:
    if args.resume is not None:
        return _resume(args)
    config = flags.config(args)
    out = args.out or runs.default_out()
    _clear_the_way(out, args.force)
    record = flags.data_record(args)
    with runs.leave_resumable(out), staged_folder(out, keep_interrupted=True) as folder:
        splits = runs.load_splits(**record, progress=args.progress)
        runs.check_conv_fits(config, splits.train.X.shape[1], "train")
        _check_memory(config, splits, "train", args.max_memory)
        sizes = (splits.train.X.shape[1], *config.hidden, len(splits.train.class_names))
        dropout = f", dropout {config.dropout:g}" if config.dropout else ""
        conv = f"conv {flags.format_sizes(config.conv)} ({config.kernel}x{config.kernel}) + " if config.conv else ""
        print(
            f"data {args.data}: {len(splits.train.X)} train / {len(splits.dev.X)} dev / "
            f"{len(splits.test.X)} test rows; network {conv}{flags.format_sizes(sizes)} {config.activation}{dropout}, "
            f"{config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
            f"{count(config.epochs, 'epoch')}{runs.augment_note(config)}"
        )
        record = {**record, "fingerprint": fingerprint(splits)}
        result = runs.train_and_save(config, splits, folder, record, progress=args.progress, checkpoints=True)
    runs.print_summary(result.summary, out)
    return 0


# ---------------------------------------------------------------- --resume


def _resume_folder(given: Path) -> tuple[Path, Path]:
    """(the folder holding the run's checkpoint, the --out where the run ends). `given` is the
    run's --out (the folder itself, or, after a SIGKILL, the one staging folder a killed run
    left for it) or a staging folder `.OUT.partial-*` named directly."""
    named = _STAGING.fullmatch(given.name)
    if named and given.is_dir():
        return given, given.parent / named["out"]
    if given.is_dir():
        return given, given
    if given.exists():
        raise flags.FlagError(f"--resume {given}: not a folder; pass the --out of the interrupted run")
    left = [p for p in staging_folders(given) if (p / runs.CHECKPOINT).is_file()]
    if len(left) > 1:
        raise flags.FlagError(
            f"--resume {given}: killed runs left {len(left)} folders for it ({', '.join(map(str, left[:3]))}); "
            "resume one of them by its name"
        )
    if not left:
        raise flags.FlagError(f"--resume {given}: no such run folder; pass the --out of the interrupted run")
    return left[0], given


def _shown(value) -> str:
    return flags.format_sizes(value) if isinstance(value, tuple) else str(value)


def _check_given(args, config: TrainConfig, record: dict, out: Path) -> None:
    """FlagError listing each flag given with --resume whose value is not the run's."""
    given = getattr(args, "given", {})
    if "force" in given:
        raise flags.FlagError(
            "--force discards what a killed run left, and --resume continues it; drop --force to resume"
        )
    differ = []
    for dest, option in given.items():
        value = getattr(args, dest)
        if dest == "out":
            saved, same = out, os.path.abspath(value) == os.path.abspath(out)
        elif dest == "data":
            saved = record["source"]
            same = str(value) == saved
        elif dest == "max_memory":  # a bound on this process, not a setting of the run
            continue
        elif dest in ("layout", "dev", "test"):
            saved = record[dest]
            same = value == saved
        elif dest in attrs.fields_dict(TrainConfig):
            saved = getattr(config, dest)
            try:
                same = attrs.evolve(config, **{dest: value}) == config
            except (TypeError, ValueError):
                same = False
        else:
            saved, same = "not a flag --resume takes", False
        if not same:
            differ.append(f"{option} {_shown(value)} (the run's: {_shown(saved)})")
    if differ:
        raise flags.FlagError(
            f"--resume continues {out} with the flags it was started with, and these differ: {'; '.join(differ)}; "
            "drop them (--progress, --threads and --debug are taken), or start a new run with another --out"
        )


def _check_same_data(path: Path, saved: dict, now: dict, source: str) -> None:
    """CheckpointError when the data the run trained on changed since it started."""
    if saved == now:
        return
    parts = ("train_rows", "dev_rows", "test_rows")
    rows = lambda f: "/".join(str(f[p]) for p in parts)  # noqa: E731
    what = (f"it has {rows(now)} train/dev/test rows now, {rows(saved)} when the run started"
            if any(saved[p] != now[p] for p in parts) else "its rows hold other values than when the run started")
    raise CheckpointError(
        f"{path}: the run's data {source} changed ({what}); restore the data the run started with, "
        "or start a new run with another --out"
    )


def _resume(args) -> int:
    """Continue the run in args.resume from its checkpoint, with the flags it was started with,
    and end it at its --out."""
    folder, out = _resume_folder(args.resume)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(folder_lock(folder))  # held until the run ends, wherever the folder moves
        except FolderInUse:
            raise flags.FlagError(
                f"--resume {args.resume}: another fnn process is working in {folder} right now; wait for it to finish"
            ) from None
        return _resume_locked(args, folder, out)


def _resume_locked(args, folder: Path, out: Path) -> int:
    checkpoint = folder / runs.CHECKPOINT
    if not checkpoint.exists() and (folder / "metrics.json").is_file():
        raise flags.FlagError(f"--resume {args.resume}: the run in {folder} is complete (it has metrics.json); "
                              "nothing to resume")
    config, record, saved_data = run_settings(checkpoint, read_metadata(checkpoint))
    _check_given(args, config, record, out)
    try:  # before anything is allocated: the checkpoint's widths are input too
        flags.check_fits_in_memory(config.hidden, "train", optimizer=config.optimizer, batch_size=config.batch_size,
                                   budget=args.max_memory)
    except flags.FlagError as error:
        raise CheckpointError(f"{checkpoint}: the run it continues is too large here ({error})") from None
    if folder != out and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise flags.FlagError(
            f"--resume {args.resume}: the run's --out {out} exists now and holds something else; "
            f"move {out} aside, then resume again"
        )
    splits = runs.load_splits(**record, progress=args.progress)
    _check_same_data(checkpoint, saved_data, fingerprint(splits), record["source"])
    runs.check_conv_fits(config, splits.train.X.shape[1], "train")
    try:
        _check_memory(config, splits, "train", args.max_memory)
    except flags.FlagError as error:
        raise CheckpointError(f"{checkpoint}: the run it continues is too large here ({error})") from None
    monitor = load_run_checkpoint(checkpoint, config, splits)
    check_progress(checkpoint, monitor, config.epochs, steps_per_epoch(len(splits.train.X), config.batch_size))
    if folder != out:  # a killed run's staging folder: the run ends at its --out, as it would have
        os.chmod(folder, 0o755)
        os.replace(folder, out)
    removed = remove_temporaries(out)
    left = f"; removed {count(len(removed), 'unfinished file')} a killed write left" if removed else ""
    print(f"resuming {out} at step {monitor.good.step} (epoch {monitor.good.epoch} of {config.epochs}){left}")
    with runs.leave_resumable(out):
        result = runs.train_and_save(
            config, splits, out, {**record, "fingerprint": saved_data}, progress=args.progress, checkpoints=True,
            resume=monitor,
        )
    runs.print_summary(result.summary, out)
    return 0
