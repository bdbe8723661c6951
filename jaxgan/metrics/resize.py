"""The two image resizes FID protocols use, written out so they match their references.

- `bilinear_matrix` / `resize_bilinear`: torch's `F.interpolate(mode="bilinear",
  align_corners=False)` without antialiasing, as pytorch-fid applies it inside its
  InceptionV3 (`resize_input=True`). Half-pixel centres, source index clamped at
  0, right neighbour clamped at the edge (aten/src/ATen/native/UpSample.h,
  `area_pixel_compute_source_index`). Written as two dense [out, in] matrices so
  it is one jittable pair of matmuls. `jax.image.resize(..., "linear")` equals it
  when upsampling but antialiases when downsampling, so it cannot stand in.
- `resize_clean`: clean-fid's "clean" resize (Parmar, Zhang & Zhu 2022, "On
  Aliased Resizing and Surprising Subtleties in GAN Evaluation",
  arXiv:2104.11222): PIL bicubic, antialiased, per channel on float32 ('F')
  images, clipped to [0, 255]. Runs on the host, with PIL itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] float32 weights of torch's bilinear, align_corners=False, no antialias."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"Sizes must be positive, got in={in_size}, out={out_size}.")
    scale = in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    l1 = src - i0
    w = np.zeros((out_size, in_size), np.float64)
    np.add.at(w, (np.arange(out_size), i0), 1.0 - l1)
    np.add.at(w, (np.arange(out_size), i1), l1)
    return w.astype(np.float32)


def resize_bilinear(images: jax.Array, size: tuple[int, int]) -> jax.Array:
    """[N, H, W, C] float -> [N, size[0], size[1], C], torch bilinear (align_corners=False)."""
    if images.ndim != 4:
        raise ValueError(f"resize_bilinear expects [N, H, W, C], got shape {images.shape}.")
    _, h, w, _ = images.shape
    if (h, w) == tuple(size):
        return images  # torch's formula is the identity here (src = dst)
    wh = jnp.asarray(bilinear_matrix(h, size[0]))
    ww = jnp.asarray(bilinear_matrix(w, size[1]))
    hi = lax.Precision.HIGHEST
    x = jnp.einsum("oh,nhwc->nowc", wh, images, precision=hi)
    return jnp.einsum("pw,nowc->nopc", ww, x, precision=hi)


def resize_clean(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [N, H, W, C] -> float32 [N, size[0], size[1], C] in [0, 255], as clean-fid's
    `make_resizer("PIL", False, "bicubic", size)`: PIL bicubic with antialiasing, one
    float channel at a time, then clipped to [0, 255]."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"resize_clean expects uint8 [N, H, W, C], got {images.dtype} {images.shape}.")
    n, _, _, c = images.shape
    out = np.empty((n, size[0], size[1], c), np.float32)
    for i in range(n):
        for k in range(c):
            channel = Image.fromarray(images[i, :, :, k].astype(np.float32), mode="F")
            out[i, :, :, k] = np.asarray(channel.resize((size[1], size[0]), resample=Image.BICUBIC))
    return np.clip(out, 0.0, 255.0)
