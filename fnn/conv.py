"""Layers for images, batches of shape (m, H, W, C) (NHWC: samples, rows, columns, channels):
Conv2D and MaxPool2D, each rule beside its derivative, in the layer protocol of `fnn.layers`.

Convolution as one matrix product (im2col). For a kernel K: (kh, kw, C_in, C_out), stride s
and the input padded to P: (m, Hp, Wp, C_in), each output pixel (i, j) sees the window
P[i·s : i·s + kh, j·s : j·s + kw, :]. Laid out as the rows of one matrix,

    cols = [window(i, j) flattened in (kh, kw, C_in) order]    (m·Ho·Wo, kh·kw·C_in)
    Z    = cols K₂ + b,   K₂ = K reshaped (kh·kw·C_in, C_out)    (m·Ho·Wo, C_out) -> (m, Ho, Wo, C_out)

and the derivatives are the Dense layer's, through the same matrix:

    dK₂   = colsᵀ dZ        db = Σ over (m, Ho, Wo) of dZ      dcols = dZ K₂ᵀ
    dP    = Σ over the kernel offsets (u, v) of dcols's (u, v) block, dZ K[u, v]ᵀ, added back
            at P[:, u : u + s·Ho : s, v : v + s·Wo : s, :]      (kh·kw products and additions)

`cols` is a strided view of P (`sliding_window_view`) made contiguous by one copy; the
forward pass keeps it for dK, so the backward pass needs no second im2col. dcols is computed
one kernel offset at a time, dZ K[u, v]ᵀ: (m·Ho·Wo, C_in), contiguous, added as it comes: the
same products as one dZ K₂ᵀ, about twice as fast here as that product and the strided
additions of its (m·Ho·Wo, kh·kw·C_in) result (which is also 9x larger than dA).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fnn.layers import decayed, describe_array
from fnn.tree import static

PADDINGS = ("valid", "same")


def _positive_int(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a positive int, got {value!r}")


def _padding(instance, attribute, value):
    if value not in PADDINGS:
        raise ValueError(f"{type(instance).__name__}.padding must be one of {PADDINGS}, got {value!r}")


def output_size(n: int, k: int, stride: int, padding: str) -> int:
    """Output length of a window of k at `stride` over n inputs: ⌈n / s⌉ with "same" padding,
    ⌊(n - k) / s⌋ + 1 with "valid" (0 when the window does not fit)."""
    if padding == "same":
        return -(-n // stride)
    return max((n - k) // stride + 1, 0)


def _pads(n: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """(before, after) zero padding along one axis: "same" pads (out - 1)·s + k - n in all,
    the odd one after (TensorFlow's convention; PyTorch's padding="same" for stride 1)."""
    if padding == "valid":
        return 0, 0
    total = max((output_size(n, k, stride, padding) - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def _check_images(layer, A: np.ndarray, channels: int | None = None) -> None:
    if A.ndim != 4 or (channels is not None and A.shape[3] != channels):
        want = f"(m, H, W, {channels})" if channels is not None else "(m, H, W, C)"
        raise ValueError(f"{type(layer).__name__} takes images of shape {want}, got A of shape {A.shape}")


@attrs.frozen(eq=False, repr=False)
class Conv2D:
    """2-D convolution (cross-correlation, as every framework computes it), NHWC.

    K: (kh, kw, C_in, C_out), b: (C_out,); stride and padding ("valid" or "same") static.
    A: (m, H, W, C_in) -> Z: (m, Ho, Wo, C_out), Ho = `output_size(H, kh, stride, padding)`.
    """

    K: np.ndarray = decayed()
    b: np.ndarray = attrs.field()
    stride: int = static(1, validator=_positive_int)
    padding: str = static("valid", validator=_padding)

    uses_rng: ClassVar[bool] = False

    def __repr__(self) -> str:  # Conv2D(3×3, 1→32, stride=1, padding='valid', float32): never the values
        shape = np.shape(self.K)
        kernel = f"{shape[0]}×{shape[1]}, {shape[2]}→{shape[3]}" if len(shape) == 4 else f"K{shape}"
        return f"Conv2D({kernel}, stride={self.stride!r}, padding={self.padding!r}, {describe_array(self.K)})"

    def forward(self, A, rng):
        _check_images(self, A, self.K.shape[2])
        kh, kw, c_in, c_out = self.K.shape
        m, H, W, _ = A.shape
        (top, bottom), (left, right) = (_pads(H, kh, self.stride, self.padding), _pads(W, kw, self.stride, self.padding))
        P = np.pad(A, ((0, 0), (top, bottom), (left, right), (0, 0))) if top + bottom + left + right else A
        Ho, Wo = output_size(H, kh, self.stride, self.padding), output_size(W, kw, self.stride, self.padding)
        if Ho == 0 or Wo == 0:
            raise ValueError(f"Conv2D's {kh}x{kw} kernel does not fit {H}x{W} images with padding 'valid'")
        # (m, Hp-kh+1, Wp-kw+1, C_in, kh, kw) -> every s-th window -> (m, Ho, Wo, kh, kw, C_in)
        windows = sliding_window_view(P, (kh, kw), axis=(1, 2))[:, :: self.stride, :: self.stride]
        cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(m * Ho * Wo, kh * kw * c_in)  # the one copy
        Z = cols @ self.K.reshape(-1, c_out)
        Z += self.b
        return Z.reshape(m, Ho, Wo, c_out), (cols, P.shape, (top, left, H, W))

    def backward_params(self, cache, dZ, out=None):
        cols = cache[0]
        dZ2 = dZ.reshape(-1, dZ.shape[3])
        if out is None:
            out = attrs.evolve(self, K=np.empty_like(self.K), b=np.empty_like(self.b))
        np.matmul(cols.T, dZ2, out=out.K.reshape(-1, out.K.shape[3]))  # dK₂ = colsᵀ dZ
        np.sum(dZ2, axis=0, out=out.b)  # db: summed over samples and pixels
        return out

    def backward(self, cache, dZ, out=None):
        _, padded_shape, (top, left, H, W) = cache
        kh, kw, c_in, c_out = self.K.shape
        m, Ho, Wo, _ = dZ.shape
        s = self.stride
        dZ2 = dZ.reshape(-1, c_out)
        dP = np.zeros(padded_shape, dZ.dtype)
        for u in range(kh):  # each kernel offset's share, dZ K[u, v]ᵀ, goes back where its windows read
            for v in range(kw):
                dP[:, u : u + s * Ho : s, v : v + s * Wo : s, :] += (dZ2 @ self.K[u, v].T).reshape(m, Ho, Wo, c_in)
        return self.backward_params(cache, dZ, out), dP[:, top : top + H, left : left + W, :]


@attrs.frozen
class MaxPool2D:
    """Max pooling over size x size windows at `stride` (default: size), NHWC, "valid" (rows and
    columns that do not fill a window are dropped, as in PyTorch).

    A: (m, H, W, C) -> Z: (m, Ho, Wo, C), Z[n, i, j, c] = max of A[n, i·s : i·s + size, j·s : j·s + size, c].
    dA: dZ routed to the maximum of each window; on ties, all of it to the first maximum in
    row-major window order (as PyTorch), so the gradient is a subgradient that sums to dZ.
    """

    size: int = static(2, validator=_positive_int)
    stride: int | None = static(None, validator=attrs.validators.optional(_positive_int))

    uses_rng: ClassVar[bool] = False

    def forward(self, A, rng):
        _check_images(self, A)
        k, s = self.size, self.stride or self.size
        m, H, W, C = A.shape
        Ho, Wo = output_size(H, k, s, "valid"), output_size(W, k, s, "valid")
        if Ho == 0 or Wo == 0:
            raise ValueError(f"MaxPool2D's {k}x{k} window does not fit {H}x{W} images")
        views = _window_views(A, k, s, Ho, Wo)
        Z = next(views).copy()
        for view in views:  # the running maximum over the window offsets
            np.maximum(Z, view, out=Z)
        return Z, (A, Z)

    def backward(self, cache, dZ, out=None):
        A, Z = cache
        k, s = self.size, self.stride or self.size
        _, Ho, Wo, _ = dZ.shape
        dA = np.zeros(A.shape, dZ.dtype)
        taken = np.zeros(Z.shape, bool)  # windows whose maximum already took dZ
        for a, d in zip(_window_views(A, k, s, Ho, Wo), _window_views(dA, k, s, Ho, Wo)):
            first = np.equal(a, Z)  # offsets in row-major order: the first maximum takes it all
            np.greater(first, taken, out=first)  # first and not taken
            if s >= k:  # windows do not overlap: each entry of dA is in one window, written once
                np.multiply(dZ, first, out=d)
            else:
                d += dZ * first
            taken |= first
        return self, dA


def _window_views(A: np.ndarray, k: int, s: int, Ho: int, Wo: int):
    """For each offset (u, v) of a k x k window, row-major: the (m, Ho, Wo, C) view of A at
    that offset of every window, A[:, u + i·s, v + j·s, :]."""
    for u in range(k):
        for v in range(k):
            yield A[:, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s, :]


def square_image(n: int) -> tuple[int, int, int]:
    """The (H, W, 1) square grayscale image a row of n pixels holds (784: 28x28), for a CNN."""
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"a CNN needs square grayscale images, but rows have {n} columns (not a square number)")
    return side, side, 1


def conv_stack_shape(image_shape: tuple[int, int, int], channels, kernel: int) -> tuple[int, int, int]:
    """The (H, W, C) after [Conv2D(kernel, valid) -> MaxPool2D(2)] for each entry of `channels`."""
    H, W, C = image_shape
    for c in channels:
        H, W, C = output_size(H, kernel, 1, "valid") // 2, output_size(W, kernel, 1, "valid") // 2, c
        if H == 0 or W == 0:
            raise ValueError(
                f"conv={tuple(channels)} with kernel {kernel} shrinks {image_shape[0]}x{image_shape[1]} images "
                "to nothing; use fewer conv layers or a smaller kernel"
            )
    return H, W, C
