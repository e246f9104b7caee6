"""Digit images: any size and polarity in, a centred 28x28 white-on-black MNIST-style vector out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fnn.images import load_digit_image


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    return (
        float(image.sum(axis=1) @ np.arange(image.shape[0]) / total),
        float(image.sum(axis=0) @ np.arange(image.shape[1]) / total),
    )


def _drawn_digit(path, size=(300, 400), ink="black", paper="white", mode="RGB", offset=(0, 0)):
    """A thick '4'-like shape drawn off-centre (top-left) on a large canvas."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    dx, dy = offset
    draw.line([(60 + dx, 40 + dy), (30 + dx, 170 + dy), (140 + dx, 170 + dy)], fill=ink, width=22)
    draw.line([(110 + dx, 90 + dy), (110 + dx, 260 + dy)], fill=ink, width=22)
    image.save(path)
    return path


def _check_mnist_like(x: np.ndarray) -> np.ndarray:
    assert x.shape == (784,) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
    image = x.reshape(28, 28)
    r, c = _centre_of_mass(image)
    assert abs(r - 14) <= 1 and abs(c - 14) <= 1
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (20, 21)  # longer side scaled to ~20 px
    # white on black: the border of the canvas is empty
    assert image[0].sum() == image[-1].sum() == image[:, 0].sum() == image[:, -1].sum() == 0
    return image


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_dark_on_light_off_centre_drawing_becomes_centred_white_on_black(tmp_path, suffix):
    x = load_digit_image(_drawn_digit(tmp_path / f"four.{suffix}"))
    image = _check_mnist_like(x)
    # aspect ratio kept: the shape is taller (about 240 px) than wide (about 130 px)
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    assert rows[-1] - rows[0] > cols[-1] - cols[0]


def test_polarity_and_position_do_not_change_the_result(tmp_path):
    dark_on_light = load_digit_image(_drawn_digit(tmp_path / "a.png"))
    light_on_dark = load_digit_image(_drawn_digit(tmp_path / "b.png", ink="white", paper="black", mode="L"))
    moved = load_digit_image(_drawn_digit(tmp_path / "c.png", offset=(120, 100), size=(500, 450)))
    np.testing.assert_allclose(light_on_dark, dark_on_light, atol=0.02)
    np.testing.assert_allclose(moved, dark_on_light, atol=0.02)


def test_transparent_background_is_flattened(tmp_path):
    path = _drawn_digit(tmp_path / "t.png", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    np.testing.assert_allclose(load_digit_image(path), load_digit_image(_drawn_digit(tmp_path / "o.png")), atol=0.02)


def test_an_mnist_style_digit_round_trips(tmp_path):
    # a digit already made the MNIST way, saved as a 28x28 8-bit PNG, comes back nearly unchanged
    digit = load_digit_image(_drawn_digit(tmp_path / "big.png"))
    Image.fromarray(np.round(digit.reshape(28, 28) * 255).astype(np.uint8)).save(tmp_path / "small.png")
    again = load_digit_image(tmp_path / "small.png")
    _check_mnist_like(again)
    assert np.abs(again - digit).mean() < 0.01
    assert np.corrcoef(again, digit)[0, 1] > 0.99


def test_upscales_a_tiny_image(tmp_path):
    image = Image.new("L", (8, 8), 255)
    ImageDraw.Draw(image).rectangle([3, 1, 4, 6], fill=0)  # a "1", 2x6 px
    image.save(tmp_path / "one.png")
    x = _check_mnist_like(load_digit_image(tmp_path / "one.png"))
    rows = np.flatnonzero(x.any(axis=1))
    assert rows[-1] - rows[0] + 1 in (20, 21)


@pytest.mark.parametrize("shade", [0, 128, 255])
def test_blank_image_is_an_error(tmp_path, shade):
    path = tmp_path / "blank.png"
    Image.new("L", (50, 50), shade).save(path)
    with pytest.raises(ValueError, match="blank.png: no digit found"):
        load_digit_image(path)


def test_non_image_and_missing_files_are_errors(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(ValueError, match="notes.png: not an image"):
        load_digit_image(path)
    with pytest.raises(ValueError, match="nope.png: image file does not exist"):
        load_digit_image(tmp_path / "nope.png")


def test_a_folder_is_not_called_an_unreadable_image(tmp_path):
    with pytest.raises(ValueError, match="cannot read the file"):
        load_digit_image(tmp_path)
