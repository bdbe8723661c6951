"""Sampling a generator and laying samples out as image grids (pure, no I/O)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np

from jaxgan.common import Params


def generate(generator: nn.Module, params: Params, batch_stats: Params, z: jax.Array) -> jax.Array:
    """G(z) in inference mode (BatchNorm uses its running statistics)."""
    variables = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
    return generator.apply(variables, z, train=False)


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] grid."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"image_grid expects uint8 [N, H, W, C], got {images.dtype} {images.shape}.")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = image
    return grid
