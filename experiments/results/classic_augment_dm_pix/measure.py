"""jaxgan.classify.augment (hand-written, one bilinear warp) against dm-pix's rotate / elastic_deformation.

    pip install dm-pix==0.4.5
    python experiments/results/classic_augment_dm_pix/measure.py

Prints the tables of this folder's README.md: pixel differences on the 1797 scikit-learn digits (8x8, [-1, 1],
background -1) and CPU times of one batch.
"""

from __future__ import annotations

import math
import time

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.classify import augment as hand
from jaxgan.data.digits import digits_arrays

FILL = -1.0
ALPHA, SIGMA = 2.0, 1.0  # the experiment's elastic deformation (experiments/configs/augment_classifier.py)


def pad(im):
    return jnp.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=FILL)


def crop(im):
    return im[1:-1, 1:-1]


def pix_field(key, h, w):
    """dm-pix's elastic displacement field [2, h, w] for `key` (its draw and its Gaussian kernel, rebuilt)."""
    kernel_size = ((SIGMA - 0.8) / 0.3 + 1) / 0.5 + 1
    return jnp.stack(
        [
            pix.gaussian_blur(jax.random.uniform(k, (h, w, 1)) * 2 - 1, SIGMA, kernel_size)[..., 0] * ALPHA
            for k in jax.random.split(key)
        ]
    )


def row(name, a, b, width=78):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    print(f"| {name:{width}} | {d.max():.4f} | {d.mean():.4f} | {100 * np.mean(d > 1e-4):.1f}% |")


