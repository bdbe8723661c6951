"""DiffAugment: differentiable augmentations applied to BOTH real and fake images.

Augmenting only the reals leaks the augmentation into G; augmenting only D's
training breaks the G update. DiffAugment applies the same family of
differentiable transformations to every image D sees (reals and fakes, in D's
and in G's update), so gradients flow through the augmentation into G and D
cannot overfit a small dataset.

Pure, jittable functions of `(key, images)`, images `[B, H, W, C]` in [-1, 1]
(NHWC; the official code is NCHW, so its channel mean over dim 1 is our axis
-1). Each random op is split into a draw (`*_params`, per-example parameters
from a key) and a deterministic transform of those parameters, so tests and
users can reproduce exactly what a key does. The draws follow the official
PyTorch implementation (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py):

  color:       brightness x + (u - 0.5); saturation (x - mean_c) 2u + mean_c;
               contrast (x - mean_hwc) (u + 0.5) + mean_hwc; u ~ U[0, 1) per example.
  translation: integer shifts in [-s, s], s = int(H * 1/8 + 0.5), zero fill.
  cutout:      one zeroed square of side int(H * 1/2 + 0.5) per example, its
               center uniform over the image (it may be partly outside).

Under data parallelism pass each device a different key (fold in the axis
index), or every device applies the same draws to different images.

References:
  Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
  arXiv:2006.10738, sec. 3 and the official implementation.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

AUGMENTATIONS = ("color", "translation", "cutout")


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"images must be a batch [B, H, W, C] (NHWC), got shape {images.shape}; add a channel axis to "
            "grayscale images, e.g. images[..., None]."
        )


# ----------------------------------------------------------------------------
# Color.


class ColorParams(NamedTuple):
    """Per-example color factors, each [B]."""

    brightness: jax.Array  # added, in [-0.5, 0.5)
    saturation: jax.Array  # multiplies the deviation from the channel mean, in [0, 2)
    contrast: jax.Array  # multiplies the deviation from the image mean, in [0.5, 1.5)


def color_params(key: jax.Array, batch: int) -> ColorParams:
    """The official draws: u - 0.5, 2u and u + 0.5 with independent u ~ U[0, 1) per example."""
    kb, ks, kc = jax.random.split(key, 3)
    return ColorParams(
        brightness=jax.random.uniform(kb, (batch,)) - 0.5,
        saturation=jax.random.uniform(ks, (batch,)) * 2.0,
        contrast=jax.random.uniform(kc, (batch,)) + 0.5,
    )


def adjust_color(images: jax.Array, params: ColorParams) -> jax.Array:
    """Brightness, then saturation, then contrast, as in the official `AUGMENT_FNS['color']`."""
    _check_images(images)
    per_example = lambda v: v.astype(images.dtype)[:, None, None, None]
    x = images + per_example(params.brightness)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    x = (x - mean) * per_example(params.saturation) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * per_example(params.contrast) + mean


def rand_color(key: jax.Array, images: jax.Array) -> jax.Array:
    """Random brightness, saturation and contrast (DiffAugment "color")."""
    _check_images(images)
    return adjust_color(images, color_params(key, images.shape[0]))


# ----------------------------------------------------------------------------
# Translation.


def translation_params(
    key: jax.Array, batch: int, height: int, width: int, *, ratio: float = 0.125
) -> tuple[jax.Array, jax.Array]:
    """Integer shifts (rows, cols), each [B] uniform on [-s, s], s = int(size * ratio + 0.5)."""
    kh, kw = jax.random.split(key)
    sh, sw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    return (jax.random.randint(kh, (batch,), -sh, sh + 1), jax.random.randint(kw, (batch,), -sw, sw + 1))


def translate(images: jax.Array, shift_h: jax.Array, shift_w: jax.Array) -> jax.Array:
    """out[b, i, j] = images[b, i + shift_h[b], j + shift_w[b]], zero where that falls outside.

    The official code gathers from a 1-pixel zero-padded image with clamped
    indices; with |shift| < size that is exactly this zero fill.
    """
    _check_images(images)
    _, height, width, _ = images.shape
    rows = jnp.arange(height)[None, :] + shift_h[:, None]  # [B, H]
    cols = jnp.arange(width)[None, :] + shift_w[:, None]  # [B, W]
    x = jnp.take_along_axis(images, jnp.clip(rows, 0, height - 1)[:, :, None, None], axis=1)
    x = jnp.take_along_axis(x, jnp.clip(cols, 0, width - 1)[:, None, :, None], axis=2)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    return x * inside[..., None].astype(images.dtype)


def rand_translation(key: jax.Array, images: jax.Array, *, ratio: float = 0.125) -> jax.Array:
    """Random translation by up to `ratio` of the image size, zero padding (DiffAugment "translation")."""
    _check_images(images)
    b, h, w, _ = images.shape
    return translate(images, *translation_params(key, b, h, w, ratio=ratio))


# ----------------------------------------------------------------------------
# Cutout.


def cutout_size(height: int, width: int, *, ratio: float = 0.5) -> tuple[int, int]:
    """The side lengths of the cutout square: int(size * ratio + 0.5)."""
    return int(height * ratio + 0.5), int(width * ratio + 0.5)


def cutout_params(
    key: jax.Array, batch: int, height: int, width: int, *, ratio: float = 0.5
) -> tuple[jax.Array, jax.Array]:
    """Cutout centers (rows, cols), each [B]: uniform on [0, size - s % 2] (the official offsets)."""
    kh, kw = jax.random.split(key)
    ch, cw = cutout_size(height, width, ratio=ratio)
    return (
        jax.random.randint(kh, (batch,), 0, height + (1 - ch % 2)),
        jax.random.randint(kw, (batch,), 0, width + (1 - cw % 2)),
    )


def cutout(images: jax.Array, center_h: jax.Array, center_w: jax.Array, *, size_h: int, size_w: int) -> jax.Array:
    """Zeroes rows [c_h - size_h // 2, c_h - size_h // 2 + size_h) x the same for columns, per example.

    The official code clamps the window's indices into the image; the window
    always overlaps the image, so clamping adds no pixel and this mask is exact.
    """
    _check_images(images)
    _, height, width, _ = images.shape
    top, left = center_h - size_h // 2, center_w - size_w // 2
    rows, cols = jnp.arange(height)[None, :], jnp.arange(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size_h)  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size_w)  # [B, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return images * keep[..., None].astype(images.dtype)


def rand_cutout(key: jax.Array, images: jax.Array, *, ratio: float = 0.5) -> jax.Array:
    """Zeroes a random square of side `ratio` x the image size per example (DiffAugment "cutout")."""
    _check_images(images)
    b, h, w, _ = images.shape
    size_h, size_w = cutout_size(h, w, ratio=ratio)
    return cutout(images, *cutout_params(key, b, h, w, ratio=ratio), size_h=size_h, size_w=size_w)


# ----------------------------------------------------------------------------
# The policy.

_OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "color": rand_color,
    "translation": rand_translation,
    "cutout": rand_cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """ "color,translation" -> ("color", "translation"); "" -> (); unknown names raise."""
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a comma-separated string such as 'color,translation,cutout', got {policy!r}.")
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in _OPS]
    if unknown:
        raise ValueError(f"Unknown DiffAugment op(s) {unknown} in policy {policy!r}; valid ops: {AUGMENTATIONS}.")
    return names


def diff_augment(key: jax.Array, images: jax.Array, policy: str = "color,translation,cutout") -> jax.Array:
    """Applies the policy's ops in order; op number i draws from fold_in(key, i).

    Args:
      key: a PRNG key; the same key gives the same augmentation.
      images: [B, H, W, C] float images in [-1, 1].
      policy: comma-separated ops from `AUGMENTATIONS`; "" is the identity. The
        paper's default for unconditional GANs is "color,translation,cutout".

    Returns:
      Augmented images, same shape and dtype, differentiable w.r.t. `images`.
    """
    names = parse_policy(policy)
    _check_images(images)
    for i, name in enumerate(names):
        images = _OPS[name](jax.random.fold_in(key, i), images)
    return images
