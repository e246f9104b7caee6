"""`fnn predict`: a Kaggle submission CSV for a data source, or label + probability per image."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import attrs
import numpy as np
import pandas as pd

from fnn.cli import flags, runs, sources
from fnn.files import file_above, make_parents
from fnn.images import load_digit_image
from fnn.io import load_model


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "predict",
        parents=[common],
        formatter_class=flags.Formatter,
        help="label new digits: a Kaggle test.csv to a submission file, or PNG/JPEG images",
        description=(
            "Predict a label for every row of --data and write Kaggle's submission format "
            "(header ImageId,Label; ImageId from 1) to --out. --data is a Kaggle test.csv or "
            "train.csv, an IDX folder (its official test set), 'mnist', 'fashion-mnist' or "
            "'sample'; or one or more PNG/JPEG images of single digits, any size, for which the "
            "label and its probability are printed (and written to --out only when given)."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="a model.npz written by fnn train or fnn tune")
    parser.add_argument("--data", nargs="+", required=True, metavar="SOURCE", help="a data source, or image files")
    flags.add_layout_flag(parser)
    parser.add_argument(
        "--out", type=Path, default=None,
        help="submission CSV to write (default: submission.csv; for images, print only); never one "
        "of the inputs, and an existing file only when it is a submission (it starts with the line "
        "ImageId,Label), or with --force",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out that is not a submission")
    parser.set_defaults(run=run)


def _write_submission(path: Path, predicted: np.ndarray) -> None:
    """Kaggle's Digit Recognizer format: header ImageId,Label; ImageId counts from 1."""
    make_parents(path)
    runs.write_csv(path, pd.DataFrame({"ImageId": np.arange(1, len(predicted) + 1), "Label": predicted}))


SUBMISSION_HEADER = b"ImageId,Label"


def _is_submission(path: Path) -> bool:
    """Whether the regular file `path` starts with the line `fnn predict` writes first."""
    with open(path, "rb") as f:
        return f.readline(len(SUBMISSION_HEADER) + 3).rstrip(b"\r\n") == SUBMISSION_HEADER


def _check_out(out: Path, inputs: list[Path], force: bool) -> None:
    """FlagError when --out is one of the command's inputs, not a place for a file, or an
    existing file that is not a submission (unless `force`)."""
    for path in inputs:
        if path.exists() and out.exists() and out.samefile(path) or out.resolve() == path.resolve():
            raise flags.FlagError(f"--out {out} is one of the inputs ({path}); choose another file for the predictions")
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        blocker = file_above(out)
        if blocker is not None:
            raise flags.FlagError(f"--out {out}: {blocker} is a file, not a folder; choose another --out") from None
        raise flags.FlagError(f"--out {out}: cannot use it ({error.strerror}); choose another --out") from None
    if stat.S_ISDIR(mode):
        raise flags.FlagError(f"--out {out} is a folder; name a file in it, e.g. --out {out / 'submission.csv'}")
    if not stat.S_ISREG(mode):  # opening a FIFO to look inside would wait for a writer
        raise flags.FlagError(f"--out {out} is not a regular file (a FIFO, device or socket); choose another --out")
    if not force and not _is_submission(out):
        raise flags.FlagError(
            f"--out {out} exists and is not a submission (its first line is not ImageId,Label), so fnn will not "
            "replace it; choose another --out, or pass --force to replace it"
        )


def run(args) -> int:
    images = [path for path in args.data if sources.is_image(path)]
    if images and len(images) != len(args.data):
        raise flags.FlagError("--data mixes images and other sources; pass either image files or one data source")
    if not images and len(args.data) != 1:
        raise flags.FlagError(
            f"--data takes one data source (or several images), got {len(args.data)}: {' '.join(args.data)}"
        )
    out = args.out if args.out is not None or images else Path("submission.csv")
    if out is not None:
        _check_out(out, [args.model, *map(Path, args.data)], args.force)
    params, meta = load_model(args.model)
    names = [str(name) for name in meta["class_names"]]
    if images:
        X = np.stack([load_digit_image(path) for path in images])
    else:
        dataset = sources.rows_to_score(args.data[0], args.layout, runs.download_progress(args.progress))
        sources.check_model_fits(args.model, params, attrs.evolve(dataset, y=None))
        note = sources.constant_label_note(dataset, args.layout)
        if note:  # the "label" may be a pixel, and every pixel after it one column off
            print(f"fnn: warning: {note}", file=sys.stderr)
        X = dataset.X
    proba = sources.finite_probabilities(args.model, params, X)
    predicted = proba.argmax(axis=1)
    if images:
        for path, label, p in zip(images, predicted, proba[np.arange(len(X)), predicted]):
            print(f"{path}: {names[label]} (probability {p:.4f})")
    if out is not None:
        _write_submission(out, predicted)
        counts = np.bincount(predicted, minlength=len(names))
        print(f"wrote {out}: {len(predicted)} predictions; per class: " + ", ".join(
            f"{name} {count}" for name, count in zip(names, counts)
        ))
    return 0