def differences(x, angles, keys):
    h, w = x.shape[1:3]
    ident = hand.rotation_shift_coordinates(h, w, angle=0.0, shift=(0.0, 0.0))
    hand_rot = jax.vmap(
        lambda im, a: hand.warp(im, hand.rotation_shift_coordinates(h, w, angle=a, shift=(0.0, 0.0)), fill=FILL)
    )(x, angles)
    # dm-pix turns counter-clockwise for a positive angle, jaxgan clockwise: the same angle is -a there.
    pix_rot = jax.vmap(lambda im, a: pix.rotate(im, -a, mode="constant", cval=FILL))(x, angles)
    pix_rot_pad = jax.vmap(lambda im, a: crop(pix.rotate(pad(im), -a, mode="constant", cval=FILL)))(x, angles)
    print("| comparison (same angles / same displacement field) | max abs diff | mean abs diff | pixels differing |")
    print("|---|---|---|---|")
    row("rotation: hand vs pix.rotate(mode='constant')", hand_rot, pix_rot)
    inner = (slice(None), slice(1, -1), slice(1, -1))
    row("  the same, inner 6x6 pixels only", hand_rot[inner], pix_rot[inner])
    row("rotation: hand vs pix.rotate on the image padded by 1 px of fill, cropped", hand_rot, pix_rot_pad)

    hand_el = jax.vmap(lambda k, im: hand.warp(im, ident + pix_field(k, h, w), fill=FILL))(keys, x)
    pix_el = jax.vmap(lambda k, im: pix.elastic_deformation(k, im, ALPHA, SIGMA, mode="constant", cval=FILL))(keys, x)
    hand_el_pad = jax.vmap(lambda k, im: hand.warp(im, ident + pix_field(k, h + 2, w + 2)[:, 1:-1, 1:-1], fill=FILL))(
        keys, x
    )
    pix_el_pad = jax.vmap(
        lambda k, im: crop(pix.elastic_deformation(k, pad(im), ALPHA, SIGMA, mode="constant", cval=FILL))
    )(keys, x)
    row("elastic (alpha 2, sigma 1): hand warp vs pix.elastic_deformation", hand_el, pix_el)
    row("elastic: the same, padded by 1 px of fill", hand_el_pad, pix_el_pad)

    def one_warp(k, im, a):  # rotation then displacement, composed exactly: x(c + R(p + d(p) - c))
        d = pix_field(k, h + 2, w + 2)[:, 1:-1, 1:-1]
        c, s = jnp.cos(a), jnp.sin(a)
        rd = jnp.stack([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        return hand.warp(im, hand.rotation_shift_coordinates(h, w, angle=a, shift=(0.0, 0.0)) + rd, fill=FILL)

    def two_passes(k, im, a):
        r = pix.rotate(pad(im), -a, mode="constant", cval=FILL)
        return crop(pix.elastic_deformation(k, r, ALPHA, SIGMA, mode="constant", cval=FILL))

    a1, a2 = jax.vmap(one_warp)(keys, x, angles), jax.vmap(two_passes)(keys, x, angles)
    row("rotation + elastic: one warp vs padded pix.rotate then pix.elastic_deformation", a1, a2)
    print()
    print(f"pixel std: digits {float(x.std()):.3f}, one warp {float(a1.std()):.3f}, two passes {float(a2.std()):.3f}")
    hand_d = jax.vmap(lambda k: hand.elastic_displacement(k, h, w, alpha=ALPHA, sigma=SIGMA))(keys)
    pix_d = jax.vmap(lambda k: pix_field(k, h, w))(keys)
    print(f"displacement std (px): hand {float(jnp.std(hand_d)):.3f}, dm-pix {float(jnp.std(pix_d)):.3f}")


def pix_classic_augment(
    key, images, *, max_shift=1, max_rotation_degrees=5.0, elastic_alpha=ALPHA, elastic_sigma=SIGMA, fill=FILL
):
    """classic_augment through dm-pix, padded so that the border blends with the fill as the hand version does."""
    max_angle = math.radians(max_rotation_degrees)

    def one(key, image):
        k_shift, k_angle, k_elastic = jax.random.split(key, 3)
        shift = jax.random.randint(k_shift, (2,), -max_shift, max_shift + 1).astype(jnp.float32)
        angle = jax.random.uniform(k_angle, (), minval=-max_angle, maxval=max_angle)
        im = pix.rotate(pad(image), -angle, mode="constant", cval=fill)
        im = pix.affine_transform(
            im, jnp.ones(3), offset=jnp.concatenate([-shift, jnp.zeros(1)]), mode="constant", cval=fill
        )  # an integer shift: exact
        im = pix.elastic_deformation(k_elastic, im, elastic_alpha, elastic_sigma, mode="constant", cval=fill)
        return crop(im)

    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)


def ms_per_call(fn, xb, reps=200):
    f = jax.jit(fn)
    f(jax.random.key(0), xb).block_until_ready()
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        for i in range(reps):
            out = f(jax.random.key(i), xb)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t) / reps * 1e3)
    return best


def timings():
    kw = dict(max_shift=1, max_rotation_degrees=5.0, elastic_alpha=ALPHA, elastic_sigma=SIGMA, fill=FILL)
    print("| batch | hand classic_augment (ms) | dm-pix, padded (ms) | ratio |")
    print("|---|---|---|---|")
    for shape in [(32, 8, 8, 1), (32, 28, 28, 1)]:
        xb = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))
        t_hand = ms_per_call(lambda k, im: hand.classic_augment(k, im, **kw), xb)
        t_pix = ms_per_call(lambda k, im: pix_classic_augment(k, im, **kw), xb)
        print(f"| {shape} | {t_hand:.2f} | {t_pix:.2f} | {t_pix / t_hand:.1f}x |")


def main():
    images, _ = digits_arrays()
    x = jnp.asarray(images.astype(np.float32) / 127.5 - 1.0)
    n, h, w, _ = x.shape
    border = np.ones((h, w), bool)
    border[1:-1, 1:-1] = False
    print(f"digits with ink on the 1-px border: {100 * np.mean((np.asarray(x)[..., 0][:, border] > -1).any(1)):.0f}%")
    angles = jnp.asarray(np.random.default_rng(0).uniform(-math.radians(5), math.radians(5), n), jnp.float32)
    keys = jax.random.split(jax.random.key(1), n)
    differences(x, angles, keys)
    print()
    timings()


if __name__ == "__main__":
    main()
