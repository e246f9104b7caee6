"""Digit images: any size and polarity in, a centred 28x28 white-on-black MNIST-style vector out."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from fnn.errors import DataError
from fnn.images import MAX_PIXELS, digit_from_bytes, load_digit_image


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


def test_bytes_and_path_give_the_same_digit(tmp_path):
    path = _drawn_digit(tmp_path / "four.png")
    np.testing.assert_array_equal(digit_from_bytes(path.read_bytes()), load_digit_image(path))
    with pytest.raises(DataError, match="^upload: not an image"):
        digit_from_bytes(b"GIF89a but not really", "upload")


def _declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (the pixel data is a 1x1 image's)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR CRC
    return bytes(data)


@pytest.mark.parametrize("side", [8000, 12000, 20000])  # above fnn's limit; above Pillow's warning; its error
def test_a_huge_declared_size_is_one_error_before_decoding(tmp_path, side, recwarn):
    data = _declaring(side, side)
    assert len(data) < 100 and side * side > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"^\S*bomb.png: the image declares .* pixels, more than the 50,000,000"):
        load_digit_image(path)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_truncated_image_is_named(tmp_path):
    path = _drawn_digit(tmp_path / "cut.png")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="cut.png: not an image Pillow can read"):
        load_digit_image(path)


def _dark_scan(tmp_path, dtype, top) -> np.ndarray:
    """The '4' as a dark 16-bit or float scan: ink at `top`, paper at 0 — the 8-bit digit scaled."""
    eight_bit = np.asarray(Image.open(_drawn_digit(tmp_path / "ink.png", ink="white", paper="black", mode="L")))
    return (eight_bit / 255 * top).astype(dtype)


def test_16_bit_images_are_scaled_by_their_range_not_clipped(tmp_path):
    reference = load_digit_image(_drawn_digit(tmp_path / "ref.png"))
    # a dark scan: the ink reaches 12000 of 65535, far above 255 (which 8-bit clipping would turn
    # into a flat two-level image) and well below full scale
    Image.fromarray(_dark_scan(tmp_path, np.uint16, 12000)).save(tmp_path / "scan16.png")
    with Image.open(tmp_path / "scan16.png") as saved:  # mode "I;16", or "I" in Pillow 10.0
        assert saved.mode.startswith("I") and np.asarray(saved).max() == 12000
    scan = load_digit_image(tmp_path / "scan16.png")
    np.testing.assert_allclose(scan, reference, atol=0.02)
    # the same scan at 1/20 of that brightness is (as at 8 bits) too faint to be a digit
    Image.fromarray(_dark_scan(tmp_path, np.uint16, 600)).save(tmp_path / "faint16.png")
    with pytest.raises(DataError, match="faint16.png: no digit found"):
        load_digit_image(tmp_path / "faint16.png")


@pytest.mark.parametrize("top", [1.0, 3000.0])
def test_float_samples_are_scaled_by_their_range_and_float_tiffs_refused(tmp_path, top):
    """fnn opens PNG and JPEG only (issue 23), so a float TIFF scan is refused by its first
    bytes; float samples (Pillow's mode F) are still scaled by their own range."""
    from fnn.images import _unit_range

    scan = _dark_scan(tmp_path, np.float32, top)
    Image.fromarray(scan).save(tmp_path / "scan.tiff")
    with pytest.raises(DataError, match="scan.tiff: not an image fnn reads"):
        load_digit_image(tmp_path / "scan.tiff")
    scaled = _unit_range(scan, scan.dtype, "scan")
    expected = scan if top == 1.0 else (scan - scan.min()) / (scan.max() - scan.min())
    np.testing.assert_allclose(scaled, expected, atol=1e-6)


@pytest.mark.slow
def test_a_large_photo_is_shrunk_first_and_reads_like_a_small_one(tmp_path):
    small = load_digit_image(_drawn_digit(tmp_path / "small.png"))
    big = Image.open(tmp_path / "small.png").resize((3000, 4000), Image.Resampling.NEAREST)
    big.save(tmp_path / "big.png")
    x = load_digit_image(tmp_path / "big.png")
    _check_mnist_like(x)
    assert np.abs(x - small).mean() < 0.02


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(tmp_path, orientation):
    # a lopsided shape on a canvas taller than wide, so each of the 8 orientations differs
    path = _drawn_digit(tmp_path / "plain.png", size=(300, 420))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.open(path).save(tmp_path / "tagged.png", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "tagged.png"))
    upright.save(tmp_path / "upright.png")
    np.testing.assert_array_equal(load_digit_image(tmp_path / "tagged.png"), load_digit_image(tmp_path / "upright.png"))


def test_a_large_jpeg_is_decoded_small_and_reads_like_a_small_one(tmp_path):
    small = load_digit_image(_drawn_digit(tmp_path / "small.png"))
    Image.open(tmp_path / "small.png").resize((3000, 4000), Image.Resampling.NEAREST).save(tmp_path / "big.jpg", quality=90)
    x = load_digit_image(tmp_path / "big.jpg")
    _check_mnist_like(x)
    assert np.abs(x - small).mean() < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["P", "LA", "1"])
def test_large_palette_grey_alpha_and_1_bit_images_shrink_like_rgb(tmp_path, mode):
    rgb = Image.open(_drawn_digit(tmp_path / "small.png")).resize((2400, 3200), Image.Resampling.NEAREST)
    rgb.save(tmp_path / "big.png")
    rgb.convert(mode).save(tmp_path / f"big-{mode}.png")
    np.testing.assert_allclose(load_digit_image(tmp_path / f"big-{mode}.png"), load_digit_image(tmp_path / "big.png"), atol=0.02)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_is_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(DataError, match=r"pipe.png: not a regular file \(a FIFO, device or socket\)"):
        load_digit_image(tmp_path / "pipe.png")
    if Path("/dev/zero").exists():
        with pytest.raises(DataError, match="/dev/zero: not a regular file"):
            load_digit_image("/dev/zero")


def test_pixel_limit_is_checked_on_the_declared_size_without_decoding(tmp_path, monkeypatch):
    # a real image one pixel over the limit is refused before Pillow decodes anything
    import fnn.images

    Image.new("L", (100, 50)).save(tmp_path / "over.png")
    monkeypatch.setattr(fnn.images, "MAX_PIXELS", 100 * 50 - 1)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(DataError, match=r"over.png: the image declares 100x50 = 5,000 pixels, more than the 4,999"):
        load_digit_image(tmp_path / "over.png")
    assert decoded == []
