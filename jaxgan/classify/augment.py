"""Classic data augmentation for a classifier: shifts, small rotations, elastic deformation.

Every transform is a resampling of the image on a warped grid: output pixel
p = (row, col) reads the input at q(p) by bilinear interpolation, with pixels
outside the image read as `fill` (the background; -1 is black in jaxgan's
[-1, 1] model range, the background of digit images). Composing transforms is
adding their displacements, so one `warp` applies all of them at once.

- Shift: q = p - t with an integer t, the classic "shift the digit by a few
  pixels" augmentation (exact, no interpolation blur).
- Rotation: q = c + R(angle) (p - c) about the image centre c.
- Elastic deformation (Simard, Steinkraus & Platt 2003, "Best practices for
  convolutional neural networks applied to visual document analysis", ICDAR):
  q = p + alpha * (G_sigma * u)(p), u ~ U(-1, 1) per pixel and axis, G_sigma a
  Gaussian of standard deviation sigma pixels (Simard et al.: alpha 34, sigma 4
  on 28x28 MNIST).

All functions are pure JAX (jit/vmap-able) and take explicit keyword arguments.

Hand-written rather than dm-pix's `rotate` / `elastic_deformation`: dm-pix fills every coordinate outside
[0, n - 1] (blacking out the border of 8x8 digits), resamples each transform separately and is slower on
CPU; figures: experiments/results/classic_augment_dm_pix/README.md.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def rotation_shift_coordinates(
    height: int, width: int, *, angle: jax.Array | float, shift: jax.Array | tuple[float, float]
) -> jax.Array:
    """Sampling coordinates [2, H, W]: q = c + R(angle) (p - c) - shift, p = (row, col).

    R(a) = [[cos a, -sin a], [sin a, cos a]] acts on (row, col); with angle
    pi / 2 the output is the input turned clockwise (`np.rot90(x, k=-1)`);
    a shift (dr, dc) moves the content down by dr and right by dc.
    """
    rows, cols = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    cr, cc = (height - 1) / 2.0, (width - 1) / 2.0
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    shift = jnp.asarray(shift, jnp.float32)
    q_row = cr + cos * (rows - cr) - sin * (cols - cc) - shift[0]
    q_col = cc + sin * (rows - cr) + cos * (cols - cc) - shift[1]
    return jnp.stack([q_row, q_col])


def gaussian_smooth(field: jax.Array, *, sigma: float) -> jax.Array:
    """2-D Gaussian filter of `field` [H, W] with zero padding outside.

    The kernel is scipy.ndimage.gaussian_filter's (truncate=4: radius
    int(4 sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalized to sum 1),
    applied separably along rows then columns, as that function does with
    mode='constant', cval=0.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}.")
    radius = int(4.0 * sigma + 0.5)
    x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    kernel = jnp.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    along = lambda f: jnp.convolve(f, kernel, mode="full")[radius : radius + f.shape[0]]  # zero-padded, centred
    field = jax.vmap(along, in_axes=1, out_axes=1)(field)  # along rows (axis 0)
    return jax.vmap(along)(field)  # along columns (axis 1)


def elastic_displacement(key: jax.Array, height: int, width: int, *, alpha: float, sigma: float) -> jax.Array:
    """Simard et al. (2003)'s displacement field [2, H, W]: alpha * G_sigma * U(-1, 1), per axis."""
    u = jax.random.uniform(key, (2, height, width), minval=-1.0, maxval=1.0)
    return alpha * jax.vmap(lambda f: gaussian_smooth(f, sigma=sigma))(u)


def warp(image: jax.Array, coordinates: jax.Array, *, fill: float = -1.0) -> jax.Array:
    """image [H, W, C] resampled at `coordinates` [2, H, W]: bilinear, `fill` outside, blended with the
    border within one pixel of it (scipy.ndimage's mode='grid-constant')."""
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, list(coordinates), order=1, mode="constant", cval=fill
    )
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4:
        raise ValueError(f"classic_augment expects images [B, H, W, C], got shape {images.shape}.")


def classic_augment(
    key: jax.Array,
    images: jax.Array,
    *,
    max_shift: int = 1,
    max_rotation_degrees: float = 10.0,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 1.0,
    fill: float = -1.0,
) -> jax.Array:
    """Each image [B, H, W, C] randomly shifted, rotated and elastically deformed.

    Per image, independently: an integer shift uniform in [-max_shift, max_shift]
    along each axis, an angle uniform in [-max_rotation_degrees,
    max_rotation_degrees], and (if elastic_alpha > 0) an elastic displacement
    field with `elastic_alpha`, `elastic_sigma` in pixels (see module doc). All
    three displacements are summed and applied in one bilinear `warp`.
    """
    _check_images(images)
    if max_shift < 0 or max_rotation_degrees < 0 or elastic_alpha < 0:
        raise ValueError(
            f"max_shift ({max_shift}), max_rotation_degrees ({max_rotation_degrees}) and "
            f"elastic_alpha ({elastic_alpha}) must be >= 0 (0 turns that transform off)."
        )
    batch, height, width, _ = images.shape
    max_angle = math.radians(max_rotation_degrees)

    def one(key: jax.Array, image: jax.Array) -> jax.Array:
        k_shift, k_angle, k_elastic = jax.random.split(key, 3)
        shift = jax.random.randint(k_shift, (2,), -max_shift, max_shift + 1).astype(jnp.float32)
        angle = jax.random.uniform(k_angle, (), minval=-max_angle, maxval=max_angle)
        q = rotation_shift_coordinates(height, width, angle=angle, shift=shift)
        if elastic_alpha > 0:
            q = q + elastic_displacement(k_elastic, height, width, alpha=elastic_alpha, sigma=elastic_sigma)
        return warp(image, q, fill=fill)

    return jax.vmap(one)(jax.random.split(key, batch), images)
