"""Tests for jaxgan.augment (DiffAugment) against a numpy port of the official code.

The numpy reference follows DiffAugment_pytorch.py line by line, in NCHW: the
translation gathers from a 1-pixel zero-padded image with clamped indices, the
cutout writes zeros at clamped window indices. It takes the same random draws
(the `*_params` functions) so both sides see identical parameters; the draws
themselves are checked against the official ranges.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import augment


def _images(b=3, h=8, w=6, c=3, seed=0):
    return jnp.asarray(np.random.RandomState(seed).uniform(-1, 1, (b, h, w, c)), jnp.float32)


# --- numpy port of the official PyTorch code (NCHW) -------------------------


def _np_color(x, brightness, saturation, contrast):
    x = x + brightness[:, None, None, None]
    m = x.mean(axis=1, keepdims=True)
    x = (x - m) * saturation[:, None, None, None] + m
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - m) * contrast[:, None, None, None] + m


def _np_translation(x, tx, ty):
    b, _, h, w = x.shape
    gb, gx, gy = np.meshgrid(np.arange(b), np.arange(h), np.arange(w), indexing="ij")
    gx = np.clip(gx + tx[:, None, None] + 1, 0, h + 1)
    gy = np.clip(gy + ty[:, None, None] + 1, 0, w + 1)
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return x_pad.transpose(0, 2, 3, 1)[gb, gx, gy].transpose(0, 3, 1, 2)


def _np_cutout(x, offset_x, offset_y, ratio=0.5):
    b, _, h, w = x.shape
    cs = int(h * ratio + 0.5), int(w * ratio + 0.5)
    gb, gx, gy = np.meshgrid(np.arange(b), np.arange(cs[0]), np.arange(cs[1]), indexing="ij")
    gx = np.clip(gx + offset_x[:, None, None] - cs[0] // 2, 0, h - 1)
    gy = np.clip(gy + offset_y[:, None, None] - cs[1] // 2, 0, w - 1)
    mask = np.ones((b, h, w))
    mask[gb, gx, gy] = 0
    return x * mask[:, None]


def _nchw(x):
    return np.asarray(x, np.float64).transpose(0, 3, 1, 2)


def _nhwc(x):
    return x.transpose(0, 2, 3, 1)


# --- values -------------------------------------------------------------------


def test_color_matches_official_code():
    x = _images()
    key = jax.random.PRNGKey(1)
    p = augment.color_params(key, 3)
    want = _nhwc(_np_color(_nchw(x), *(np.asarray(v, np.float64) for v in p)))
    np.testing.assert_allclose(augment.rand_color(key, x), want, rtol=1e-5, atol=1e-5)


def test_translation_matches_official_code_for_every_shift():
    x = _images(b=1, h=8, w=6)
    translate = jax.jit(augment.translate)  # one compile for all the shifts below
    # Every shift the ratio-1/8 draw can produce: s = int(8/8 + .5) = 1 rows, int(6/8 + .5) = 1 col;
    # test a wider range too, up to the image size - 1.
    for th in range(-7, 8):
        for tw in (-5, -1, 0, 1, 3):
            sh, sw = np.array([th]), np.array([tw])
            got = translate(x, jnp.asarray(sh), jnp.asarray(sw))
            np.testing.assert_array_equal(got, _nhwc(_np_translation(_nchw(x), sh, sw)).astype(np.float32))
    key = jax.random.PRNGKey(2)
    x = _images(b=16, h=16, w=16)
    sh, sw = augment.translation_params(key, 16, 16, 16)
    np.testing.assert_array_equal(
        augment.rand_translation(key, x),
        _nhwc(_np_translation(_nchw(x), np.asarray(sh), np.asarray(sw))).astype(np.float32),
    )


@pytest.mark.parametrize("h,w", [(8, 8), (7, 5), (6, 9)])
def test_cutout_matches_official_code(h, w):
    x = _images(b=4, h=h, w=w)
    size = augment.cutout_size(h, w)
    cut = jax.jit(augment.cutout, static_argnames=("size_h", "size_w"))
    # Every center the draw can produce, including the edges where the window is clamped.
    for ch in range(0, h + (1 - size[0] % 2)):
        for cw in (0, w // 2, w - size[1] % 2):
            c_h, c_w = np.full(4, ch), np.full(4, cw)
            got = cut(x, jnp.asarray(c_h), jnp.asarray(c_w), size_h=size[0], size_w=size[1])
            np.testing.assert_array_equal(got, _nhwc(_np_cutout(_nchw(x), c_h, c_w)).astype(np.float32))
    key = jax.random.PRNGKey(3)
    ch, cw = augment.cutout_params(key, 4, h, w)
    np.testing.assert_array_equal(
        augment.rand_cutout(key, x), _nhwc(_np_cutout(_nchw(x), np.asarray(ch), np.asarray(cw))).astype(np.float32)
    )


def test_draws_cover_the_official_ranges():
    key = jax.random.PRNGKey(4)
    n = 4000
    p = augment.color_params(key, n)
    for v, lo, hi in ((p.brightness, -0.5, 0.5), (p.saturation, 0.0, 2.0), (p.contrast, 0.5, 1.5)):
        v = np.asarray(v)
        assert v.min() >= lo and v.max() < hi and v.min() < lo + 0.01 and v.max() > hi - 0.01
    # 32x32: translation s = int(32/8 + .5) = 4 -> integers -4..4, every one drawn.
    sh, sw = augment.translation_params(key, n, 32, 32)
    assert set(np.asarray(sh).tolist()) == set(range(-4, 5)) == set(np.asarray(sw).tolist())
    # Cutout 32x32: side 16 (even) -> centers 0..32; 7x7: side int(3.5 + .5) = 4 -> 0..7; 5x5: side 3 (odd) -> 0..4.
    for size, side, top in ((32, 16, 32), (7, 4, 7), (5, 3, 4)):
        assert augment.cutout_size(size, size) == (side, side)
        ch, _ = augment.cutout_params(key, n, size, size)
        assert set(np.asarray(ch).tolist()) == set(range(0, top + 1))


def test_diff_augment_composes_the_ops_in_order():
    x = _images(b=4, h=8, w=8)
    key = jax.random.PRNGKey(5)
    got = augment.diff_augment(key, x, "color,translation,cutout")
    # Reference: numpy ports applied in order with the draws of fold_in(key, i).
    p = augment.color_params(jax.random.fold_in(key, 0), 4)
    ref = _np_color(_nchw(x), *(np.asarray(v, np.float64) for v in p))
    sh, sw = augment.translation_params(jax.random.fold_in(key, 1), 4, 8, 8)
    ref = _np_translation(ref, np.asarray(sh), np.asarray(sw))
    ch, cw = augment.cutout_params(jax.random.fold_in(key, 2), 4, 8, 8)
    ref = _np_cutout(ref, np.asarray(ch), np.asarray(cw))
    np.testing.assert_allclose(got, _nhwc(ref), rtol=1e-5, atol=1e-5)
    # Same key -> same augmentation (also under jit); another key -> another one; "" -> identity.
    jitted = jax.jit(augment.diff_augment, static_argnums=2)
    np.testing.assert_allclose(jitted(key, x, "color,translation,cutout"), got, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(augment.diff_augment(key, x, "color,translation,cutout"), got)
    assert not np.allclose(augment.diff_augment(jax.random.PRNGKey(6), x), got)
    np.testing.assert_array_equal(augment.diff_augment(key, x, ""), x)


# --- gradients -----------------------------------------------------------------


def test_translation_gradient_is_the_analytic_mask():
    x = _images(b=2, h=6, w=5, c=2)
    sh, sw = jnp.array([2, -1]), jnp.array([-3, 1])
    grad = np.asarray(jax.grad(lambda v: jnp.sum(augment.translate(v, sh, sw)))(x))
    # Input pixel (r, c) lands at output (r - sh, c - sw): counted once iff that is inside the image.
    r, c = np.arange(6)[None, :, None], np.arange(5)[None, None, :]
    nsh, nsw = np.asarray(sh)[:, None, None], np.asarray(sw)[:, None, None]
    mask = ((r - nsh >= 0) & (r - nsh < 6) & (c - nsw >= 0) & (c - nsw < 5)).astype(np.float32)
    np.testing.assert_array_equal(grad, np.broadcast_to(mask[..., None], x.shape))


def test_cutout_gradient_is_the_analytic_mask():
    x = _images(b=2, h=6, w=6, c=1)
    ch, cw = jnp.array([0, 3]), jnp.array([5, 2])
    grad = np.asarray(jax.grad(lambda v: jnp.sum(augment.cutout(v, ch, cw, size_h=3, size_w=3)))(x))
    mask = np.ones((2, 6, 6))
    mask[0, 0:2, 4:6] = 0  # rows -1..1 and cols 4..6, clipped to the image
    mask[1, 2:5, 1:4] = 0
    np.testing.assert_array_equal(grad[..., 0], mask)


def test_color_gradient_matches_finite_differences():
    x = _images(b=2, h=3, w=3, c=3, seed=7)
    key = jax.random.PRNGKey(8)
    p = augment.color_params(key, 2)
    weights = np.random.RandomState(9).normal(size=x.shape)
    grad = np.asarray(jax.grad(lambda v: jnp.sum(jnp.asarray(weights, jnp.float32) * augment.rand_color(key, v)))(x))
    pn = [np.asarray(v, np.float64) for v in p]
    f = lambda v: np.sum(weights * _nhwc(_np_color(v.transpose(0, 3, 1, 2), *pn)))
    x64, h = np.asarray(x, np.float64), 1e-6
    fd = np.zeros_like(x64)
    for idx in np.ndindex(x64.shape):
        e = np.zeros_like(x64)
        e[idx] = h
        fd[idx] = (f(x64 + e) - f(x64 - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_the_full_policy():
    x = _images(b=2, h=8, w=8)
    grad = jax.grad(lambda v: jnp.sum(augment.diff_augment(jax.random.PRNGKey(0), v) ** 2))(x)
    assert np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0)


# --- bad input -------------------------------------------------------------------


def test_unknown_policy_lists_valid_ops():
    with pytest.raises(
        ValueError, match=r"Unknown DiffAugment op\(s\) \['flip'\].*valid ops: \('color', 'translation', 'cutout'\)"
    ):
        augment.diff_augment(jax.random.PRNGKey(0), _images(), "color,flip")


def test_images_must_be_nhwc():
    with pytest.raises(ValueError, match=r"images must be a batch \[B, H, W, C\].*images\[\.\.\., None\]"):
        augment.diff_augment(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8)))
