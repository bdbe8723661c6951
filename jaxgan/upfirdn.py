"""upfirdn2d: upsample, pad, FIR-filter and downsample a batch of images (NHWC).

StyleGAN2's resampling (Karras et al. 2020, arXiv:1912.04958, sec. 2 / app. B:
bilinear [1, 3, 3, 1] up/down sampling) and ADA's geometric augmentations
(Karras et al. 2020, arXiv:2006.06676, app. B) are all this one operation, as in
NVIDIA's `torch_utils/ops/upfirdn2d.py`, whose conventions it keeps:

  1. upsample by inserting `up - 1` zeros after each pixel;
  2. pad with zeros (negative padding crops), padding given on the upsampled image
     as (x0, x1, y0, y1) = (left, right, top, bottom);
  3. convolve each channel with the FIR filter f (true convolution; `flip_filter`
     makes it a correlation), keeping only outputs whose footprint lies inside;
  4. downsample by keeping every `down`-th pixel.

f is 1-D (separable: applied along x, then y) or 2-D; `gain` scales the signal
(a separable filter gets sqrt(gain) per axis). Plain slices and sums, which XLA
differentiates to any order (path length regularization differentiates through
it twice).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Padding = int | Sequence[int]


def setup_filter(
    f: Sequence[float] | np.ndarray, *, normalize: bool = True, separable: bool | None = None
) -> np.ndarray:
    """A float32 FIR filter: 1-D (separable) or 2-D, normalized to unit DC gain by default.

    As NVIDIA's `setup_filter`: a 1-D filter of fewer than 8 taps becomes its outer product
    (2-D) unless `separable` says otherwise.
    """
    f = np.asarray(f, np.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.size == 0:
        raise ValueError(f"an FIR filter is 1-D (separable) or 2-D taps, got shape {f.shape}.")
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f.astype(np.float32)


def _pads(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) != 4:
        raise ValueError(f"padding is an int, (x, y) or (x0, x1, y0, y1), got {padding!r}.")
    return padding  # type: ignore[return-value]


def _filter_size(f: np.ndarray) -> tuple[int, int]:
    """(width, height) of a 1-D or 2-D filter."""
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def _correlate(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Correlates every channel of x [B, H, W, C] with the same 2-D kernel [kh, kw] (VALID).

    Hand-written as a sum of shifted slices: XLA's CPU depthwise convolution (`feature_group_count`) was
    ~40x slower for these few-tap filters (jaxgan/upfirdn.py's timings: experiments/results/stylegan2/README.md).
    """
    kh, kw = kernel.shape
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    kernel = kernel.astype(x.dtype)
    if kh == 1 or kw == 1:  # a 1-D filter: one pass of shifted slices
        taps, axis, n = kernel.reshape(-1), (1 if kw == 1 else 2), max(kh, kw)
        size = out_h if axis == 1 else out_w
        return sum(taps[i] * jax.lax.slice_in_dim(x, i, i + size, axis=axis) for i in range(n))
    return sum(kernel[i, j] * x[:, i : i + out_h, j : j + out_w] for i in range(kh) for j in range(kw))


def upfirdn2d(
    x: jax.Array,
    f: np.ndarray | jax.Array,
    *,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> jax.Array:
    """Upsample, pad, filter, downsample `x` [B, H, W, C]; see the module docstring."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d takes images [B, H, W, C], got shape {x.shape}.")
    f = jnp.asarray(f, jnp.float32)
    x0, x1, y0, y1 = _pads(padding)
    b, h, w, c = x.shape
    if up > 1:  # zeros after each pixel
        x = x.reshape(b, h, 1, w, 1, c)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
        x = x.reshape(b, h * up, w * up, c)
    x = jnp.pad(x, ((0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)), (0, 0)))
    x = x[:, max(-y0, 0) : x.shape[1] - max(-y1, 0), max(-x0, 0) : x.shape[2] - max(-x1, 0)]
    f = f * gain ** (f.ndim / 2)
    if not flip_filter:  # convolution = correlation with the flipped filter
        f = jnp.flip(f, axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        x = _correlate(x, f)
    else:
        x = _correlate(x, f[None, :])  # along x
        x = _correlate(x, f[:, None])  # along y
    return x[:, ::down, ::down]


def filter2d(x: jax.Array, f: np.ndarray, *, padding: Padding = 0, gain: float = 1.0) -> jax.Array:
    """Filters `x` keeping its size (plus `padding`)."""
    fw, fh = _filter_size(np.asarray(f))
    x0, x1, y0, y1 = _pads(padding)
    p = (x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2)
    return upfirdn2d(x, f, padding=p, gain=gain)


def upsample2d(x: jax.Array, f: np.ndarray, *, up: int = 2, padding: Padding = 0, gain: float = 1.0) -> jax.Array:
    """Upsamples `x` by `up` with the FIR filter f; the output is `up` times the input (plus `padding`)."""
    fw, fh = _filter_size(np.asarray(f))
    x0, x1, y0, y1 = _pads(padding)
    p = (x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(x: jax.Array, f: np.ndarray, *, down: int = 2, padding: Padding = 0, gain: float = 1.0) -> jax.Array:
    """Downsamples `x` by `down` after filtering with f; the output is 1/`down` of the input (plus `padding`)."""
    fw, fh = _filter_size(np.asarray(f))
    x0, x1, y0, y1 = _pads(padding)
    p = (x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2, y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=p, gain=gain)
