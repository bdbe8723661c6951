"""SSIM / MS-SSIM vs an independent scipy.ndimage reference and closed forms.

The reference works on the 0..255 scale (L = 255) with a 2-D Gaussian window
correlated by scipy.ndimage and cropped to the valid region, and Wang et al.'s
SSIM formula written out per pixel; MS-SSIM multiplies its per-scale terms in a
plain loop. A second implementation, TensorFlow's tf.image.ssim /
ssim_multiscale (float32; given our renormalised weights as power_factors), is
compared too, and scikit-image's structural_similarity when installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from jaxgan.metrics import diversity

W = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _ref_window():
    r = np.arange(11) - 5.0
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _ref_ssim_cs(x, y, L=255.0):
    """Mean SSIM and mean cs of two single-channel float images (valid region)."""
    win = _ref_window()

    def f(img):
        return ndimage.correlate(img, win, mode="constant")[5:-5, 5:-5]

    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    cs_map = (2 * cxy + c2) / (vx + vy + c2)
    return ssim_map.mean(), cs_map.mean()


def _ref_down(x):
    if x.shape[0] % 2 or x.shape[1] % 2:
        x = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge")
    return x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2).mean(axis=(1, 3))


def _ref_ms_ssim(a, b, scales):
    """Channel-averaged MS-SSIM of two uint8 [H, W, C] images with `scales` scales."""
    w = W[:scales] / W[:scales].sum()
    per_channel = []
    for c in range(a.shape[-1]):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        value = 1.0
        for j in range(scales):
            s, cs = _ref_ssim_cs(x, y)
            value *= max(s if j == scales - 1 else cs, 0.0) ** w[j]
            x, y = _ref_down(x), _ref_down(y)
        per_channel.append(value)
    return float(np.mean(per_channel))


def _smooth_pair(rng, shape):
    """Two correlated, smooth uint8 images (realistic SSIM values, not ~0 or ~1)."""
    base = ndimage.gaussian_filter(rng.uniform(0, 255, shape), sigma=(2, 2, 0))
    other = base + ndimage.gaussian_filter(rng.normal(0, 40, shape), sigma=(1, 1, 0))
    norm = lambda z: np.clip((z - z.min()) / (z.max() - z.min()) * 255, 0, 255).round().astype(np.uint8)
    return norm(base), norm(other)


def test_ssim_matches_reference():
    rng = np.random.default_rng(0)
    a, b = _smooth_pair(rng, (24, 29, 3))
    want = np.mean([_ref_ssim_cs(a[..., c].astype(float), b[..., c].astype(float))[0] for c in range(3)])
    got = diversity.ssim(a, b)
    assert got == pytest.approx(want, abs=1e-10)
    assert 0.1 < want < 0.95  # a non-trivial value


def test_ssim_matches_skimage_if_installed():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a, b = _smooth_pair(rng, (32, 32, 1))
    want = metrics.structural_similarity(
        a[..., 0], b[..., 0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert diversity.ssim(a, b) == pytest.approx(want, abs=1e-6)


def test_ssim_and_ms_ssim_match_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(8)
    for shape in [(32, 32, 3), (45, 47, 2), (176, 176, 1)]:
        a, b = _smooth_pair(rng, shape)
        m = diversity.num_scales(shape[0], shape[1])
        w = W[:m] / W[:m].sum()
        ta, tb = tf.constant(a[None], tf.float32), tf.constant(b[None], tf.float32)
        want_ms = float(tf.image.ssim_multiscale(ta, tb, max_val=255.0, power_factors=tuple(w))[0])
        want_s = float(tf.image.ssim(ta, tb, max_val=255.0)[0])
        assert diversity.ms_ssim(a, b) == pytest.approx(want_ms, abs=1e-5)
        assert diversity.ssim(a, b) == pytest.approx(want_s, abs=1e-5)


@pytest.mark.parametrize("shape,scales", [((32, 32, 3), 2), ((64, 64, 1), 3), ((45, 47, 2), 3)])
def test_ms_ssim_matches_reference(shape, scales):
    rng = np.random.default_rng(2)
    a, b = _smooth_pair(rng, shape)
    assert diversity.num_scales(shape[0], shape[1]) == scales
    got = diversity.ms_ssim(a, b)
    assert got == pytest.approx(_ref_ms_ssim(a, b, scales), abs=1e-10)
    # Float inputs in [-1, 1] give the same number as uint8 (SSIM is range-normalised).
    af, bf = a / 127.5 - 1.0, b / 127.5 - 1.0
    assert diversity.ms_ssim(af, bf) == pytest.approx(got, abs=1e-10)


def test_ms_ssim_batched_equals_per_pair():
    rng = np.random.default_rng(3)
    pairs = [_smooth_pair(rng, (32, 32, 3)) for _ in range(3)]
    batch = diversity.ms_ssim(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    np.testing.assert_allclose(batch, [_ref_ms_ssim(a, b, 2) for a, b in pairs], atol=1e-10)


def test_ms_ssim_closed_forms():
    a = np.full((32, 32, 1), 0.2)  # float, in [-1, 1] -> 0.6 on [0, 1]
    b = np.full((32, 32, 1), -0.5)  # -> 0.25
    x, y, c1 = 0.6, 0.25, 0.01**2
    lum = (2 * x * y + c1) / (x * x + y * y + c1)  # constant images: cs = 1 at every scale
    assert diversity.ssim(a, b) == pytest.approx(lum, rel=1e-12)
    w_last = W[1] / W[:2].sum()  # 32 px: 2 scales, renormalised weights
    assert diversity.ms_ssim(a, b) == pytest.approx(lum**w_last, rel=1e-12)
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert diversity.ms_ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_num_scales():
    # The side after j halvings (odd sides padded first) is ceil(s / 2^j); it must stay >= 11.
    assert [diversity.num_scales(s, s) for s in (11, 20, 21, 32, 43, 64, 128, 160, 175, 176, 512)] == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        5,
    ]
    assert diversity.num_scales(64, 32) == 2  # the short side decides
    assert diversity.num_scales(512, 512, max_scales=3) == 3


def test_msssim_diversity_replays_documented_pairs():
    rng = np.random.default_rng(5)
    images = np.stack([_smooth_pair(rng, (32, 32, 3))[0] for _ in range(6)])
    got = diversity.msssim_diversity(images, num_pairs=9, seed=7)
    replay = np.random.default_rng(7)
    i = replay.integers(0, 6, size=9)
    j = (i + replay.integers(1, 6, size=9)) % 6
    assert np.all(i != j)
    want = np.mean([_ref_ms_ssim(images[p], images[q], 2) for p, q in zip(i, j)])
    assert got == pytest.approx(want, abs=1e-10)


def test_msssim_diversity_orders_collapsed_above_diverse():
    rng = np.random.default_rng(6)
    base, _ = _smooth_pair(rng, (32, 32, 3))
    collapsed = np.stack([base] * 5)
    diverse = np.stack([_smooth_pair(rng, (32, 32, 3))[0] for _ in range(5)])
    report = diversity.msssim_diversity_vs_real(collapsed, diverse, num_pairs=20, seed=0)
    assert report["fake"] == pytest.approx(1.0, abs=1e-12)  # identical samples: no diversity
    assert report["real"] < 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="smaller than the 11x11"):
        diversity.ms_ssim(np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match=r"not in \[-1, 1\]"):
        diversity.ms_ssim(np.full((32, 32, 1), 3.0), np.zeros((32, 32, 1)))
    with pytest.raises(ValueError, match="differ in shape"):
        diversity.ssim(np.zeros((32, 32, 1), np.uint8), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        diversity.msssim_diversity(np.zeros((1, 32, 32, 3), np.uint8), num_pairs=3)
    assert not math.isnan(diversity.msssim_diversity(np.zeros((2, 32, 32, 3), np.uint8), num_pairs=2))
