"""A photo or drawing of one digit -> the 784 numbers the network reads, made the way MNIST was.

MNIST digits were size-normalised to fit a 20x20 box (aspect ratio kept, anti-aliased), then
placed in a 28x28 field so that their centre of mass sits at the centre. `load_digit_image`
repeats those steps for any PNG/JPEG (`digit_from_bytes` for one in memory):

1. read it with Pillow as PNG or JPEG only, told apart by its first bytes whatever its name
   (Pillow's other readers are never tried: its EPS reader starts Ghostscript, and a file
   that runs a program is not an image), refusing less than `MIN_SIDE` pixels a side and
   more than `MAX_PIXELS` declared pixels before decoding,
   which is an error, not a warning), shrink a photo whose longer side exceeds `MAX_SIDE` by
   block means (a JPEG already while decoding), apply its EXIF rotation, scale 16-bit and
   float samples by their range (never clipping them to 8 bits), flatten transparency onto a
   contrasting background, convert to grayscale in [0, 1];
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

import io
import os
import re
import stat
import threading
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from fnn.errors import DataError

SIDE = 28  # canvas side, pixels
BOX = 20  # the longer side of the digit after scaling
CENTRE = 14.0  # target row and column of the ink's centre of mass
INK_THRESHOLD = 0.2  # after background removal, fainter pixels are paper
MIN_CONTRAST = 0.1  # brightest ink minus background below this: the image is blank
MAX_PIXELS = 50_000_000  # declared width x height above this is refused before decoding
MAX_SIDE = 1000  # longer side above this is shrunk (block means) before the float math
MIN_SIDE = 8  # a side shorter than this cannot hold a digit drawn to be read
FORMATS = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}  # magic bytes -> Pillow's format name
_OPEN_LOCK = threading.Lock()


def _format(source: str | os.PathLike | bytes, name: str) -> str:
    """"PNG" or "JPEG", from the file's first bytes; DataError for anything else."""
    if isinstance(source, bytes):
        head = source[:8]
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(8)
        except FileNotFoundError:
            raise DataError(f"{name}: image file does not exist") from None
        except OSError as err:
            raise DataError(f"{name}: cannot read the file ({err.strerror})") from None
    for magic, found in FORMATS.items():
        if head.startswith(magic):
            return found
    what = "is empty" if not head else f"starts with {head[:8]!r}"
    raise DataError(f"{name}: not an image fnn reads (it {what}, not as a PNG or JPEG file does); "
                    "convert it to PNG")


