"""A photo or drawing of one digit -> the 784 numbers the network reads, made the way MNIST was.

MNIST digits were size-normalised to fit a 20x20 box (aspect ratio kept, anti-aliased), then
placed in a 28x28 field so that their centre of mass sits at the centre. `load_digit_image`
repeats those steps for any PNG/JPEG:

1. read it with Pillow, apply its EXIF rotation, flatten transparency onto a contrasting
   background, convert to grayscale in [0, 1];
2. polarity: MNIST is white ink on black. The background is taken to be the median of the
   image's outer border (1/20 of the shorter side, at least one pixel); when it is light
   (> 0.5) the image is inverted;
3. contrast: subtract that background level and scale so the brightest ink is 1;
   pixels below `INK_THRESHOLD` then count as paper (noise, JPEG ringing, shadows);
4. crop to the ink's bounding box and resize (Lanczos) so the longer side is 20 px;
5. paste into a 28x28 black canvas shifted (by whole pixels) so that the centre of mass of
   the ink lands on pixel (14, 14) — where it lies in MNIST on average.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIDE = 28  # canvas side, pixels
BOX = 20  # the longer side of the digit after scaling
CENTRE = 14.0  # target row and column of the ink's centre of mass
INK_THRESHOLD = 0.2  # after background removal, fainter pixels are paper
MIN_CONTRAST = 0.1  # brightest ink minus background below this: the image is blank


def _read_gray(path: Path) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the image's luminance, transparency flattened."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
    except FileNotFoundError:
        raise ValueError(f"{path}: image file does not exist") from None
    except (PermissionError, IsADirectoryError) as err:
        raise ValueError(f"{path}: cannot read the file ({err.strerror})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not an image Pillow can read (PNG or JPEG expected): {err}") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
        alpha = rgba[..., 3]
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        # strokes drawn on a transparent layer: put them on the opposite shade so they show
        ink_is_dark = alpha.sum() > 0 and float((gray * alpha).sum() / alpha.sum()) < 0.5
        return gray * alpha + (1.0 if ink_is_dark else 0.0) * (1 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def _border_median(gray: np.ndarray) -> float:
    """Median brightness of the outer ring, 1/20 of the shorter side wide (>= 1 px)."""
    h, w = gray.shape
    t = max(1, min(h, w) // 20)
    ring = np.concatenate([gray[:t].ravel(), gray[-t:].ravel(), gray[:, :t].ravel(), gray[:, -t:].ravel()])
    return float(np.median(ring))


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean pixel of a (h, w) array with some ink."""
    total = ink.sum()
    return (
        float(ink.sum(axis=1) @ np.arange(ink.shape[0]) / total),
        float(ink.sum(axis=0) @ np.arange(ink.shape[1]) / total),
    )


def load_digit_image(path: str | os.PathLike) -> np.ndarray:
    """Read one digit image (PNG/JPEG, any size, either polarity) as an MNIST-style input.

    Returns x: (784,) float32 in [0, 1], a 28x28 white-on-black image in row-major order,
    ready for `fnn.predict(params, x[None, :])`. See the module docstring for the steps.
    Raises ValueError naming the file when it is missing, not an image, or blank (no ink).
    """
    path = Path(path)
    gray = _read_gray(path)
    background = _border_median(gray)
    if background > 0.5:  # dark ink on light paper: flip to MNIST's white on black
        gray, background = 1 - gray, 1 - background
    contrast = float(gray.max()) - background
    if contrast < MIN_CONTRAST:
        raise ValueError(
            f"{path}: no digit found (the image is blank: brightest ink differs from the "
            f"background by {contrast:.3f} < {MIN_CONTRAST})"
        )
    ink = np.clip((gray - background) / contrast, 0, 1)
    ink[ink < INK_THRESHOLD] = 0

    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow sizes are (width, height)
    digit = np.clip(np.asarray(Image.fromarray(ink.astype(np.float32, copy=False)).resize(size, Image.Resampling.LANCZOS)), 0, 1)

    r, c = _centre_of_mass(digit)
    top, left = int(np.floor(CENTRE - r + 0.5)), int(np.floor(CENTRE - c + 0.5))  # nearest, halves up
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    # paste with clipping: a lopsided digit may be pushed partly past the edge, as in MNIST
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(SIDE, top + digit.shape[0]), min(SIDE, left + digit.shape[1])
    canvas[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas.ravel()
