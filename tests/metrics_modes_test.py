"""Mode coverage on the 2D-ring / 2D-grid (VEEGAN / PacGAN protocol) vs hand-computed answers.

True samples must capture every mode with a high-quality fraction matching the
exact chi-square(2) probability of a 3-sigma disk, 1 - exp(-4.5) = 0.98889,
within binomial error; hand-placed samples give hand-computed counts and KLs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2

from jaxgan.metrics import modes


def test_protocol_mixtures():
    ring = modes.get_mixture("ring")
    assert ring.sigma == 0.01 and ring.means.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(ring.means[2], [0.0, 1.0], atol=1e-15)  # angle 2 pi * 2 / 8
    grid = modes.get_mixture("grid")
    assert grid.sigma == 0.05 and grid.means.shape == (25, 2)
    want = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(m) for m in grid.means.astype(int)} == want


def test_high_quality_probability_is_the_chi2_cdf():
    assert modes.high_quality_probability(3.0) == pytest.approx(1 - math.exp(-4.5), rel=1e-15)
    assert modes.high_quality_probability(3.0) == pytest.approx(chi2.cdf(9.0, df=2), rel=1e-12)


@pytest.mark.parametrize("name,seed", [("ring", 0), ("ring", 1), ("grid", 0), ("grid", 2)])
def test_true_samples_capture_all_modes_with_chi2_high_quality(name, seed):
    mix = modes.get_mixture(name)
    x = modes.sample_mixture(mix, modes.PROTOCOL_SAMPLES, seed=seed)
    out = modes.mode_coverage(x, name, expect_protocol_size=True)
    assert out["modes"] == out["num_modes"] == len(mix.means)
    p = 1 - math.exp(-4.5)
    se = math.sqrt(p * (1 - p) / modes.PROTOCOL_SAMPLES)  # ~0.0021
    assert abs(out["high_quality"] - p) < 4 * se
    assert out["counts"].sum() == round(out["high_quality"] * modes.PROTOCOL_SAMPLES)
    # Near-uniform histogram: the reverse KL of 2500 multinomial draws is ~(K - 1) / (2 N') small.
    assert 0 <= out["reverse_kl"] < 0.02


def test_sampler_is_seeded_and_has_the_right_moments():
    mix = modes.get_mixture("grid")
    a, m = modes.sample_mixture(mix, 20_000, seed=5, return_modes=True)
    b = modes.sample_mixture(mix, 20_000, seed=5)
    c = modes.sample_mixture(mix, 20_000, seed=6)
    assert a.dtype == np.float32 and a.shape == (20_000, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    resid = a.astype(np.float64) - mix.means[m]
    # Standardised residuals: mean ~0 (se 1/sqrt(40k)), variance ~1 (se sqrt(2/40k)).
    z = resid.ravel() / mix.sigma
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / z.size)
    counts = np.bincount(m, minlength=25)
    expected = 20_000 / 25
    assert chi2.sf(((counts - expected) ** 2 / expected).sum(), df=24) > 1e-4  # uniform modes


def test_collapsed_to_one_mode():
    ring = modes.get_mixture("ring")
    x = np.tile(ring.means[3], (2500, 1)) + 0.001 * np.random.default_rng(0).standard_normal((2500, 2))
    out = modes.mode_coverage(x, ring)
    assert out["modes"] == 1
    assert out["high_quality"] == 1.0
    np.testing.assert_array_equal(out["counts"], np.eye(8, dtype=int)[3] * 2500)
    assert out["reverse_kl"] == pytest.approx(math.log(8), rel=1e-12)


def test_two_modes_plus_low_quality_samples():
    # 1000 on grid mode (-4, -4) [index 0], 500 on (0, 2) [index 13], 1000 far from every mean.
    grid = modes.get_mixture("grid")
    x = np.concatenate(
        [
            np.tile([-4.0, -4.0], (1000, 1)),
            np.tile([0.0, 2.0], (500, 1)),
            np.tile([1.0, 1.0], (1000, 1)),  # sqrt(2) away from the nearest means: low quality
        ]
    )
    out = modes.mode_coverage(x, grid)
    assert out["modes"] == 2
    assert out["high_quality"] == pytest.approx(1500 / 2500)
    assert out["counts"][0] == 1000 and out["counts"][13] == 500 and out["counts"].sum() == 1500
    # Reverse KL of (2/3, 1/3, 0, ...) to uniform over 25, empty modes contributing 0.
    want = (2 / 3) * math.log((2 / 3) * 25) + (1 / 3) * math.log((1 / 3) * 25)
    assert out["reverse_kl"] == pytest.approx(want, rel=1e-12)
    p = out["counts"] / out["counts"].sum()
    assert out["jsd"] == pytest.approx(jensenshannon(p, np.full(25, 1 / 25)) ** 2, rel=1e-10)


def test_three_sigma_boundary_and_nearest_mean():
    ring = modes.get_mixture("ring")
    direction = np.array([0.6, 0.8])
    inside = ring.means[5] + 2.99 * ring.sigma * direction
    outside = ring.means[5] + 3.01 * ring.sigma * direction
    out = modes.mode_coverage(np.stack([inside, outside]), ring)
    assert out["high_quality"] == 0.5
    np.testing.assert_array_equal(np.flatnonzero(out["counts"]), [5])


def test_no_high_quality_sample_gives_nan_kl():
    out = modes.mode_coverage(np.zeros((10, 2)), "ring")  # the centre: 1 from every mean
    assert out["modes"] == 0 and out["high_quality"] == 0.0
    assert math.isnan(out["reverse_kl"])


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        modes.mode_coverage(np.zeros((10, 3)), "ring")
    with pytest.raises(ValueError, match="valid names"):
        modes.mode_coverage(np.zeros((10, 2)), "spiral")
    with pytest.raises(ValueError, match="NaN"):
        modes.mode_coverage(np.full((10, 2), np.nan), "grid")
    with pytest.raises(ValueError, match="2500"):
        modes.mode_coverage(np.zeros((10, 2)), "grid", expect_protocol_size=True)
    with pytest.raises(ValueError, match="num_samples"):
        modes.sample_mixture(modes.get_mixture("ring"), 0, seed=0)
