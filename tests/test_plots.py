"""Figures: each is a Figure with named axes that saves to a real PNG, with no pyplot state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import _pylab_helpers
from matplotlib.figure import Figure

from fnn import metrics, plots
from fnn.metrics import confusion_matrix, reliability_table
from fnn.params import init

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(n_layers: int = 3, rows: int = 12, dev: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    step = np.arange(1, rows + 1) * 10
    frame = {
        "step": step,
        "epoch": step // 40,
        "lr": np.full(rows, 0.1),
        "seconds": step * 0.01,
        "train_loss": 2.3 * np.exp(-step / 50) + 0.05,
        "train_acc": 1 - 0.9 * np.exp(-step / 40),
        "dev_loss": 2.3 * np.exp(-step / 60) + 0.1 if dev else np.full(rows, np.nan),
        "dev_acc": 1 - 0.9 * np.exp(-step / 45) - 0.02 if dev else np.full(rows, np.nan),
    }
    layers = range(1, n_layers + 1)
    frame |= {f"grad_norm_{l}": rng.uniform(0.1, 2, rows) for l in layers}
    frame |= {f"update_ratio_{l}": rng.uniform(1e-4, 1e-2, rows) for l in layers}
    frame |= {f"dead_frac_{l}": rng.uniform(0, 0.2, rows) for l in layers if l < n_layers}
    return pd.DataFrame(frame)


def _proba_and_labels(n: int = 300, k: int = 10):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(n, k)) * 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, rng.integers(0, k, n)


def _check_figure(fig, tmp_path, name: str, image_grid: bool = False) -> None:
    """A Figure with named axes, saved as a real PNG, no temp file left, nothing in pyplot.

    Plots: every axes has a y label and an x label (its own or a shared axis'), the figure a
    title. Image grids: every image has a title, the figure a suptitle.
    """
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert axes
    if image_grid:
        assert fig.get_suptitle() and all(ax.get_title() for ax in axes), name
    else:
        assert fig.get_suptitle() or axes[0].get_title(), name
        for ax in axes:
            siblings = ax.get_shared_x_axes().get_siblings(ax)
            assert any(other.get_xlabel() for other in siblings), f"{name}: no x label"
            assert ax.get_ylabel(), f"{name}: no y label"
    path = plots.save_figure(fig, tmp_path / f"{name}.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp files left
    assert _pylab_helpers.Gcf.get_all_fig_managers() == []  # nothing registered with pyplot


@pytest.mark.slow
@pytest.mark.parametrize("dev", [True, False])
def test_training_metrics(tmp_path, dev):
    history = _history(dev=dev)
    before = history.copy()
    fig = plots.training_metrics(history)
    _check_figure(fig, tmp_path, "metrics")
    pd.testing.assert_frame_equal(history, before)
    ax_acc, ax_loss = fig.axes
    assert ax_acc.get_xlabel() == "iteration (step)" and "ccuracy" in ax_acc.get_title()
    assert len(ax_acc.lines) == (3 if dev else 1)  # an all-NaN dev curve is not drawn
    if dev:  # the best dev accuracy, whose parameters fnn keeps, is starred
        star = ax_acc.lines[2]
        best = history["dev_acc"].idxmax()
        assert star.get_label() == "best dev (kept)"
        assert star.get_xdata()[0] == history["step"][best] and star.get_ydata()[0] == history["dev_acc"].max()
        assert f"kept: best dev accuracy {history['dev_acc'].max():.4f}" in fig.get_suptitle()
        assert "train and dev splits" in fig.get_suptitle()
    assert np.array_equal(ax_loss.lines[0].get_ydata(), history["train_loss"])
    assert ax_acc.child_axes[0].get_xlabel() == "epoch (40 steps)"  # the top axis: steps 40, 80, ... end epochs


@pytest.mark.slow
def test_training_health_with_and_without_hidden_layers(tmp_path):
    history = _history(n_layers=3)
    fig = plots.training_health(history, data="sample")
    _check_figure(fig, tmp_path, "health")
    grad, ratio, dead, lr = fig.axes  # lr: the learning rate's own axis, beside the update ratios
    assert grad.get_yscale() == "log" and ratio.get_yscale() == "log"
    assert len(grad.lines) == 3 and len(ratio.lines) == 3 and len(dead.lines) == 2
    # no fixed "rule of thumb" line (a cosine schedule's last steps fall decades below any): the lr instead
    assert all(len(set(line.get_ydata())) > 1 for line in ratio.lines)
    assert np.array_equal(lr.lines[0].get_ydata(), history["lr"]) and "learning rate" in lr.get_ylabel()
    assert fig.get_suptitle() == "Training health on the train split of sample"
    # a network without ReLU-family layers (tanh) has no dead units to show: no empty panel
    linear = plots.training_health(_history(n_layers=1))
    assert [ax.get_title() for ax in linear.axes if ax.get_title()] == [
        "Gradient norm per layer (last batch)", "Update ratio per layer (last update)"
    ]
    assert not any(ax.texts for ax in linear.axes)


def test_training_metrics_names_missing_columns():
    with pytest.raises(ValueError, match=r"history lacks columns \['dev_acc'\]"):
        plots.training_metrics(_history().drop(columns="dev_acc"))
    with pytest.raises(ValueError, match="grad_norm"):
        plots.training_health(_history()[["step", "train_loss"]])


@pytest.mark.slow
@pytest.mark.parametrize("x", ["step", "epoch", "seconds"])
def test_optimizer_comparison(tmp_path, x):
    runs = {"sgd": _history(), "adam": _history(rows=8), "no dev": _history(dev=False)}
    fig = plots.optimizer_comparison(runs, x=x)
    _check_figure(fig, tmp_path, "compare")
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_acc.lines] == ["sgd", "adam", "no dev (train)"]
    assert len(ax_loss.lines) == 3 and ax_loss.get_yscale() == "log"
    with pytest.raises(ValueError, match="x must be one of"):
        plots.optimizer_comparison(runs, x="time")
    assert plots.optimizer_comparison(runs, x=x, data="sample").get_suptitle() == "Optimizer comparison on sample"
    assert ax_loss.get_title() == "Training loss (train split)" and ax_acc.get_title() == "Dev accuracy (dev split)"


@pytest.mark.slow
def test_confusion_matrix_figure_writes_every_count(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 10, 500)
    cm = confusion_matrix(y, np.where(rng.random(500) < 0.8, y, rng.integers(0, 10, 500)), 10)
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    fig = plots.confusion_matrix_figure(cm, names)
    _check_figure(fig, tmp_path, "cm")
    ax = fig.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert all(texts[t, p] == str(cm[t, p]) for t in range(10) for p in range(10))
    assert [label.get_text() for label in ax.get_xticklabels()] == names
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    with pytest.raises(ValueError, match="class_names has 2 names"):
        plots.confusion_matrix_figure(cm, ["a", "b"])


def test_confusion_matrix_shows_errors_on_their_own_scale():
    """18 sevens read as 9 among 500 correct sevens must not be near-white: the colour scale is
    the off-diagonal counts', and the diagonal is drawn apart, outside it."""
    cm = np.diag([500] * 10).astype(np.int64)
    cm[7, 9], cm[4, 9], cm[3, 5] = 18, 17, 1
    fig = plots.confusion_matrix_figure(cm, [str(j) for j in range(10)], split="test", data="sample")
    ax, bar = fig.axes
    image = ax.images[0]
    assert image.norm.vmin == 0 and image.norm.vmax == 18  # the largest mistake is the darkest colour
    shown = image.get_array()
    assert all(shown.mask[j, j] for j in range(10)) and shown.mask[0, 1]  # diagonal and zeros: outside the scale
    assert not shown.mask[7, 9] and shown[7, 9] == 18
    assert image.cmap(image.norm(17))[:3] != (1.0, 1.0, 1.0) and image.norm(17) > 0.9
    diagonal = [p for p in ax.patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert sorted(p.get_xy() for p in diagonal) == [(j - 0.5, j - 0.5) for j in range(10)]
    assert "errors" in bar.get_ylabel() or "wrong" in bar.get_ylabel()
    assert ax.get_title().startswith("Confusion matrix on the test split of sample\n5036 rows, accuracy 0.9929, 36 wrong")


@pytest.mark.slow
def test_reliability_diagram(tmp_path):
    proba, y = _proba_and_labels()
    fig = plots.reliability_diagram(reliability_table(proba, y))
    _check_figure(fig, tmp_path, "reliability")
    assert "ECE" in fig.axes[0].get_title()
    diagonal = fig.axes[0].lines[0]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]


@pytest.mark.slow
def test_sample_predictions_marks_mistakes_in_red(tmp_path):
    X = np.random.default_rng(3).random((30, 784), dtype=np.float32)
    y_true = np.arange(30) % 10
    y_pred = y_true.copy()
    y_pred[[1, 4]] = (y_true[[1, 4]] + 1) % 10
    fig = plots.sample_predictions(X, y_true, y_pred, [str(j) for j in range(10)], n=9)
    _check_figure(fig, tmp_path, "samples", image_grid=True)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 9
    red = [i for i, ax in enumerate(shown) if ax.title.get_color() == plots.WRONG]
    assert red == [1, 4] and "true 1" in shown[1].get_title()
    assert shown[0].images[0].get_array().shape == (28, 28)
    unlabelled = plots.sample_predictions(X, None, y_pred, [str(j) for j in range(10)], n=4)
    assert [ax.get_title() for ax in unlabelled.axes if ax.get_visible()] == ["pred 0", "pred 2", "pred 2", "pred 3"]
    rows, confidence = np.arange(30) * 3, np.linspace(0.5, 0.99, 30)
    named = plots.sample_predictions(X, y_true, y_pred, [str(j) for j in range(10)], n=4, rows=rows,
                                     confidence=confidence, split="dev", data="sample")
    titles = [ax.get_title() for ax in named.axes if ax.get_visible()]
    assert titles[0] == f"row 0\n0 ({confidence[0]:.2f})" and titles[1] == f"row 3\npred 2 ({confidence[1]:.2f})\ntrue 1"
    assert named.get_suptitle().startswith("Predictions for 4 images on the dev split of sample (1 wrong, in red)")


def test_confident_errors_show_probability_and_row(tmp_path):
    proba, y = _proba_and_labels()
    report = metrics.evaluation_report(proba, y, [str(j) for j in range(10)], n_errors=6)
    X = np.random.default_rng(5).random((len(y), 784), dtype=np.float32)
    figures = plots.evaluation_figures(report, X, split="test", data="sample")
    assert sorted(figures) == ["confident_errors", "confusion_matrix", "reliability_diagram"]
    tiles = [ax for ax in figures["confident_errors"].axes if ax.get_visible()]
    for ax, (_, error) in zip(tiles, report.errors.iterrows()):
        assert ax.get_title() == f"row {error['index']}\npred {error['predicted']} ({error['probability']:.2f})\ntrue {error['true']}"
        assert np.array_equal(ax.images[0].get_array().ravel(), X[error["index"]])
    assert figures["confident_errors"].get_suptitle().startswith("The 6 most confident mistakes on the test split of sample\n")
    for name, fig in figures.items():  # every title names the split and the data
        assert "test split of sample" in (fig.get_suptitle() or fig.axes[0].get_title()), name


def test_sample_predictions_of_no_images(tmp_path):
    fig = plots.sample_predictions(np.zeros((0, 784)), np.zeros(0, int), np.zeros(0, int), ["a"])
    assert fig.get_suptitle() == "No images to show"
    assert plots.save_figure(fig, tmp_path / "none.png").read_bytes().startswith(PNG_MAGIC)


def test_sample_predictions_checks_shapes():
    with pytest.raises(ValueError, match="not a square image"):
        plots.sample_predictions(np.zeros((3, 780)), None, np.zeros(3, int), ["a"])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        plots.sample_predictions(np.zeros((3, 784)), None, np.zeros(2, int), ["a"])


@pytest.mark.slow
def test_first_layer_weights(tmp_path):
    params = init(np.random.default_rng(4), (784, 12, 10))
    fig = plots.first_layer_weights(params, n=9)
    _check_figure(fig, tmp_path, "weights", image_grid=True)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    norms = np.linalg.norm(params.layers[0].W, axis=0)
    units = [int(ax.get_title().split("\n")[0].split()[-1]) for ax in shown]
    assert len(units) == 9 and list(norms[units]) == sorted(norms, reverse=True)[:9]
    image = shown[0].images[0]
    assert image.get_array().shape == (28, 28) and image.norm.vmin == -image.norm.vmax
    limit = np.abs(params.layers[0].W[:, units[0]]).max()
    assert image.norm.vmax == pytest.approx(limit) and shown[0].get_title().endswith(f"±{limit:.2g}")  # each tile's scale
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "max |w|" in bars[0].get_ylabel()  # the legend of that scale
    assert [t.get_text() for t in bars[0].get_yticklabels()][::2] == ["−max", "0", "+max"]


def test_first_layer_weights_of_a_cnn_are_its_filters():
    params = init(np.random.default_rng(4), (784, 16, 10), conv=(6,))
    fig = plots.first_layer_weights(params, data="sample")
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(shown) == 6 and shown[0].images[0].get_array().shape == (3, 3)
    assert shown[0].get_title().startswith("filter ") and "trained on sample" in fig.get_suptitle()


@pytest.mark.slow
def test_tuning_heatmap_takes_the_best_lr(tmp_path):
    results = pd.DataFrame(
        [
            {"hidden": h, "l2": l2, "lr": lr, "dev_acc": 0.8 + h / 1000 - l2 / 10 + lr / 10}
            for h in (32, 128)
            for l2 in (0.0, 0.5)
            for lr in (0.01, 0.1)
        ]
        + [{"hidden": 64, "l2": 0.0, "lr": 0.1, "dev_acc": np.nan}]  # a diverged run
    )
    fig = plots.tuning_heatmap(results)
    _check_figure(fig, tmp_path, "tuning")
    ax = fig.axes[0]
    cells = [t.get_text() for t in ax.texts]
    assert f"{0.8 + 0.128 + 0.01:.4f}\nlr 0.1" in cells and "–" in cells
    assert [label.get_text() for label in ax.get_yticklabels()] == ["32", "64", "128"]
    assert "best over lr" in ax.get_title()
    single_lr = plots.tuning_heatmap(results[results["lr"] == 0.1].drop(columns="lr"))
    assert all("lr" not in t.get_text() for t in single_lr.axes[0].texts)
    assert "one seed per cell" in single_lr.axes[0].get_title()


def test_tuning_heatmap_shows_the_seeds_spread_and_does_not_stretch_noise():
    """Dev accuracies 0.944-0.956 (six images of 500) must not span the whole colour scale; with
    several seeds each cell shows mean ± std, and cells within noise of the best are marked."""
    results = pd.DataFrame([
        {"hidden": h, "l2": l2, "dev_acc": acc, "dev_acc_std": std, "seeds": (1, 2, 3)}
        for (h, l2, acc, std) in [(64, 0.0, 0.944, 0.004), (64, 0.3, 0.956, 0.003), (128, 0.0, 0.950, 0.006),
                                  (128, 0.3, 0.900, 0.002)]
    ])
    fig = plots.tuning_heatmap(results, data="sample")
    ax = fig.axes[0]
    norm = ax.images[0].norm
    assert norm.vmax == pytest.approx(0.956) and norm.vmax - norm.vmin >= 0.05 - 1e-12
    assert "0.9440\n± 0.0040" in [t.get_text() for t in ax.texts]
    assert ax.get_title().startswith("Dev accuracy on the dev split of sample\nmean ± std over 3 seeds")
    dashed = [p for p in ax.patches if p.get_linestyle() == "--"]
    assert [(p.get_x() + 0.45, p.get_y() + 0.45) for p in dashed] == [(0, 1)]  # 0.950 ± 0.006 ties 0.956 ± 0.003
    wide = plots.tuning_heatmap(results, min_span=0.0)
    assert wide.axes[0].images[0].norm.vmin == pytest.approx(0.900)


@pytest.mark.slow
def test_save_figure_follows_the_suffix_and_is_atomic(tmp_path, monkeypatch):
    fig = plots.training_metrics(_history())
    assert plots.save_figure(fig, tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")
    assert plots.save_figure(fig, tmp_path / "curves").read_bytes().startswith(PNG_MAGIC)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", crash)
    with pytest.raises(KeyboardInterrupt):
        plots.save_figure(fig, tmp_path / "never.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves", "curves.svg"]
