"""`fnn evaluate`: accuracy, per-class table, confusion matrix, confident errors, calibration."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from fnn import metrics
from fnn.cli import flags, runs, sources
from fnn.errors import DataError, ModelFileError
from fnn.files import staged_folder
from fnn.io import load_model
from fnn.run import blas
from fnn.training import evaluate


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=flags.Formatter,
        help="score a saved model on labelled data: accuracy, per-class table, calibration",
        description=(
            "Print 'accuracy: 0.XXXX', per-class precision/recall/F1, the confusion matrix, the "
            "most confidently wrong examples and the expected calibration error of --model on "
            "--data (the official test set for MNIST, Fashion-MNIST and IDX folders; every row "
            "of a CSV or of the sample, whose rows fnn train's split used), or on --split: the "
            "train, dev or test split the model was trained with, re-created from its metadata "
            "(source, seed, split sizes), which reproduces the run's metrics.json; and write "
            "metrics.json, confusion_matrix.png, confident_errors.png and reliability_diagram.png "
            "into --out."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="a model.npz written by fnn train or fnn tune")
    scored = parser.add_mutually_exclusive_group(required=True)
    scored.add_argument(
        "--data",
        help="'sample', 'mnist', 'fashion-mnist', a Kaggle-layout CSV (.csv or .csv.gz), or a folder of IDX files",
    )
    scored.add_argument(
        "--split", choices=("train", "dev", "test"),
        help="score this split of the data the model was trained on, re-created from the model's metadata",
    )
    flags.add_layout_flag(parser)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/evaluate-<timestamp>/)")
    parser.add_argument("--errors", type=flags.positive_int, default=16, help="how many confident mistakes to list")
    parser.set_defaults(run=run)


def _model_split(model: Path, meta: dict, part: str, progress: bool | None):
    """The split `part` ("train", "dev" or "test") of the run that trained `model`, re-created
    from its metadata's "data"; progress: the --progress flag."""
    data = meta.get("data")
    needed = ("source", "seed", "dev", "test")
    if not isinstance(data, dict) or any(key not in data for key in needed):
        raise ModelFileError(
            f"{model}: the model's metadata does not record how its data was split "
            f"(needs data.{', data.'.join(needed)}); evaluate it with --data instead"
        )
    splits = runs.load_splits(
        data["source"], data.get("layout", "kaggle"), data["seed"], data["dev"], data["test"], progress
    )
    return getattr(splits, part)


def _labelled_source(args, meta: dict):
    if args.split is not None:
        return _model_split(args.model, meta, args.split, args.progress)
    dataset = sources.rows_to_score(args.data, args.layout, runs.download_progress(args.progress))
    if dataset.y is None:
        raise DataError(f"{dataset.source} has no labels; evaluate needs labelled rows (use fnn predict for unlabelled ones)")
    note = sources.constant_label_note(dataset, args.layout)
    if note:
        print(f"fnn: warning: {note}", file=sys.stderr)
    return dataset


def _few(names, k: int = 3) -> str:
    names = [str(name) for name in names]
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def run(args) -> int:
    if args.data is not None and sources.is_image(args.data):
        raise DataError(f"{args.data} is an image, which has no label to score against; use fnn predict for images")
    params, meta = load_model(args.model)
    out = args.out or runs.default_out("evaluate-")
    with staged_folder(out) as folder:
        dataset = _labelled_source(args, meta)
        sources.check_model_fits(args.model, params, dataset)
        if list(dataset.class_names) != list(meta["class_names"]):
            print(
                f"fnn: warning: {dataset.source} names its classes {_few(dataset.class_names)} but the model "
                f"was trained on {_few(meta['class_names'])}; the scores compare labels by number",
                file=sys.stderr,
            )
        proba = sources.finite_probabilities(args.model, params, dataset.X)
        report = metrics.evaluation_report(proba, dataset.y, meta["class_names"], args.errors)
        loss, _ = evaluate(params, dataset.X, dataset.y)
        runs.write_json(
            folder / "metrics.json",
            {
                "model": str(args.model),
                "data": str(dataset.source),
                "rows": len(dataset.X),
                "accuracy": report.accuracy,
                "loss": loss,
                "expected_calibration_error": report.calibration_error,
                "per_class": report.per_class.reset_index().to_dict(orient="records"),
                "confusion_matrix": report.confusion.tolist(),
                "most_confident_errors": report.errors.to_dict(orient="records"),
                "blas": blas(),
            },
        )
        from fnn import plots  # matplotlib loads only when figures are drawn

        split = getattr(args, "split", None)  # --split: a split of the model's own data, else the whole --data
        for stem, figure in plots.evaluation_figures(report, dataset.X, split=split, data=str(dataset.source)).items():
            plots.save_figure(figure, folder / f"{stem}.png")
    names = list(report.class_names)
    print(f"accuracy: {report.accuracy:.4f}")
    print(f"{len(dataset.X)} rows of {dataset.source}, mean cross-entropy {loss:.4f}")
    print("\nper class:")
    print(report.per_class.to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nconfusion matrix (rows true, columns predicted):")
    print(pd.DataFrame(report.confusion, index=pd.Index(names, name="true"), columns=names).to_string())
    print(f"\nmost confidently wrong ({len(report.errors)}):")
    print(report.errors.to_string(index=False, float_format=lambda v: f"{v:.4f}") if len(report.errors) else "none")
    print(f"\nexpected calibration error: {report.calibration_error:.4f} ({len(report.reliability)} bins)")
    print(f"wrote {out}/")
    return 0
