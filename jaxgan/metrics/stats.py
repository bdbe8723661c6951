"""Streaming float64 feature statistics and the Frechet distance between Gaussians.

Features arrive batch by batch ([b, d], any float dtype) and are accumulated in
float64 with Chan et al.'s pairwise update of (n, mean, M2), where M2 is the sum
of outer products of deviations from the mean. Unlike a raw sum of x x^T, this
does not lose digits when the mean is large against the spread (Chan, Golub &
LeVeque 1979, "Updating formulae and a pairwise algorithm for computing sample
variances", eq. 2.1). The covariance uses ddof=1, as numpy.cov and every FID
implementation do.

The Frechet distance between N(mu1, S1) and N(mu2, S2) is
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))
(Dowson & Landau 1982; FID: Heusel et al. 2017, arXiv:1706.08500, eq. 6).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class FeatureStats(NamedTuple):
    """Finalized statistics of n feature vectors: float64 mean [d] and covariance [d, d] (ddof=1)."""

    n: int
    mean: np.ndarray
    cov: np.ndarray


class Moments(NamedTuple):
    """A running accumulator: count, float64 mean [d] and M2 = sum (x - mean)(x - mean)^T [d, d]."""

    n: int
    mean: np.ndarray
    m2: np.ndarray


def feature_matrix(features: Any, name: str) -> np.ndarray:
    """features as float64 [N, D], or a clear error naming `name` (shape, dtype, NaN/inf)."""
    f = np.asarray(features)
    if f.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D] of features, got shape {f.shape}.")
    if not np.issubdtype(f.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got {f.dtype}.")
    f = f.astype(np.float64)
    if not np.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or inf; check the images and the feature extractor.")
    return f


def _check_features(features: object, dim: int | None = None) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(
            f"Features must be a 2-D array [batch, dim], got shape {x.shape}; "
            "flatten pooled features to [batch, dim] first."
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"Features must be real numbers, got dtype {x.dtype}.")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"Feature dim {x.shape[1]} does not match the accumulator's dim {dim}.")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.all(np.isfinite(x), axis=1)))
        raise ValueError(
            f"{bad} of {x.shape[0]} feature rows are not finite (NaN/inf); check the images and the "
            "feature extractor's weights."
        )
    return x


def init_moments(dim: int) -> Moments:
    """The empty accumulator for d-dimensional features."""
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}.")
    return Moments(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint sets (Chan et al. 1979, eq. 2.1)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"Cannot merge moments of dims {a.mean.shape} and {b.mean.shape}.")
    if b.n == 0:
        return a
    if a.n == 0:
        return b
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    m2 = a.m2 + b.m2 + np.outer(delta, delta) * (a.n * b.n / n)
    return Moments(n, mean, m2)


def batch_moments(features: object) -> Moments:
    """Moments of one batch [b, d], in float64."""
    x = _check_features(features)
    if x.shape[0] == 0:
        return init_moments(x.shape[1])
    mean = x.mean(axis=0)
    centred = x - mean
    return Moments(x.shape[0], mean, centred.T @ centred)


def add_batch(acc: Moments, features: object) -> Moments:
    """The accumulator after adding a batch of features [b, d] (pure: returns a new one)."""
    x = _check_features(features, dim=acc.mean.shape[0])
    return merge_moments(acc, batch_moments(x))


def finalize(acc: Moments) -> FeatureStats:
    """Mean and covariance (ddof=1) from an accumulator; needs at least 2 samples."""
    if acc.n < 2:
        raise ValueError(
            f"A covariance needs at least 2 samples, got {acc.n}; feed more images "
            "(FID is biased below a few thousand; 10k-50k is the norm)."
        )
    cov = acc.m2 / (acc.n - 1)
    return FeatureStats(int(acc.n), acc.mean.copy(), 0.5 * (cov + cov.T))


def feature_stats(features: object) -> FeatureStats:
    """One-shot mean and covariance (ddof=1) of features [n, d]."""
    return finalize(batch_moments(features))


class StreamingStats:
    """A mutable convenience wrapper over the pure accumulator.

    acc = StreamingStats(2048)
    for f in batches: acc.add(f)
    stats = acc.finalize()
    """

    def __init__(self, dim: int):
        self.moments = init_moments(dim)

    @property
    def n(self) -> int:
        return self.moments.n

    @property
    def dim(self) -> int:
        return self.moments.mean.shape[0]

    def add(self, features: object) -> "StreamingStats":
        self.moments = add_batch(self.moments, features)
        return self

    def merge(self, other: "StreamingStats") -> "StreamingStats":
        self.moments = merge_moments(self.moments, other.moments)
        return self

    def finalize(self) -> FeatureStats:
        return finalize(self.moments)


def _check_gaussian(mu: object, sigma: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    if mu.ndim != 1:
        raise ValueError(f"{name}: the mean must be 1-D [d], got shape {mu.shape}.")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"{name}: the covariance must be [d, d] = {(mu.shape[0], mu.shape[0])} to match the mean, "
            f"got {sigma.shape}."
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"{name}: mean or covariance is not finite (NaN/inf).")
    return mu, sigma


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via eigh; negative (rounding) eigenvalues count as 0."""
    w, v = np.linalg.eigh(0.5 * (sigma + sigma.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: object, sigma2: object) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, as pytorch-fid's scipy.linalg.sqrtm computes it.

    S1 S2 is similar to the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), so both
    have the same eigenvalues; the trace of the square root is the sum of their
    square roots. Two symmetric eigendecompositions replace the non-symmetric
    Schur-based sqrtm (faster at d = 2048, never complex). Negative eigenvalues
    (rounding) count as 0, as in the real part sqrtm gives them; every positive
    one counts, however small, as in sqrtm: at N ~ d the many tiny ones add up,
    so a cut-off at eigh's rounding level moves FID by more than rounding.
    Dead features (zero variance in both sets) are dropped first: exact, and it
    keeps their rounding noise out of the sum.
    """
    s1 = np.asarray(sigma1, np.float64)
    s2 = np.asarray(sigma2, np.float64)
    # A feature constant in both sets (a dead unit) has an exactly zero row and column in both covariances:
    # it adds nothing to the trace, so it is left out rather than leaving rounding noise to be square-rooted.
    live = (np.diagonal(s1) > 0) | (np.diagonal(s2) > 0)
    if not live.all():
        s1, s2 = s1[np.ix_(live, live)], s2[np.ix_(live, live)]
    root = _psd_sqrt(s1)
    m = root @ (0.5 * (s2 + s2.T)) @ root
    w = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(mu1: object, sigma1: object, mu2: object, sigma2: object) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64.

    The Frechet (2-Wasserstein) distance between two Gaussians (Dowson & Landau
    1982), which FID evaluates on Inception features (Heusel et al. 2017,
    arXiv:1706.08500). Matches pytorch-fid's `calculate_frechet_distance` (which
    uses scipy.linalg.sqrtm) to rounding, near-singular covariances (N ~ d)
    included (`trace_sqrt_product`). Not clipped at 0: identical inputs can give
    a tiny negative number from rounding.
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "first Gaussian")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "second Gaussian")
    if mu1.shape != mu2.shape:
        raise ValueError(f"The two Gaussians differ in dimension: {mu1.shape[0]} vs {mu2.shape[0]}.")
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """`frechet_distance` of two `FeatureStats`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)