def _open(source: str | os.PathLike | bytes, name: str) -> Image.Image:
    """Open `source` (a path or the file's bytes) as the PNG or JPEG its first bytes say it is,
    refuse fewer than `MIN_SIDE` pixels a side or more than `MAX_PIXELS` pixels from the
    declared size, then decode it (a JPEG at the smallest of 1/1..1/8 scale that keeps its
    longer side at least `MAX_SIDE`). The caller closes the image (`with _open(...) as image`)."""
    if not isinstance(source, bytes):
        _check_regular_file(source, name)
    expected = _format(source, name)
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        # Pillow warns about (and above twice its limit refuses) huge images when it reads the
        # header; fnn's own, lower limit below is the one that speaks. The warnings filter is
        # process-wide, so the lock keeps threads (`fnn serve`) from undoing each other's.
        # formats=: only this reader is tried, never one that could start another program.
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=[expected])
    except Image.DecompressionBombError as err:  # above twice Pillow's own limit; its message has the size
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_large(name, f"{int(found[1]):,}" if found else f"over {2 * (Image.MAX_IMAGE_PIXELS or 0):,}") from None
    except FileNotFoundError:
        raise DataError(f"{name}: image file does not exist") from None
    except (PermissionError, IsADirectoryError) as err:
        raise DataError(f"{name}: cannot read the file ({err.strerror})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise _unreadable(name, err) from None
    try:
        width, height = image.size
        if image.format not in FORMATS.values():
            raise DataError(f"{name}: Pillow read it as {image.format}, not as PNG or JPEG; convert it to PNG")
        if width * height > MAX_PIXELS:
            raise _too_large(name, f"{width}x{height} = {width * height:,}")
        if min(width, height) < MIN_SIDE:
            raise DataError(
                f"{name}: the image is {width}x{height} pixels, too small to hold a digit (fnn needs at least "
                f"{MIN_SIDE}x{MIN_SIDE}); pass a larger image of the digit"
            )
        k = _shrink_factor(image.size)
        if image.format == "JPEG" and k > 1:  # libjpeg decodes at 1/2, 1/4 or 1/8 scale for free
            image.draft(image.mode, (-(-width // k), -(-height // k)))
        image.load()
    except DataError:
        image.close()
        raise
    except (OSError, SyntaxError, ValueError) as err:  # a truncated or corrupt image
        image.close()
        raise _unreadable(name, err) from None
    return image


def _check_regular_file(path: str | os.PathLike, name: str) -> None:
    """DataError unless `path` is missing (Pillow says so) or a regular file: Pillow would wait
    forever on a FIFO."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DataError(f"{name}: not a regular file (a FIFO, device or socket); expected a PNG or JPEG file")


def _unreadable(name: str, err: Exception) -> DataError:
    # Pillow's messages may name its objects by address ("<_io.BytesIO object at 0x7f...>")
    said = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the image", str(err))
    return DataError(f"{name}: not an image Pillow can read (PNG or JPEG expected): {said}")


def _too_large(name: str, pixels: str) -> DataError:
    return DataError(
        f"{name}: the image declares {pixels} pixels, more than the {MAX_PIXELS:,} fnn reads; "
        "scale it down (a digit needs only a few hundred pixels a side)"
    )


def _shrink_factor(size: tuple[int, int]) -> int:
    """The k for which k x k blocks bring the longer side to at most `MAX_SIDE`."""
    return -(-max(size) // MAX_SIDE)  # ceil


# modes whose channels Image.reduce averages as intensities (not palette indices, not 16-bit)
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr")
_ORIENTATION = 0x0112  # the EXIF tag, and numpy's form of each Pillow transpose it asks for
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _shrunk(image: Image.Image) -> tuple[Image.Image, int]:
    """(image, k): the image with each k x k block averaged by Pillow (in C, no full-size
    copies) and k = 1 left to do; a 16-bit image is returned as it is with its k, for numpy."""
    k = _shrink_factor(image.size)
    if k == 1 or image.mode.startswith("I;16"):
        return image, k
    if image.mode not in _REDUCIBLE:  # palette or 1-bit: to intensities first
        image = image.convert("RGBA" if _has_alpha(image) else "L")
    return image.reduce(k), 1


def _pixels(image: Image.Image) -> np.ndarray:
    """The image's samples as an array in its own type: (h, w, 4) uint8 when it has transparency,
    (h, w) uint16/int32/float32 for 16-bit, 32-bit and float images, (h, w) uint8 otherwise."""
    if _has_alpha(image):
        return np.asarray(image.convert("RGBA"))
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return np.asarray(image)
    return np.asarray(image.convert("L"))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """(h, w, ...) -> (h // k, w // k, ...) float32: the mean of each k x k block (the last
    h % k rows and w % k columns dropped). Shrinks a 16-bit photo before the float math."""
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    blocks = a[:h, :w].reshape(h // k, k, w // k, k, *a.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _unit_range(a: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """Samples of an image of `dtype` (as float32) -> [0, 1], scaled by the type's range.

    8-bit / 255 and 16-bit / 65535 — never clipped to 8 bits, so a dark 16-bit scan keeps its
    grey levels; 32-bit integer and float images have no fixed range and are scaled from their
    own minimum to their maximum (floats already in [0, 1] are kept as they are).
    """
    if dtype == np.uint8:
        return a / 255
    if dtype.kind == "u" and dtype.itemsize == 2:
        return a / 65535
    if not np.isfinite(a).all():
        raise DataError(f"{name}: the image holds NaN or infinite samples")
    low, high = float(a.min()), float(a.max())
    if dtype.kind == "f" and low >= 0 and high <= 1:
        return a
    return (a - low) / (high - low) if high > low else np.zeros_like(a)


def _read_gray(source: str | os.PathLike | bytes, name: str) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the image's luminance, transparency flattened, photos larger
    than `MAX_SIDE` shrunk by block means, EXIF rotation applied."""
    with _open(source, name) as image:
        orientation = image.getexif().get(_ORIENTATION, 1)
        small, k = _shrunk(image)
        pixels = _pixels(small)
    samples = _unit_range(_block_mean(pixels, k), pixels.dtype, name)
    samples = _ORIENT.get(orientation, lambda a: a)(samples)
    if samples.ndim == 2:
        return samples
    alpha = samples[..., 3]
    gray = samples[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # strokes drawn on a transparent layer: put them on the opposite shade so they show
    ink_is_dark = alpha.sum() > 0 and float((gray * alpha).sum() / alpha.sum()) < 0.5
    return gray * alpha + (1.0 if ink_is_dark else 0.0) * (1 - alpha)


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
    """Read one digit image file (PNG/JPEG, any size, either polarity) as an MNIST-style input.

    Returns x: (784,) float32 in [0, 1], a 28x28 white-on-black image in row-major order,
    ready for `fnn.predict(params, x[None, :])`. See the module docstring for the steps.
    Raises DataError naming the file when it is missing, not an image, too large or blank.
    """
    return digit_from_gray(_read_gray(path, str(path)), str(path))


def digit_from_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """`load_digit_image` for an image file's bytes (an upload); `name` is used in errors."""
    return digit_from_gray(_read_gray(bytes(data), name), name)


def digit_from_gray(gray: np.ndarray, name: str) -> np.ndarray:
    """gray: (h, w) float in [0, 1], either polarity -> x: (784,) float32, steps 2-5 above."""
    background = _border_median(gray)
    if background > 0.5:  # dark ink on light paper: flip to MNIST's white on black
        gray, background = 1 - gray, 1 - background
    contrast = float(gray.max()) - background
    if contrast < MIN_CONTRAST:
        raise DataError(
            f"{name}: no digit found (the image is blank: brightest ink differs from the "
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
