"""Data augmentation: pure functions `(rng, X) -> X'` that distort a batch of training images.

    X2 = distort(rng, X, Augmentation(shift=2, rotation=10, scale=0.1, shear=0.2, alpha=34, sigma=4))
    X2 = shift(rng, X, 2)                  # one distortion at a time, at its default strengths
    aug = parse("shift,affine=15,elastic") # the command line's text: Augmentation(shift=2, rotation=15, ...)

X is a batch of grayscale images: rows (m, H·W) of square images (784: 28x28, as the data
sets hold them), or (m, H, W), or (m, H, W, 1); the result has X's shape and dtype (float32 in,
float32 out) and X is never modified. Everything is one pass over the whole batch; no Python
loop runs per image. Pixels outside the image are 0 (the background of digits scaled to [0, 1]).

Every distortion is a map from each output pixel p = (i, j) to a source point in X, read by
bilinear interpolation; the three compose into one map, so X is sampled once:

    src(p) = A (p + d(p) - c) + c - δ          c = ((H - 1)/2, (W - 1)/2), the image's centre

    δ     shift: whole pixels (δ_y, δ_x), each uniform in {-shift, ..., shift}: X moves by δ
    A     affine: the inverse of F = R(θ)·[[1, h], [0, 1]]·diag(s_y, s_x), which scales the image
          by s_y, s_x ~ U[1 - scale, 1 + scale], shears it by h ~ U[-shear, shear] and rotates it
          by θ ~ U[-rotation, rotation] degrees about c
    d     elastic (Simard, Steinkraus & Platt 2003): d = α · (G_H U G_Wᵀ), U uniform in (-1, 1)
          per pixel and per axis, G the Gaussian smoothing of standard deviation σ (scipy.ndimage's
          "reflect" edges, truncated at 4σ): a smooth random field whose standard deviation is
          α·Σg²/√3, 0.041·α pixels at σ = 4 (1.4 pixels at the default α = 34)

in the order X → shift → affine → elastic (each applied to the previous one's output; fused,
the intermediate images are never rounded to the pixel grid). With only a shift, no
interpolation happens: pixels move by whole pixels, zero-filled, their sum kept while the image
stays in frame. At zero strength each is the identity, bit for bit. The output stays within
[min(X, 0), max(X, 0)]: bilinear interpolation averages pixels and the zeros around them.

The rng draws the same numbers whichever distortions are on (a (m, 6) block of uniforms, then
the elastic field), so turning one on does not change what the others draw. NumPy alone is
faster here than scipy.ndimage: `python -m benchmarks.bench_augment` timed scipy's
gaussian_filter + map_coordinates doing the elastic distortion of a batch of 128 in 9.0 ms,
7x this module's 1.3 ms, so fnn does not depend on scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import attrs
import numpy as np
from numpy.lib.stride_tricks import as_strided

from fnn import checks


# each strength: what it must be, and the test (the record's validators and `parse` share them)
RANGES = {
    "shift": ("a whole number >= 0", lambda v: checks.is_int(v) and v >= 0),
    "rotation": ("a number in [0, 180)", lambda v: 0 <= v < 180),
    "scale": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "shear": ("a finite number >= 0", lambda v: 0 <= v < math.inf),
    "alpha": ("a finite number >= 0", lambda v: 0 <= v < math.inf),
    "sigma": ("a finite number > 0", lambda v: 0 < v < math.inf),
}


def _in_range(instance, attribute, value):
    what, ok = RANGES[attribute.name]
    if not ok(value):
        raise ValueError(f"Augmentation.{attribute.name} must be {what}, got {value!r}")


@attrs.frozen
class Augmentation:
    """Strengths of the distortions (see the module docstring); 0 turns one off, and all 0 is
    the identity. shift: whole pixels; rotation: degrees in [0, 180); scale in [0, 1): relative
    change of each axis; shear: the shear factor's bound; alpha: the elastic field's scale in
    pixels; sigma > 0: its smoothness in pixels."""

    shift: int = attrs.field(default=0, converter=lambda v: int(v) if checks.is_int(v) else v, validator=_in_range)
    rotation: float = attrs.field(default=0.0, converter=float, validator=_in_range)
    scale: float = attrs.field(default=0.0, converter=float, validator=_in_range)
    shear: float = attrs.field(default=0.0, converter=float, validator=_in_range)
    alpha: float = attrs.field(default=0.0, converter=float, validator=_in_range)
    sigma: float = attrs.field(default=4.0, converter=float, validator=_in_range)


# The strengths `parse` gives a distortion named without values: Simard et al.'s α = 34, σ = 4
# for elastic fields on 28x28 digits, and moderate affine ranges (Ciresan et al. 2010 use ±15°
# and ±15%).
DEFAULTS = Augmentation(shift=2, rotation=10.0, scale=0.1, shear=0.2, alpha=34.0, sigma=4.0)


# ---------------------------------------------------------------- the transforms


def distort(rng: np.random.Generator, X: np.ndarray, augmentation: Augmentation) -> np.ndarray:
    """X distorted by every distortion `augmentation` turns on, one random draw per image.

    rng: draws (m, 6) uniforms first (δ_y, δ_x, θ, s_y, s_x, h), then the elastic field, the
    same numbers whichever distortions are on (turning one on leaves the others' draws as they were).
    X: (m, H·W), (m, H, W) or (m, H, W, 1) floats -> a new array of X's shape and dtype.
    """
    checks.generator("rng", rng)
    if not isinstance(augmentation, Augmentation):
        raise TypeError(f"augmentation must be an Augmentation (parse('shift,elastic') makes one), got {augmentation!r}")
    images = _images(X)
    a = augmentation
    u = rng.random((images.shape[0], 6))
    shifts = (np.floor(u[:, :2] * (2 * a.shift + 1)) - a.shift).astype(np.intp) if a.shift else None
    matrices = _affine_matrices(2 * u[:, 2:] - 1, a) if a.rotation or a.scale or a.shear else None
    field = _elastic_field(rng, images.shape, a.alpha, a.sigma, X.dtype) if a.alpha else None
    return warp(X, matrices, shifts, field)


def shift(rng: np.random.Generator, X: np.ndarray, max_shift: int = DEFAULTS.shift) -> np.ndarray:
    """X with each image moved by whole pixels (δ_y, δ_x), each uniform in {-max_shift, ...,
    max_shift}, zero-filled. X: (m, H·W), (m, H, W) or (m, H, W, 1) -> same shape and dtype."""
    return distort(rng, X, Augmentation(shift=max_shift))


def affine(rng: np.random.Generator, X: np.ndarray, rotation: float = DEFAULTS.rotation,
           scale: float = DEFAULTS.scale, shear: float = DEFAULTS.shear) -> np.ndarray:
    """X with each image rotated by up to ±rotation degrees, each axis scaled by a factor in
    [1 - scale, 1 + scale] and sheared by up to ±shear about its centre; bilinear, zero outside.
    X: (m, H·W), (m, H, W) or (m, H, W, 1) -> same shape and dtype."""
    return distort(rng, X, Augmentation(rotation=rotation, scale=scale, shear=shear))


def elastic(rng: np.random.Generator, X: np.ndarray, alpha: float = DEFAULTS.alpha,
            sigma: float = DEFAULTS.sigma) -> np.ndarray:
    """X with each image displaced by its own smooth random field α·(G U Gᵀ) (Simard et al. 2003,
    see the module docstring); bilinear, zero outside. X: (m, H·W), (m, H, W) or (m, H, W, 1)
    -> same shape and dtype."""
    return distort(rng, X, Augmentation(alpha=alpha, sigma=sigma))


def compose(*transforms: Callable[[np.random.Generator, np.ndarray], np.ndarray]):
    """One transform `(rng, X) -> X'` applying `transforms` in turn, the k-th with the k-th of
    `rng.spawn(len(transforms))`. Each resamples the image: for the distortions of this module
    one `distort` with an Augmentation is faster and interpolates once."""
    def composed(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
        for step, child in zip(transforms, rng.spawn(len(transforms))):
            X = step(child, X)
        return X if transforms else np.array(X, copy=True)
    return composed


def transform(augmentation: Augmentation | None):
    """The `(rng, X) -> X'` that `fnn.fit(..., augment=)` takes for `augmentation`; None for None."""
    return None if augmentation is None else functools.partial(distort, augmentation=augmentation)


# ---------------------------------------------------------------- the geometry


def warp(X: np.ndarray, matrices: np.ndarray | None = None, shifts: np.ndarray | None = None,
         field: np.ndarray | None = None) -> np.ndarray:
    """X resampled at src(p) = A (p + d(p) - c) + c - δ (module docstring), zero outside X.

    X: (m, H·W), (m, H, W) or (m, H, W, 1) floats; matrices A: (m, 2, 2) acting on (y, x);
    shifts δ: (m, 2) ints (δ_y, δ_x); field d: (m, 2, H, W), (d_y, d_x) in pixels. None leaves
    that part out. -> a new array of X's shape and dtype. Bilinear, unless only shifts are given:
    then out[i, j] = X[i - δ_y, j - δ_x], or 0 outside X.
    """
    images = _images(X)
    m, H, W = images.shape
    for name, part, shape in (("matrices", matrices, (m, 2, 2)), ("shifts", shifts, (m, 2)), ("field", field, (m, 2, H, W))):
        if part is not None and np.shape(part) != shape:
            raise ValueError(f"{name} must have shape {shape} for X of {m} images of {H}x{W}, got {np.shape(part)}")
    if shifts is not None and not np.issubdtype(np.asarray(shifts).dtype, np.integer):
        raise TypeError(f"shifts must be whole pixels (an int array), got {np.asarray(shifts).dtype}")
    if matrices is None and field is None:
        out = images.copy() if shifts is None else _shifted(images, np.asarray(shifts))
        return out.reshape(X.shape)
    dtype = X.dtype
    py, px = (np.arange(n, dtype=dtype) - dtype.type((n - 1) / 2) for n in (H, W))  # p - c
    qy, qx = np.broadcast_to(py[:, None], (H, W)).reshape(1, -1), np.broadcast_to(px, (H, W)).reshape(1, -1)
    if field is not None:  # q = p - c + d(p): (m, H·W) each
        qy, qx = field[:, 0].reshape(m, -1) + qy, field[:, 1].reshape(m, -1) + qx
    offsets = np.broadcast_to(np.array([(H - 1) / 2, (W - 1) / 2], dtype), (m, 2))
    if shifts is not None:
        offsets = offsets - np.asarray(shifts).astype(dtype)
    if matrices is None:
        ys, xs = qy + offsets[:, :1], qx + offsets[:, 1:]
    else:
        A = np.asarray(matrices, dtype).reshape(m, 4, 1)
        ys, xs, scratch = A[:, 0] * qy, A[:, 3] * qx, np.empty((m, H * W), dtype)
        ys += np.multiply(A[:, 1], qx, out=scratch)
        ys += offsets[:, :1]
        xs += np.multiply(A[:, 2], qy, out=scratch)
        xs += offsets[:, 1:]
    return _bilinear(images, ys, xs).reshape(X.shape)


def _images(X: np.ndarray) -> np.ndarray:
    """X as a (m, H, W) view: rows of square images, (m, H, W) or (m, H, W, 1)."""
    if not isinstance(X, np.ndarray) or not np.issubdtype(X.dtype, np.floating):
        raise TypeError(f"X must be a float array of images, got {getattr(X, 'dtype', type(X).__name__)}")
    if X.ndim == 2:
        side = math.isqrt(X.shape[1])
        if side * side != X.shape[1] or side == 0:
            raise ValueError(f"X's rows must be square grayscale images (784 = 28x28), got {X.shape[1]} columns")
        return X.reshape(X.shape[0], side, side)
    if X.ndim == 3 or (X.ndim == 4 and X.shape[3] == 1):
        return X.reshape(X.shape[:3])
    raise ValueError(f"X must be rows (m, H·W), images (m, H, W) or (m, H, W, 1), got shape {X.shape}")


def _shifted(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """out[b, i, j] = images[b, i - δ_y, j - δ_x] (0 outside): each image's H×W window of the
    zero-padded batch, all picked by one fancy index. images: (m, H, W), shifts: (m, 2) ints."""
    m, H, W = images.shape
    s = int(np.abs(shifts).max(initial=0))
    padded = np.zeros((m, H + 2 * s, W + 2 * s), images.dtype)
    padded[:, s : s + H, s : s + W] = images
    # (m, 2s+1, 2s+1, H, W): every H×W window, no copy (sliding_window_view's view, built directly:
    # its checks cost 10 µs, an eighth of this function)
    b, r, c = padded.strides
    windows = as_strided(padded, (m, 2 * s + 1, 2 * s + 1, H, W), (b, r, c, r, c), writeable=False)
    return windows[np.arange(m), s - shifts[:, 0], s - shifts[:, 1]]


def _bilinear(images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """images (m, H, W) read at the points (ys, xs): (m, H·W) each (overwritten: the caller's
    scratch), zero outside the image -> (m, H·W).

    v = (1 - f_y)((1 - f_x) a + f_x b) + f_y((1 - f_x) c + f_x d) for the four pixels a, b, c, d
    around each point, gathered from the batch padded with a ring of zeros (two on the far
    sides); points further out are first clipped onto that ring, where every pixel is 0.
    """
    m, H, W = images.shape
    Hp, Wp = H + 3, W + 3
    padded = np.zeros((m, Hp, Wp), images.dtype)
    padded[:, 1 : H + 1, 1 : W + 1] = images
    np.clip(ys, -1, H, out=ys)
    np.clip(xs, -1, W, out=xs)
    y0, x0 = np.floor(ys), np.floor(xs)
    ys -= y0  # f_y
    xs -= x0  # f_x
    y0 *= Wp  # each point's top-left pixel in its padded image, exact in floats (< 2^24)
    y0 += x0
    y0 += Wp + 1
    index = y0.astype(np.intp)
    index += np.arange(0, m * Hp * Wp, Hp * Wp)[:, None]
    flat = padded.reshape(-1)
    a = flat.take(index)
    index += 1
    b = flat.take(index)
    index += Wp - 1
    c = flat.take(index)
    index += 1
    d = flat.take(index)
    b -= a  # top = a + f_x (b - a)
    b *= xs
    b += a
    d -= c  # bottom = c + f_x (d - c)
    d *= xs
    d += c
    d -= b  # top + f_y (bottom - top)
    d *= ys
    d += b
    # a convex combination of pixels and zeros; clipping undoes float rounding past its bounds
    return np.clip(d, min(images.min(initial=0), 0), max(images.max(initial=0), 0), out=d)


def _affine_matrices(u: np.ndarray, a: Augmentation) -> np.ndarray:
    """(m, 2, 2) float64: A = F⁻¹ = diag(1/s_y, 1/s_x)·[[1, -h], [0, 1]]·R(-θ), F = R(θ)·[[1, h],
    [0, 1]]·diag(s_y, s_x), from u: (m, 4) uniform in [-1, 1): θ, s_y, s_x, h in their ranges."""
    theta = np.deg2rad(a.rotation) * u[:, 0]
    sy, sx, h = 1 + a.scale * u[:, 1], 1 + a.scale * u[:, 2], a.shear * u[:, 3]
    cos, sin = np.cos(theta), np.sin(theta)
    # R(-θ) = [[cos, sin], [-sin, cos]]; then [[1, -h], [0, 1]]; then diag(1/s_y, 1/s_x)
    return np.stack([
        np.stack([(cos + h * sin) / sy, (sin - h * cos) / sy], axis=1),
        np.stack([-sin / sx, cos / sx], axis=1),
    ], axis=1)


def gaussian_matrix(n: int, sigma: float, dtype=np.float64) -> np.ndarray:
    """(n, n) G with (G v)_i = Σ_k g_k v[reflect(i + k)]: v: (n,) smoothed by a Gaussian of
    standard deviation σ, g_k ∝ exp(-k²/2σ²) for |k| ≤ ⌊4σ + 0.5⌋, Σ g = 1, with
    scipy.ndimage.gaussian_filter1d's default edges ("reflect": ... c b a | a b c ... ). Every
    row sums to 1."""
    radius = int(4 * sigma + 0.5)
    k = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (k / sigma) ** 2)
    g /= g.sum()
    j = np.mod(np.arange(n)[:, None] + k, 2 * n)
    j = np.where(j >= n, 2 * n - 1 - j, j)  # reflected back into 0..n-1
    cells = np.arange(n)[:, None] * n + j
    return np.bincount(cells.ravel(), np.broadcast_to(g, cells.shape).ravel(), n * n).reshape(n, n).astype(dtype)


def _elastic_field(rng: np.random.Generator, shape: tuple[int, int, int], alpha: float, sigma: float,
                   dtype) -> np.ndarray:
    """(m, 2, H, W) displacements d = α·(G_H U G_Wᵀ) in X's dtype, U uniform in (-1, 1) per
    pixel and axis.

    U = (2k + 1)/256 - 1 for a random byte k: 256 evenly spaced values, a third of the cost of
    drawing floats, and after smoothing over hundreds of pixels the field is the same. As G's
    rows sum to 1, d = (α/128)·G_H K G_Wᵀ - α·255/256: one draw, then two matrix products over
    the whole batch (every image's rows at once, then its columns)."""
    m, H, W = shape
    work = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    K = np.frombuffer(rng.bytes(2 * m * H * W), np.uint8).astype(work).reshape(2 * m * H, W)
    G_W = gaussian_matrix(W, sigma, work) * work(alpha / 128)
    rows = (K @ G_W.T).reshape(2 * m, H, W)
    field = np.matmul(gaussian_matrix(H, sigma, work), rows)
    field -= work(alpha * 255 / 256)
    return field.reshape(m, 2, H, W).astype(dtype, copy=False)


# ---------------------------------------------------------------- the text form


SYNTAX = "shift[=N], affine[=DEGREES[:SCALE[:SHEAR]]] and elastic[=ALPHA[:SIGMA]], joined by commas"
# each name's values in order: (the Augmentation field, its name in SYNTAX)
VALUES = {
    "shift": (("shift", "N"),),
    "affine": (("rotation", "DEGREES"), ("scale", "SCALE"), ("shear", "SHEAR")),
    "elastic": (("alpha", "ALPHA"), ("sigma", "SIGMA")),
}


def parse(text: str) -> Augmentation | None:
    """The Augmentation of a text such as "shift=2,affine=15:0.1,elastic" (`SYNTAX`: a name
    alone takes DEFAULTS' strengths, an empty value keeps its default: "affine=:0.2"); None for
    "" or "none". A ValueError names the part that is wrong and what it takes."""
    if not isinstance(text, str):
        raise TypeError(f"an augmentation text must be a str such as 'shift,elastic', got {type(text).__name__}")
    if text.strip().lower() in ("", "none"):
        return None
    fields: dict = {}
    for part in (p.strip() for p in text.split(",")):
        name, has_values, values = part.partition("=")
        if name not in VALUES:
            raise ValueError(f"unknown distortion {name!r} in {text!r}: use {SYNTAX}, e.g. 'shift=2,elastic'")
        slots = VALUES[name]
        if slots[0][0] in fields:
            raise ValueError(f"{name} is given twice in {text!r}")
        given = values.split(":") if has_values else []
        if len(given) > len(slots):
            raise ValueError(f"{part!r}: {name} takes at most {len(slots)} values, {':'.join(s[1] for s in slots)}")
        for (key, label), value in zip(slots, given + [""] * len(slots)):
            fields[key] = _value(part, key, label, value)
    return Augmentation(**fields)


def _value(part: str, key: str, label: str, text: str):
    """One value of `part`: DEFAULTS' when `text` is empty, else the number it holds, in range."""
    if not text.strip():
        return getattr(DEFAULTS, key)
    try:
        value = int(text) if key == "shift" else float(text)
    except ValueError:
        value = None
    what, ok = RANGES[key]
    if value is None or not ok(value):
        raise ValueError(f"{part!r}: {label} must be {what}, got {text.strip()!r}")
    return value


def describe(augmentation: Augmentation | None) -> str:
    """The canonical text of `augmentation` ("none", or e.g. "shift=2,affine=10:0.1:0.2,
    elastic=34:4"): `parse(describe(a)) == a` for each distortion that is on."""
    if augmentation is None:
        return "none"
    a = augmentation
    parts = [f"shift={a.shift}"] if a.shift else []
    if a.rotation or a.scale or a.shear:
        parts.append(f"affine={_text(a.rotation)}:{_text(a.scale)}:{_text(a.shear)}")
    if a.alpha:
        parts.append(f"elastic={_text(a.alpha)}:{_text(a.sigma)}")
    return ",".join(parts) or "none"


def _text(value: float) -> str:
    """10.0 -> '10', 0.1 -> '0.1': the shortest text that parses back to the same float."""
    return str(int(value)) if value.is_integer() else repr(value)


def as_augmentation(value) -> Augmentation | None:
    """None, an Augmentation, its text (`parse`) or its fields as a mapping (a model file's or
    checkpoint's JSON) -> an Augmentation, or None for no augmentation."""
    if value is None or isinstance(value, Augmentation):
        return value
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, Mapping):
        return Augmentation(**value)
    raise TypeError(f"augment must be None, an Augmentation, a text such as 'shift,elastic' or a dict, got {value!r}")
