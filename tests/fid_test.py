"""FID pieces against independent references.

- Streaming float64 stats vs numpy.cov / mean on the concatenated features.
- The Frechet distance vs pytorch-fid's scipy.linalg.sqrtm formula (re-typed
  here from pytorch-fid `fid_score.calculate_frechet_distance`) and closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import stats


def _pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid v0.3.0 `calculate_frechet_distance`, in substance (scipy 1.17 dropped `disp`)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ---------------------------------------------------------------- streaming stats


@pytest.mark.parametrize("sizes", [(7,), (3, 1, 10, 2), (2, 2, 2, 2, 2), (1, 1, 1)])
def test_streaming_stats_match_numpy_on_concatenation(sizes):
    rng = np.random.default_rng(sum(sizes))
    d = 5
    # A large common offset: a raw sum-of-outer-products would lose digits here.
    batches = [(1e4 + rng.normal(size=(b, d)) * [1, 2, 3, 4, 5]).astype(np.float32) for b in sizes]
    acc = stats.StreamingStats(d)
    for b in batches:
        acc.add(b)
    got = acc.finalize()
    x = np.concatenate(batches).astype(np.float64)
    assert got.n == x.shape[0]
    assert got.mean.dtype == np.float64 and got.cov.dtype == np.float64
    np.testing.assert_allclose(got.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(got.cov, np.cov(x, rowvar=False, ddof=1), rtol=1e-9, atol=1e-12)


def test_pure_accumulator_and_merge_equal_one_shot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 4))
    acc_a = stats.add_batch(stats.add_batch(stats.init_moments(4), x[:5]), x[5:9])
    acc_b = stats.add_batch(stats.init_moments(4), x[9:])
    merged = stats.finalize(stats.merge_moments(acc_a, acc_b))
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(merged.cov, np.cov(x, rowvar=False), rtol=1e-12)
    # The pure functions do not mutate their inputs.
    assert acc_a.n == 9 and acc_b.n == 14


def test_stats_errors():
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.StreamingStats(3).add(np.ones((1, 3))).finalize()
    with pytest.raises(ValueError, match=r"2-D array \[batch, dim\]"):
        stats.StreamingStats(3).add(np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="does not match the accumulator's dim 3"):
        stats.StreamingStats(3).add(np.ones((2, 4)))
    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 of 4 feature rows are not finite"):
        stats.StreamingStats(3).add(bad)
    with pytest.raises(ValueError, match="positive int"):
        stats.StreamingStats(0)


# ---------------------------------------------------------------- Frechet distance


def _random_psd(rng, d, n):
    """Sample covariance of n Gaussian draws in d dims: rank min(n - 1, d)."""
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return np.cov(a, rowvar=False)


@pytest.mark.parametrize("d,n1,n2", [(8, 50, 60), (64, 500, 300), (32, 10, 200), (32, 12, 9)])
def test_frechet_distance_matches_pytorch_fid_sqrtm(d, n1, n2):
    rng = np.random.default_rng(d + n1 + n2)
    s1, s2 = _random_psd(rng, d, n1), _random_psd(rng, d, n2)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    got = stats.frechet_distance(mu1, s1, mu2, s2)
    want = _pytorch_fid_reference(mu1, s1, mu2, s2)
    assert got == pytest.approx(want, rel=1e-6)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    d = 16
    s = _random_psd(rng, d, 40)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Equal covariances: tr(S + S - 2 S) = 0, only the mean term remains.
    assert stats.frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)
    # Commuting diagonal covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a, b = rng.uniform(0, 3, size=d), rng.uniform(0, 3, size=d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert stats.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-12)
    # A rank-1 x rank-1 case by hand: S1 = u u^T, S2 = v v^T -> tr sqrt(S1 S2) = |u.v|.
    u, v = rng.normal(size=d), rng.normal(size=d)
    want = u @ u + v @ v - 2 * abs(u @ v)
    got = stats.frechet_distance(np.zeros(d), np.outer(u, u), np.zeros(d), np.outer(v, v))
    assert got == pytest.approx(want, rel=1e-9)


def test_frechet_distance_errors():
    eye = np.eye(3)
    with pytest.raises(ValueError, match="mean must be 1-D"):
        stats.frechet_distance(np.zeros((1, 3)), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"covariance must be \[d, d\]"):
        stats.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), eye)
    with pytest.raises(ValueError, match="differ in dimension"):
        stats.frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="not finite"):
        stats.frechet_distance(np.zeros(3), eye * np.nan, np.zeros(3), eye)
