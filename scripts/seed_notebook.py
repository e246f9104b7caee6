"""The seed notebook's whole flow, written with fnn's pure functions: a tutorial to read top to bottom.

load -> split -> init -> fit -> tune -> evaluate on dev and test -> plot -> save -> load -> predict,
and, for comparison, the seed's exact recipe (full-batch gradient descent, lr 0.1, 500 iterations,
784-128-10). Offline on the bundled sample, about a minute on a 2-core machine. Run it from the
repository root:

    python scripts/seed_notebook.py [--out runs/seed_notebook] [--seed 0] [--iterations 500]

Everything it computes comes from library calls; this script only adds the prints, the clock
and the files (fnn keeps such effects at its edges).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from functools import partial

import attrs
import numpy as np
import pandas as pd
import toolz

import fnn
from fnn import metrics, plots, tune
from fnn.optim import constant, gd
from fnn.config import TrainConfig, train
from fnn.training import batches, evaluate, init_state, train_step


def scores(params: fnn.MLP, name: str, dataset: fnn.Dataset) -> dict:
    """{name_loss, name_acc}: mean cross-entropy and accuracy of params on a labelled dataset."""
    loss, acc = evaluate(params, dataset.X, dataset.y)
    return {f"{name}_loss": loss, f"{name}_acc": acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/seed_notebook"), help="folder for figures and the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the batches")
    parser.add_argument(
        "--iterations", type=int, default=500,
        help="full-batch steps of the seed recipe (default 500, the seed's; a multiple of 25; "
             "each takes about 0.05 s on one core)",
    )
    args = parser.parse_args()
    if args.iterations < 25 or args.iterations % 25:
        parser.error(f"--iterations must be a positive multiple of 25 (the curve is scored every 25 steps), got {args.iterations}")
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. Load. Every source becomes a Dataset: X (n, 784) float32 pixels / 255, y (n,) int labels.
    data = fnn.load_dataset("sample")
    print(f"1. loaded {len(data.X)} digits from the bundled sample: X {data.X.shape} {data.X.dtype}, y {data.y.shape}")

    # 2. Split. One seeded Generator decides which rows go where; the same seed, the same split.
    #    The seed notebook held out 1,000 rows; here they become 500 dev (to choose settings on)
    #    and 500 test (looked at once, at the end), stratified so every digit is represented.
    splits = fnn.split(data, np.random.default_rng(args.seed), dev=500, test=500, stratify=True)
    print(f"2. split: {len(splits.train.X)} train / {len(splits.dev.X)} dev / {len(splits.test.X)} test")

    # 3. The seed's exact recipe. A network is its tree of weights: He-initialised Dense(W, b)
    #    records, W1: (784, 128), W2: (128, 10). Training is a fold: train_step(state, batch) is
    #    the binary operator, and `batches(..., "full", 500)` a stream of 500 full-batch "epochs",
    #    so this is 500 steps of plain gradient descent (--iterations). toolz.accumulate yields every state of
    #    the fold lazily; we keep every 25th and score it, which is all a learning curve needs.
    init_rng, batch_rng = np.random.default_rng(args.seed).spawn(2)
    params0 = fnn.init(init_rng, (784, 128, 10))
    optimizer = gd(constant(0.1))
    fold = partial(train_step, optimizer=optimizer, l2=0.0)
    start = time.perf_counter()
    states = toolz.accumulate(fold, batches(batch_rng, splits.train.X, splits.train.y, "full", args.iterations), init_state(params0, optimizer))
    checkpoints = list(toolz.take_nth(25, states))  # steps 0, 25, ..., args.iterations
    seed_seconds = time.perf_counter() - start
    seed_params = checkpoints[-1].params
    seed_history = pd.DataFrame(
        [
            {"step": state.step, **scores(state.params, "train", splits.train), **scores(state.params, "dev", splits.dev)}
            for state in checkpoints
        ]
    )
    print(
        f"3. seed recipe (gd, full batch, lr 0.1, {args.iterations} steps): dev accuracy {seed_history['dev_acc'].iloc[-1]:.4f} "
        f"in {seed_seconds:.1f} s"
    )

    # 4. fnn's default recipe: mini-batches of 128, SGD with momentum 0.9, a cosine learning-rate
    #    schedule. `train` builds the network and the optimizer from a TrainConfig and calls `fit`.
    config = TrainConfig(seed=args.seed)
    start = time.perf_counter()
    default_run = train(np.random.default_rng(config.seed), config, splits.train, splits.dev)
    default_seconds = time.perf_counter() - start
    default_dev = evaluate(default_run.best_params, splits.dev.X, splits.dev.y)[1]
    print(
        f"4. default recipe ({config.optimizer}, batch {config.batch_size}, lr {config.lr:g} {config.schedule}, "
        f"{config.epochs} epochs): dev accuracy {default_dev:.4f} in {default_seconds:.1f} s"
    )

    # 5. Tune, as the seed did by hand: hidden width x L2 strength, each point scored on dev only
    #    (grid_search never reads splits.test). Short runs keep it quick; pass an Executor to
    #    grid_search to spread the points over cores or machines.
    grid = {"hidden": [(64,), (110,), (128,)], "l2": [0.0, 0.1]}
    search_base = attrs.evolve(config, epochs=5)
    start = time.perf_counter()
    results = tune.grid_search(args.seed, grid, splits, base=search_base)
    results = results.assign(hidden=[h[0] for h in results["hidden"]])  # one hidden layer: show 64, not (64,)
    print(f"5. tuned {len(results)} points ({search_base.epochs} epochs each) in {time.perf_counter() - start:.1f} s:")
    print(results.drop(columns=["seed", "seeds", "dev_acc_std", "stopped"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    tuned = tune.best_row(results)
    print(f"   best on dev: hidden {tuned['hidden']}, l2 {tuned['l2']:g}")
    plots.save_figure(plots.tuning_heatmap(results), args.out / "tune_heatmap.png")

    # 6. The final model: the chosen hidden width and L2 with the full default schedule (the
    #    default run already is that model when the defaults won). Then, and only now, the test
    #    split is scored, once, for each of the two recipes.
    final_config = attrs.evolve(config, hidden=(int(tuned["hidden"]),), l2=float(tuned["l2"]))
    if final_config == config:
        final = default_run
    else:
        final = train(np.random.default_rng(final_config.seed), final_config, splits.train, splits.dev)
    params = final.best_params
    print(f"6. final model {final_config.hidden}, l2 {final_config.l2:g}; mean cross-entropy and accuracy:")
    for name, run_params in (("seed recipe", seed_params), ("tuned default", params)):
        for part in ("dev", "test"):
            dataset = getattr(splits, part)
            loss, acc = evaluate(run_params, dataset.X, dataset.y)
            print(f"   {name:<13} {part:<4} loss {loss:.4f}  accuracy {acc:.4f}")
    predicted = fnn.predict(params, splits.test.X)
    cm = metrics.confusion_matrix(splits.test.y, predicted, 10)
    print(metrics.classification_report(cm, splits.test.class_names).to_string(float_format=lambda v: f"{v:.3f}"))

    # 7. Plot: the learning curves of the final run, and the two recipes side by side.
    plots.save_figure(plots.training_metrics(final.history), args.out / "training_metrics.png")
    plots.save_figure(
        plots.optimizer_comparison({"seed recipe (gd, full batch)": seed_history, "tuned default": final.history}, x="step"),
        args.out / "recipes.png",
    )
    plots.save_figure(plots.confusion_matrix_figure(cm, splits.test.class_names), args.out / "confusion_matrix.png")

    # 8. Save and load: one .npz of arrays plus JSON metadata, never a pickle. The loaded network
    #    is the same tree of arrays, so it predicts exactly the same labels.
    path = fnn.save_model(args.out / "model.npz", params, {"training_config": attrs.asdict(final_config)})
    loaded, metadata = fnn.load_model(path)
    assert fnn.tree_allclose(loaded, params, rtol=0)
    print(f"8. saved and reloaded {path} (layer sizes {metadata['layer_sizes']}, {metadata['dtype']})")

    # 9. Predict: test digits with their predicted labels and probabilities, as the seed
    #    notebook's test_prediction(index) printed and showed them. The split keeps the file's
    #    order (the sample is sorted by digit), so take evenly spaced rows to see every digit.
    shown = np.linspace(0, len(splits.test.X) - 1, 25).round().astype(int)
    proba = fnn.predict_proba(loaded, splits.test.X[shown])
    for i, row in zip(shown[::3], proba[::3]):
        print(f"   test digit {i:>3}: label {splits.test.y[i]}, predicted {row.argmax()} (probability {row.max():.3f})")
    plots.save_figure(
        plots.sample_predictions(splits.test.X[shown], splits.test.y[shown], predicted[shown], splits.test.class_names),
        args.out / "sample_predictions.png",
    )
    print(f"9. figures and model in {args.out}/")


if __name__ == "__main__":
    main()
