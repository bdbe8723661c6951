"""Kernel Inception Distance (Binkowski, Sutherland, Arbel & Gretton 2018, arXiv:1801.01401).

KID is the squared MMD between two feature distributions under the cubic
polynomial kernel k(x, y) = (x.y / d + 1)^3, estimated
with the unbiased U-statistic (Gretton et al. 2012, JMLR, eq. 3):

    MMD_u^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1))
            + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n)

averaged over random subsets, as torch-fidelity and clean-fid do: 100 subsets
of size min(1000, N_real, N_fake), each drawn without replacement from each
set. Unlike FID it is unbiased, so it can be compared across sample sizes, and
it can be slightly negative when the two distributions match.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxgan.metrics.stats import feature_matrix

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x y^T / d + coef0)^degree for x [m, d], y [n, d], in float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """The unbiased MMD^2 U-statistic from the three kernel matrices (module docstring)."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"The unbiased MMD needs at least 2 samples per set, got {m} and {n}.")
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.sum() / (m * n))


def kernel_inception_distance(
    real_features: Any,
    fake_features: Any,
    *,
    num_subsets: int = KID_SUBSETS,
    max_subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict[str, float]:
    """KID between two feature sets [N, D]: {'kid_mean', 'kid_std', 'subset_size'}.

    Per subset s, m = min(max_subset_size, N_real, N_fake) rows are drawn
    without replacement from each set (numpy default_rng(seed), real first,
    then fake) and MMD_u^2 is computed with k(x, y) = (x.y / D + 1)^3. Returns
    the mean and the standard deviation (ddof=0, as torch-fidelity reports)
    over subsets. Works on any features: Inception pool3 (2048-d) for KID
    proper, or a domain classifier's.
    """
    real = feature_matrix(real_features, "real_features")
    fake = feature_matrix(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature dims differ: real {real.shape[1]} vs fake {fake.shape[1]}.")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
    m = min(max_subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(
            f"KID needs at least 2 samples in each set (got {len(real)} real, {len(fake)} fake) "
            f"and max_subset_size >= 2 (got {max_subset_size})."
        )
    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets, np.float64)
    for s in range(num_subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        mmds[s] = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    return {"kid_mean": float(mmds.mean()), "kid_std": float(mmds.std()), "subset_size": m}
