"""Sampling a generator and laying samples out as image grids (pure, no I/O)."""

from __future__ import annotations

import functools
import math
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import compile_cache, latent
from jaxgan.common import Params


def generate(
    generator: nn.Module, params: Params, batch_stats: Params, z: jax.Array, labels: jax.Array | None = None
) -> jax.Array:
    """G(z[, labels]) in inference mode (BatchNorm uses its running statistics)."""
    variables = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
    if labels is None:
        return generator.apply(variables, z, train=False)
    return generator.apply(variables, z, labels, train=False)


def check_truncation(truncation: float | None) -> None:
    """`truncation` is None (no truncation) or a finite threshold > 0 (`fixed_latents`)."""
    if truncation is not None and (
        isinstance(truncation, bool) or not isinstance(truncation, numbers.Real) or not 0 < truncation < math.inf
    ):
        raise ValueError(
            f"truncation={truncation!r} must be a finite threshold > 0 (BigGAN's truncation trick: "
            "|z| <= threshold, e.g. 0.5 - 2), or None for untruncated N(0, I) latents."
        )


@functools.partial(jax.jit, static_argnames=("num", "latent_dim", "truncation"))
def _latents(seed: int, num: int, latent_dim: int, start: int, truncation: float | None) -> jax.Array:
    key = jax.random.PRNGKey(seed)

    def draw(i):
        k = jax.random.fold_in(key, i)
        if truncation is None:
            return jax.random.normal(k, (latent_dim,))
        return jax.random.truncated_normal(k, -truncation, truncation, (latent_dim,))

    return jax.vmap(draw)(start + jnp.arange(num))


def fixed_latents(
    seed: int, num: int, latent_dim: int, start: int = 0, *, truncation: float | None = None
) -> jax.Array:
    """Latents number start..start+num-1 of `seed`: z_i = N(0, I) keyed by fold_in(PRNGKey(seed), i).

    Sample i depends only on (seed, i), never on how many are drawn at once, so
    the same seed always gives the same samples, in any batch size. Compiled once
    per (num, latent_dim, truncation): seed and start are traced.

    `truncation` = t draws each coordinate from N(0, 1) truncated to [-t, t]: the
    truncation trick of Brock et al. 2019 (BigGAN, arXiv:1809.11096, sec. 3.1),
    which trades variety for fidelity. It is a sampling-time choice; metrics
    reported against a published protocol use the untruncated latents.
    """
    check_truncation(truncation)
    return _latents(seed, num, latent_dim, start, None if truncation is None else float(truncation))


def generator_latents(
    generator: nn.Module, seed: int, num: int, start: int = 0, *, truncation: float | None = None
) -> jax.Array:
    """`fixed_latents` for `generator`, truncating its noise only: the coordinates that carry InfoGAN codes
    (`jaxgan.latent`) keep their N(0, 1) draws, so the codes keep their distribution (BigGAN truncates the
    noise, never the class)."""
    latent_dim = int(generator.latent_dim)
    z = fixed_latents(seed, num, latent_dim, start, truncation=truncation)
    num_codes = getattr(generator, "latent_codes", latent.LatentCodes()).num_coordinates
    if truncation is not None and num_codes:
        z = z.at[:, :num_codes].set(fixed_latents(seed, num, latent_dim, start)[:, :num_codes])
    return z


def compiled_generate(generator: nn.Module):
    """`generate` jitted for `generator`, one per generator (Flax modules hash by their fields; kept in
    `jaxgan.compile_cache`), so periodic evaluations reuse the compiled forward pass instead of recompiling it."""
    return compile_cache.cached(("generate", generator), lambda: jax.jit(functools.partial(generate, generator)))


def sample_batched(
    generator: nn.Module,
    params: Params,
    batch_stats: Params,
    *,
    num: int,
    seed: int,
    labels: np.ndarray | None = None,
    batch_size: int = 256,
    truncation: float | None = None,
) -> np.ndarray:
    """`num` samples of G (float, in the model's range) from `fixed_latents(seed, ...)` (with `truncation`,
    BigGAN's truncated latents), on the host.

    Batches are padded to `batch_size` so a single compiled function serves every batch.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}.")
    if labels is not None and len(labels) != num:
        raise ValueError(f"{len(labels)} labels for {num} samples; give one label per sample.")
    run = compiled_generate(generator)
    out = []
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        z = generator_latents(generator, seed, batch_size, start, truncation=truncation)
        y = (
            None
            if labels is None
            else jnp.asarray(np.resize(np.asarray(labels[start : start + n]), batch_size), jnp.int32)
        )
        out.append(np.asarray(run(params, batch_stats, z, y))[:n])
    return np.concatenate(out)


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
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = image
    return grid


def scatter_image(points: np.ndarray, *, size: int = 256, extent: float | None = None) -> np.ndarray:
    """2-D points [N, 2] -> a uint8 [size, size] picture (white dots on black), for sample grids
    of low-dimensional data. The square [-extent, extent]^2 (default: 1.1 x the largest
    |coordinate|) fills the picture; x grows to the right, y upwards."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"scatter_image expects points [N, 2], got shape {points.shape}.")
    finite = points[np.isfinite(points).all(axis=1)]
    extent = extent or max(1.1 * float(np.abs(finite).max(initial=0.0)), 1e-6)
    pixels = np.floor((finite + extent) / (2 * extent) * size).astype(np.int64)
    inside = ((pixels >= 0) & (pixels < size)).all(axis=1)
    col, row = pixels[inside, 0], size - 1 - pixels[inside, 1]
    canvas = np.zeros((size, size), np.uint8)
    canvas[row, col] = 255
    return canvas
