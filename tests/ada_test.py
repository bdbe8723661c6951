"""Tests for jaxgan.ada (the ADA augmentation pipeline) against independent references.

Blits against np.flip / np.rot90 / np.pad(mode='reflect'); color matrices against
hand values and scipy's Rotation (Rodrigues); the filtered geometric resampling
against the analytic image it samples and scipy.ndimage.map_coordinates; the
gating against binomial bounds; jit / vmap / grad against the batch call and
hand-derived adjoints.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from scipy.spatial.transform import Rotation

from jaxgan import ada


# Jitted once per (shapes, pipeline): far quicker to start than op-by-op dispatch of the pipeline. p is traced.
_augment = jax.jit(ada.augment, static_argnums=3)
_apply = jax.jit(ada.apply_params)
_apply_color = jax.jit(ada.apply_color)
_draw = jax.jit(ada.draw_params, static_argnums=(1, 3))
_resample = jax.jit(ada.resample)
# augment(key, ...) together with the draws it made from that key.
_augment_and_draws = jax.jit(
    lambda key, x, p, pipe: (ada.augment(key, x, p, pipe), ada.draw_params(key, x.shape[0], p, pipe)),
    static_argnums=3,
)


def _images(b=2, h=16, w=16, c=3, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (b, h, w, c)).astype(np.float32)


def _reflect_translate(x, tx, ty):
    """out[y, x] = in[y - ty, x - tx] (content moves by (tx, ty)), reflected (no edge repeat) outside."""
    m = max(abs(tx), abs(ty))
    padded = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, m - ty : m - ty + h, m - tx : m - tx + w]


# ----------------------------------------------------------------------------
# Presets and validation.


def test_presets_and_errors():
    bgc = ada.pipeline("bgc")
    assert all(getattr(bgc, op) == 1.0 for op in ada.OPS)
    assert (bgc.xint_max, bgc.scale_std, bgc.rotate_max, bgc.aniso_std, bgc.xfrac_std) == (0.125, 0.2, 1.0, 0.2, 0.125)
    assert (bgc.brightness_std, bgc.contrast_std, bgc.hue_max, bgc.saturation_std) == (0.2, 0.5, 1.0, 1.0)
    on = lambda name: {op for op in ada.OPS if ada.pipeline(name).enabled(op)}
    assert on("b") == on("blit") == set(ada.BLIT_OPS)
    assert on("bg") == set(ada.BLIT_OPS + ada.GENERAL_OPS)
    assert on("c") == on("color") == set(ada.COLOR_OPS)
    assert on("g") == set(ada.GENERAL_OPS)
    with pytest.raises(ValueError, match="Unknown ADA pipeline 'bgcx'"):
        ada.pipeline("bgcx")
    with pytest.raises(ValueError, match="xflip must be a finite number >= 0"):
        ada.AdaPipeline(xflip=-1.0)
    key, x = jax.random.key(0), _images(1)
    with pytest.raises(ValueError, match="C = 2"):
        ada.augment(key, x[..., :2], 0.5, "bgc")
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        ada.augment(key, x[0], 0.5, "bgc")
    with pytest.raises(ValueError, match="p must be a finite number >= 0"):
        ada.augment(key, x, -0.1, "bgc")


def test_sym6_is_orthogonal():
    """The resampling's premise: the filter's autocorrelation is a unit impulse at even lags."""
    h = np.asarray(ada.SYM6)
    np.testing.assert_allclose(h.sum(), math.sqrt(2.0), atol=1e-12)
    auto = np.correlate(h, h, "full")[len(h) - 1 :: 2]  # lags 0, 2, 4, ...
    np.testing.assert_allclose(auto, np.eye(1, len(auto))[0], atol=1e-12)


# ----------------------------------------------------------------------------
# Pixel blitting: exact.


def test_xflip_is_np_flip_when_forced():
    x = _images(12)
    pipe = ada.AdaPipeline(xflip=1.0)  # p = 1: each example draws i in {0, 1}
    got, params = _augment_and_draws(jax.random.key(1), jnp.asarray(x), 1.0, pipe)
    got, flipped = np.asarray(got), np.asarray(params.xflip)
    assert set(flipped) == {0, 1}
    for i in range(12):
        np.testing.assert_array_equal(got[i], np.flip(x[i], axis=1) if flipped[i] else x[i])


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90_is_np_rot90(k):
    x = _images(1)
    params = ada.identity_params(1, "bg")._replace(rotate90=jnp.array([k]))  # general ops present, at identity
    got = np.asarray(_apply(jnp.asarray(x), params))
    np.testing.assert_array_equal(got[0], np.rot90(x[0], k, axes=(0, 1)))


def test_rotate90_draws_all_four_when_forced():
    x = _images(12)
    got, params = _augment_and_draws(jax.random.key(2), jnp.asarray(x), 1.0, ada.AdaPipeline(rotate90=1.0))
    got, ks = np.asarray(got), np.asarray(params.rotate90)
    assert set(ks) == {0, 1, 2, 3}
    for i in range(12):
        np.testing.assert_array_equal(got[i], np.rot90(x[i], ks[i], axes=(0, 1)))


def test_integer_translation_reflects_like_the_reference_padding():
    x = _images(1)
    params = ada.identity_params(1, "bg")._replace(xint=jnp.array([[2 / 16, -3 / 16]]))  # (2, -3) pixels
    got = np.asarray(_apply(jnp.asarray(x), params))
    np.testing.assert_array_equal(got, _reflect_translate(x, 2, -3))
    # Away from the borders it is np.roll.
    np.testing.assert_array_equal(got[:, :-3, 2:], np.roll(x, (-3, 2), axis=(1, 2))[:, :-3, 2:])
    # Forced through augment: each example moves by round(t * size) pixels.
    xs = _images(12)
    got, params = _augment_and_draws(jax.random.key(3), jnp.asarray(xs), 1.0, ada.AdaPipeline(xint=1.0))
    got, t = np.asarray(got), np.asarray(params.xint)
    assert np.all(np.abs(t) <= 0.125)
    shifts = np.round(t * 16).astype(int)
    assert np.any(shifts != 0)
    for i in range(12):
        np.testing.assert_array_equal(got[i : i + 1], _reflect_translate(xs[i : i + 1], *shifts[i]))


def test_blits_compose_in_the_reference_order():
    """G = flip @ rot90 @ translate (output -> input): the image is flipped, then rotated, then translated."""
    x = _images(1, seed=4)
    params = ada.identity_params(1, "bg")._replace(
        xflip=jnp.array([1]), rotate90=jnp.array([1]), xint=jnp.array([[1 / 16, 2 / 16]])
    )
    got = np.asarray(_apply(jnp.asarray(x), params))
    want = _reflect_translate(np.rot90(np.flip(x, axis=2), 1, axes=(1, 2)), 1, 2)
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------
# The filtered resampling.


def test_resampling_with_a_blit_matrix_is_near_exact():
    """The reference's up/down filter pair cancels: identity and integer translations resample to ~float eps.

    (A flip through it does not cancel, which is why pure blits take the exact path.)
    """
    x = _images(1)
    eye = jnp.eye(3)[None]
    np.testing.assert_allclose(np.asarray(_resample(jnp.asarray(x), eye)), x, atol=2e-5)
    shift = jnp.array([[[1.0, 0, -2], [0, 1, 3], [0, 0, 1]]])  # in(p + (-2, 3)): content moves by (2, -3)
    np.testing.assert_allclose(np.asarray(_resample(jnp.asarray(x), shift)), _reflect_translate(x, 2, -3), atol=2e-5)


_H = _W = 32
_NU = np.array([[0.07, 0.03], [-0.04, 0.06], [0.02, -0.08]])  # per channel (cycles / pixel in x, y)


def _smooth(x, y):
    return np.stack([np.cos(2 * np.pi * (x * a + y * b) + c) for c, (a, b) in enumerate(_NU)], -1)


# The geometric ops as (params, the output -> input map in pixel coordinates relative to the center):
_T = 0.5
_GEOMETRIC = {
    "scale": (dict(scale=[1.25]), lambda x, y: (x / 1.25, y / 1.25)),
    "rotate": (
        dict(rotate_pre=[_T]),
        lambda x, y: (math.cos(_T) * x - math.sin(_T) * y, math.sin(_T) * x + math.cos(_T) * y),
    ),
    "aniso": (dict(aniso=[1.2]), lambda x, y: (x / 1.2, y * 1.2)),
    "xfrac": (dict(xfrac=[[0.1, -0.05]]), lambda x, y: (x - 3.2, y + 1.6)),
    "combined": (
        dict(xint=[[-2 / 32, 1 / 32]], scale=[1.1], rotate_post=[-0.3], xfrac=[[0.05, 0.05]]),
        # G = T(2, -1) @ scale^-1 @ R(-0.3) @ T(-1.6, -1.6). (Not a flip: a flip through the reference's
        # resampling is off by ~0.1 pixel, the sym6 filter's asymmetry; see jaxgan/ada.py.)
        lambda x, y: (
            (math.cos(-0.3) * (x - 1.6) - math.sin(-0.3) * (y - 1.6)) / 1.1 + 2,
            (math.sin(-0.3) * (x - 1.6) + math.cos(-0.3) * (y - 1.6)) / 1.1 - 1,
        ),
    ),
}


@pytest.mark.parametrize("name", list(_GEOMETRIC))
def test_geometric_ops_sample_the_image_where_the_matrix_says(name):
    """Against the analytic image at the mapped points and scipy's bilinear map_coordinates (mode='mirror').

    Tolerance: the resampling interpolates bilinearly on the 2x-upsampled grid
    (spacing h = 1/2 pixel), error <= h^2/8 max|f''| = (2 pi |nu|)^2 / 32 = 0.0083 for
    |nu| <= 0.082 cycles/pixel, plus the sym6 filters' deviation from ideal
    interpolation at that frequency (measured ~0.01): 0.025 against the analytic
    image. scipy's order=1 interpolates on the original grid (h = 1): its own
    error bound (2 pi |nu|)^2 / 8 = 0.033 is added for it.
    """
    kwargs, mapping = _GEOMETRIC[name]
    yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float64)
    image = _smooth(xx, yy)[None].astype(np.float32)
    params = ada.identity_params(1, "bg")._replace(**{k: jnp.asarray(v, jnp.float32) for k, v in kwargs.items()})
    got = np.asarray(_apply(jnp.asarray(image), params))[0]
    cx, cy = (_W - 1) / 2, (_H - 1) / 2
    x_in, y_in = mapping(xx - cx, yy - cy)
    x_in, y_in = x_in + cx, y_in + cy
    inside = (x_in >= 2) & (x_in <= _W - 3) & (y_in >= 2) & (y_in <= _H - 3)  # away from the reflection seams
    assert inside.sum() > 400
    np.testing.assert_allclose(got[inside], _smooth(x_in, y_in)[inside], atol=0.025)
    bilinear = np.stack(
        [scipy.ndimage.map_coordinates(image[0, ..., c], [y_in, x_in], order=1, mode="mirror") for c in range(3)], -1
    )
    np.testing.assert_allclose(got[inside], bilinear[inside], atol=0.025 + 0.033)


def test_zoom_out_reflects_outside_the_image():
    """A scale < 1 samples outside the image: there the input is mirrored about the edge pixels (reflect)."""
    s = 0.7
    yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float64)
    image = _smooth(xx, yy)[None].astype(np.float32)
    params = ada.identity_params(1, "bg")._replace(scale=jnp.array([s]))
    got = np.asarray(_apply(jnp.asarray(image), params))[0]
    cx, cy = (_W - 1) / 2, (_H - 1) / 2
    x_in, y_in = (xx - cx) / s + cx, (yy - cy) / s + cy
    mirror = lambda v, n: np.where(v < 0, -v, np.where(v > n - 1, 2 * (n - 1) - v, v))
    seam_distance = lambda v, n: np.minimum(np.abs(v), np.abs(v - (n - 1)))
    away = (seam_distance(x_in, _W) >= 3) & (seam_distance(y_in, _H) >= 3)  # not at the mirror's kink
    outside = away & ((x_in < 0) | (x_in > _W - 1) | (y_in < 0) | (y_in > _H - 1))
    assert outside.sum() > 100
    np.testing.assert_allclose(got[away], _smooth(mirror(x_in, _W), mirror(y_in, _H))[away], atol=0.025)


# ----------------------------------------------------------------------------
# Color.

_RGB = np.array([0.2, -0.4, 0.8], np.float32)


def _color(**fields):
    params = ada.identity_params(1, "c")._replace(**{k: jnp.asarray([v]) for k, v in fields.items()})
    return np.asarray(_apply_color(jnp.asarray(_RGB).reshape(1, 1, 1, 3), params)).reshape(3)


def test_color_matrices_hand_values():
    np.testing.assert_allclose(_color(brightness=0.3), _RGB + 0.3, atol=1e-6)
    np.testing.assert_allclose(_color(contrast=1.7), _RGB * 1.7, atol=1e-6)  # about 0, not about the mean
    luma = _RGB.mean()
    # Luma flip: the component along [1, 1, 1]/sqrt(3) (= the channel mean on each channel) changes sign.
    np.testing.assert_allclose(_color(lumaflip=1), _RGB - 2 * luma, atol=1e-6)
    np.testing.assert_allclose(_color(lumaflip=0), _RGB, atol=0)
    # Saturation scales the chroma (the part orthogonal to the luma axis).
    np.testing.assert_allclose(_color(saturation=0.5), luma + 0.5 * (_RGB - luma), atol=1e-6)
    # Hue: a third of a turn about [1, 1, 1] (right hand) maps r -> g -> b.
    np.testing.assert_allclose(_color(hue=2 * np.pi / 3), _RGB[[2, 0, 1]], atol=1e-6)
    for theta in (0.4, -2.0):  # Rodrigues via scipy's rotation vector
        rot = Rotation.from_rotvec(theta * np.ones(3) / np.sqrt(3)).as_matrix()
        np.testing.assert_allclose(_color(hue=theta), rot @ _RGB, atol=1e-6)
    # The 4x4 matrix itself: homogeneous brightness column, last row [0, 0, 0, 1].
    m = np.asarray(jax.jit(ada.color_matrix)(ada.identity_params(1, "c")._replace(brightness=jnp.array([0.3]))))[0]
    want = [[1, 0, 0, 0.3], [0, 1, 0, 0.3], [0, 0, 1, 0.3], [0, 0, 0, 1]]
    np.testing.assert_allclose(m, want, atol=1e-7)


def test_color_ops_compose_in_the_reference_order():
    b, c, theta, s = 0.1, 1.3, 0.9, 1.6
    got = _color(brightness=b, contrast=c, lumaflip=1, hue=theta, saturation=s)
    x = (_RGB + b) * c  # brightness, then contrast
    v = np.ones(3) / np.sqrt(3)
    x = x - 2 * v * (v @ x)  # luma flip (Householder)
    x = Rotation.from_rotvec(theta * v).as_matrix() @ x  # hue
    x = v * (v @ x) + s * (x - v * (v @ x))  # saturation
    np.testing.assert_allclose(got, x, atol=1e-5)


def test_grayscale_averages_the_color_rows():
    gray = np.array([[0.25], [-0.5]], np.float32).reshape(2, 1, 1, 1)
    params = ada.identity_params(2, "c")._replace(
        brightness=jnp.array([0.1, 0.1]),
        contrast=jnp.array([2.0, 2.0]),
        lumaflip=jnp.array([0, 1]),
        hue=jnp.array([1.0, 1.0]),  # skipped for C = 1, as the reference
        saturation=jnp.array([3.0, 3.0]),  # skipped
    )
    got = np.asarray(_apply_color(jnp.asarray(gray), params)).reshape(2)
    # Rows of the brightness + contrast matrix each sum to c with offset b c; the luma flip's rows sum to -1.
    np.testing.assert_allclose(got, [(0.25 + 0.1) * 2.0, -((-0.5 + 0.1) * 2.0)], atol=1e-6)


# ----------------------------------------------------------------------------
# Gating by p.


def test_p_zero_is_the_identity_exactly():
    x = jnp.asarray(_images(4))
    keys = jax.random.split(jax.random.key(5), 4)  # the shapes of the jit / vmap test: one compilation
    np.testing.assert_array_equal(np.asarray(_augment(keys, x, 0.0, "bgc")), np.asarray(x))


@pytest.mark.parametrize("op", ["brightness", "scale"])
def test_p_one_changes_every_example(op):
    x = _images(400, 4, 4)  # brightness: the shapes of the next test, one compilation
    got = np.asarray(_augment(jax.random.key(6), jnp.asarray(x), 1.0, ada.AdaPipeline(**{op: 1.0})))
    changed = np.any(got != x, axis=(1, 2, 3))
    assert changed.all()


def test_p_half_augments_about_half():
    n, p = 400, 0.5
    x = _images(n, 4, 4)
    got = np.asarray(_augment(jax.random.key(7), jnp.asarray(x), p, ada.AdaPipeline(brightness=1.0)))
    changed = np.any(got != x, axis=(1, 2, 3))
    np.testing.assert_array_equal(got[~changed], x[~changed])
    assert abs(changed.mean() - p) <= 4.5 * math.sqrt(p * (1 - p) / n), changed.mean()


def test_each_op_fires_with_probability_p_times_its_multiplier():
    n, p = 4000, 0.3
    pipe = ada.AdaPipeline(**{**{op: 1.0 for op in ada.OPS}, "contrast": 0.5})
    prm = jax.tree.map(np.asarray, _draw(jax.random.key(8), n, p, pipe))
    fired = {
        # Ops whose drawn value can be the identity even when applied fire with p x P(not identity).
        "xflip": (prm.xflip == 1, p / 2),
        "rotate90": (prm.rotate90 != 0, p * 3 / 4),
        "xint": (np.any(prm.xint != 0, axis=1), p),
        "scale": (prm.scale != 1, p),
        "rotate": ((prm.rotate_pre != 0) | (prm.rotate_post != 0), p),  # pre or post: p in all
        "aniso": (prm.aniso != 1, p),
        "xfrac": (np.any(prm.xfrac != 0, axis=1), p),
        "brightness": (prm.brightness != 0, p),
        "contrast": (prm.contrast != 1, p * 0.5),
        "lumaflip": (prm.lumaflip == 1, p / 2),
        "hue": (prm.hue != 0, p),
        "saturation": (prm.saturation != 1, p),
    }
    for op, (hits, q) in fired.items():
        assert abs(hits.mean() - q) <= 4.5 * math.sqrt(q * (1 - q) / n), (op, hits.mean(), q)
    # Ranges: the reference's.
    assert np.abs(prm.xint).max() <= 0.125 and np.abs(prm.hue).max() <= np.pi and np.abs(prm.rotate_pre).max() <= np.pi
    applied = prm.scale != 1
    np.testing.assert_allclose(np.log2(prm.scale[applied]).std(), 0.2, rtol=0.1)
    np.testing.assert_allclose(prm.brightness[prm.brightness != 0].std(), 0.2, rtol=0.1)


# ----------------------------------------------------------------------------
# jit, vmap, grad.


def test_jit_vmap_per_example_matches_the_batch_call():
    """The train step's use: p traced, one key per example, vmapped over the batch."""
    x = jnp.asarray(_images(4))
    keys = jax.random.split(jax.random.key(9), 4)
    per_example = jax.jit(lambda k, x, p: jax.vmap(lambda kk, xx: ada.augment(kk, xx[None], p, "bgc")[0])(k, x))
    for p in (0.0, 0.6):
        got, want = np.asarray(per_example(keys, x, p)), np.asarray(_augment(keys, x, p, "bgc"))
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(per_example(keys, x, 0.0)), np.asarray(x))
    assert np.all(np.any(np.asarray(per_example(keys, x, 1.0)) != np.asarray(x), axis=(1, 2, 3)))


def test_gradients_flow_to_the_images():
    x = jnp.asarray(_images(4))
    w = jnp.asarray(_images(4, seed=1))
    keys = jax.random.split(jax.random.key(10), 4)
    g = jax.jit(jax.grad(lambda x: jnp.sum(ada.augment(keys, x, 1.0, "bgc") * w)))(x)
    assert np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0, axis=(1, 2, 3)).all()
    # Hand-derived adjoints: a flip's is the flip; brightness's is 1; contrast c's is c.
    params = ada.identity_params(4, "bgc")._replace(
        xflip=jnp.ones((4,), jnp.int32), brightness=jnp.full((4,), 0.2), contrast=jnp.full((4,), 1.5)
    )
    g = jax.jit(jax.grad(lambda x: jnp.sum(ada.apply_params(x, params) * w)))(x)
    np.testing.assert_allclose(np.asarray(g), 1.5 * np.flip(np.asarray(w), axis=2), atol=1e-6)
