"""Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

All four estimate manifolds with k-nearest-neighbour balls, exactly as the
official `prdc` package (clovaai/generative-evaluation-prdc, `compute_prdc`)
computes them. With r_k(x) the distance from x to its k-th nearest neighbour
in its own set (self excluded: the (k+1)-th smallest distance, self included),
real features X (N) and fake features Y (M):

  precision = 1/M sum_j 1[exists i: |x_i - y_j| < r_k(x_i)]          (k = 3)
  recall    = 1/N sum_i 1[exists j: |x_i - y_j| < r_k(y_j)]          (k = 3)
  density   = 1/(k M) sum_j sum_i 1[|x_i - y_j| < r_k(x_i)]          (k = 5)
  coverage  = 1/N sum_i 1[min_j |x_i - y_j| < r_k(x_i)]              (k = 5)

References: Kynkaanniemi, Karras, Laine, Lehtinen & Aila 2019, "Improved
Precision and Recall Metric for Assessing Generative Models", arXiv:1904.06991,
eqs. 1-3 (k = 3); Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and
Diversity Metrics for Generative Models", arXiv:2002.09797 (k = 5).
The comparisons are strict (<), as in `prdc`. Distances are computed in float64
from |x|^2 + |y|^2 - 2 x.y (as scikit-learn's pairwise_distances, which `prdc`
calls, does), in row blocks so that N = M = 10k at D = 2048 needs ~100 MB
beyond the features, never an N x M matrix.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from jaxgan.metrics.stats import feature_matrix

PRECISION_RECALL_K = 3
DENSITY_COVERAGE_K = 5
_BLOCK_ELEMENTS = 4_000_000  # float64 distances per block (32 MB)


def _distance_blocks(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yields (rows, |x[rows] - y|) as float64 blocks [b, len(y)] of Euclidean distances."""
    y_sq = np.einsum("ij,ij->i", y, y)
    block = max(1, _BLOCK_ELEMENTS // max(1, len(y)))
    for start in range(0, len(x), block):
        rows = slice(start, min(start + block, len(x)))
        xb = x[rows]
        sq = np.einsum("ij,ij->i", xb, xb)[:, None] + y_sq[None, :] - 2.0 * (xb @ y.T)
        yield rows, np.sqrt(np.maximum(sq, 0.0))


def nearest_neighbour_radii(features: Any, *, k: int) -> np.ndarray:
    """r_k(x) for each row: the distance to its k-th nearest other row (self excluded).

    As `prdc.compute_nearest_neighbour_distances`: the (k+1)-th smallest
    distance in the row of the pairwise matrix, self (distance 0) included.
    """
    f = feature_matrix(features, "features")
    if not 1 <= k < len(f):
        raise ValueError(f"k must be in [1, N - 1] = [1, {len(f) - 1}] for {len(f)} points, got {k}.")
    radii = np.empty(len(f), np.float64)
    for rows, d in _distance_blocks(f, f):
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(
    real_features: Any,
    fake_features: Any,
    *,
    k_precision_recall: int = PRECISION_RECALL_K,
    k_density_coverage: int = DENSITY_COVERAGE_K,
) -> dict[str, float]:
    """{'precision', 'recall', 'density', 'coverage'} of fake vs real features (module docstring).

    Precision/recall use k = 3 (Kynkaanniemi et al. 2019), density/coverage
    k = 5 (Naeem et al. 2020); pass the same k twice to reproduce one
    `prdc.compute_prdc(real, fake, nearest_k=k)` call.
    """
    real = feature_matrix(real_features, "real_features")
    fake = feature_matrix(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature dims differ: real {real.shape[1]} vs fake {fake.shape[1]}.")
    k_pr, k_dc = k_precision_recall, k_density_coverage
    for name, n in (("real", len(real)), ("fake", len(fake))):
        if n <= max(k_pr, k_dc):
            raise ValueError(
                f"Need more than k = {max(k_pr, k_dc)} {name} samples for k-NN radii, got {n}; "
                "use thousands (10k is the norm for these metrics)."
            )
    real_r_pr = nearest_neighbour_radii(real, k=k_pr)
    real_r_dc = real_r_pr if k_dc == k_pr else nearest_neighbour_radii(real, k=k_dc)
    fake_r_pr = nearest_neighbour_radii(fake, k=k_pr)

    in_real_ball = np.zeros(len(fake), bool)  # precision: y_j inside some real ball (k_pr)
    density_count = np.zeros(len(fake), np.int64)  # density: number of real balls (k_dc) holding y_j
    recalled = np.zeros(len(real), bool)  # recall: x_i inside some fake ball (k_pr)
    covered = np.zeros(len(real), bool)  # coverage: nearest fake inside x_i's ball (k_dc)
    for rows, d in _distance_blocks(real, fake):
        in_real_ball |= (d < real_r_pr[rows, None]).any(axis=0)
        density_count += (d < real_r_dc[rows, None]).sum(axis=0)
        recalled[rows] = (d < fake_r_pr[None, :]).any(axis=1)
        covered[rows] = d.min(axis=1) < real_r_dc[rows]
    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(recalled.mean()),
        "density": float(density_count.mean() / k_dc),
        "coverage": float(covered.mean()),
    }


def precision_recall(real_features: Any, fake_features: Any, *, k: int = PRECISION_RECALL_K) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, arXiv:1904.06991), k = 3."""
    out = prdc(real_features, fake_features, k_precision_recall=k, k_density_coverage=k)
    return {"precision": out["precision"], "recall": out["recall"]}


def density_coverage(real_features: Any, fake_features: Any, *, k: int = DENSITY_COVERAGE_K) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020, arXiv:2002.09797), k = 5."""
    out = prdc(real_features, fake_features, k_precision_recall=k, k_density_coverage=k)
    return {"density": out["density"], "coverage": out["coverage"]}
