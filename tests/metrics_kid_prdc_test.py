"""KID, precision/recall/density/coverage and Inception Score vs independent references.

References: a literal double loop of the unbiased MMD^2 (Gretton et al. 2012,
eq. 3) with the cubic polynomial kernel; the four k-NN metrics written out from
their definitions on a scipy `cdist` matrix; point sets whose answers are worked
out by hand; and the Inception Score's closed forms (uniform predictions -> 1,
confident predictions spread evenly over C classes -> C) plus scipy's rel_entr.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import rel_entr

from jaxgan.metrics import inception_score as is_lib
from jaxgan.metrics import kid as kid_lib
from jaxgan.metrics import prdc as prdc_lib


# ----------------------------------------------------------------------------
# KID.


def _mmd2_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_mmd2_unbiased_matches_double_loop_unequal_sizes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    y = rng.normal(0.5, 1.2, size=(9, 4))
    k = kid_lib.polynomial_kernel
    got = kid_lib.mmd2_unbiased(k(x, x), k(y, y), k(x, y))
    assert got == pytest.approx(_mmd2_double_loop(x, y), rel=1e-12)


def test_kid_single_full_subset_is_the_plain_mmd():
    # One subset of all rows (a permutation) -> exactly MMD_u^2 of the two sets, std 0.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 3))
    y = rng.normal(1.0, 1.0, size=(7, 3))
    out = kid_lib.kernel_inception_distance(x, y, num_subsets=1, max_subset_size=1000, seed=3)
    assert out["subset_size"] == 7
    assert out["kid_mean"] == pytest.approx(_mmd2_double_loop(x, y), rel=1e-12)
    assert out["kid_std"] == 0.0


def test_kid_subsets_follow_the_documented_draws():
    # Replay the documented protocol (default_rng(seed); per subset: real rows, then fake rows,
    # each rng.choice(N, m, replace=False)) with the double-loop MMD.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 3))
    y = rng.normal(0.3, 1.0, size=(8, 3))
    out = kid_lib.kernel_inception_distance(x, y, num_subsets=4, max_subset_size=5, seed=11)
    replay = np.random.default_rng(11)
    mmds = []
    for _ in range(4):
        xi = replay.choice(9, 5, replace=False)
        yi = replay.choice(8, 5, replace=False)
        mmds.append(_mmd2_double_loop(x[xi], y[yi]))
    assert out["subset_size"] == 5
    assert out["kid_mean"] == pytest.approx(np.mean(mmds), rel=1e-10)
    assert out["kid_std"] == pytest.approx(np.std(mmds), rel=1e-8)


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(400, 8))
    same = rng.normal(size=(400, 8))
    shifted = rng.normal(0.5, 1.0, size=(400, 8))
    kw = dict(num_subsets=10, max_subset_size=200, seed=0)
    null = kid_lib.kernel_inception_distance(real, same, **kw)
    alt = kid_lib.kernel_inception_distance(real, shifted, **kw)
    # The null's population MMD^2 is 0 (estimates scatter ~0.01 around it); for the shift,
    # a 4000-sample unbiased estimate gives ~1.07.
    assert abs(null["kid_mean"]) < 0.05
    assert alt["kid_mean"] > 0.5
    assert alt["kid_mean"] > 5 * alt["kid_std"]


def test_kid_subset_size_is_capped_by_the_smaller_set():
    rng = np.random.default_rng(4)
    out = kid_lib.kernel_inception_distance(rng.normal(size=(30, 2)), rng.normal(size=(12, 2)), num_subsets=2)
    assert out["subset_size"] == 12


def test_kid_bad_input():
    with pytest.raises(ValueError, match="dims differ"):
        kid_lib.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kid_lib.kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-D"):
        kid_lib.kernel_inception_distance(np.zeros((5,)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        kid_lib.kernel_inception_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


# ----------------------------------------------------------------------------
# Precision / recall / density / coverage.


def _prdc_reference(real, fake, k_pr, k_dc):
    """The definitions, literally, on scipy cdist matrices (radius: sorted row incl. self, index k)."""
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = {k: np.sort(rr, axis=1)[:, k] for k in (k_pr, k_dc)}
    r_fake = np.sort(ff, axis=1)[:, k_pr]
    n, m = len(real), len(fake)
    precision = np.mean([any(rf[i, j] < r_real[k_pr][i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(rf[i, j] < r_fake[j] for j in range(m)) for i in range(n)])
    density = np.mean([sum(rf[i, j] < r_real[k_dc][i] for i in range(n)) for j in range(m)]) / k_dc
    coverage = np.mean([rf[i].min() < r_real[k_dc][i] for i in range(n)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("block_elements", [4_000_000, 7])
def test_prdc_matches_cdist_reference(monkeypatch, block_elements):
    # block_elements=7 forces one row per block: the chunked path must give the same answer.
    monkeypatch.setattr(prdc_lib, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(5)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(0.4, 1.3, size=(45, 5))
    got = prdc_lib.prdc(real, fake)
    want = _prdc_reference(real, fake, 3, 5)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1  # a non-degenerate case


def test_prdc_same_k_reproduces_one_compute_prdc_call():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(40, 3)), rng.normal(0.2, 1.0, size=(40, 3))
    want = _prdc_reference(real, fake, 4, 4)
    assert prdc_lib.prdc(real, fake, k_precision_recall=4, k_density_coverage=4) == pytest.approx(want, abs=1e-12)
    assert prdc_lib.precision_recall(real, fake, k=4) == pytest.approx(
        {"precision": want["precision"], "recall": want["recall"]}, abs=1e-12
    )


def test_nearest_neighbour_radii_exclude_self():
    # Points 0, 1, 3, 7 on a line: 1st NN distances 1, 1, 2, 4; 2nd NN 3, 2, 3, 6.
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_array_equal(prdc_lib.nearest_neighbour_radii(x, k=1), [1, 1, 2, 4])
    np.testing.assert_array_equal(prdc_lib.nearest_neighbour_radii(x, k=2), [3, 2, 3, 6])


# Integer points 2^i - 1 on a line: all pairwise distances 2^a - 2^b are distinct (binary),
# so no ball boundary ties and distances are exact in float64.
_LINE = (2.0 ** np.arange(10) - 1.0)[:, None]


def test_prdc_hand_made_identical_sets():
    # fake == real: every fake point is a real point (distance 0 < radius) -> P = R = C = 1.
    # Density: each real ball holds itself and its k - 1 nearer neighbours strictly inside
    # (the k-th sits on the boundary), so sum_j #balls(y_j) = N k and density = 1.
    out = prdc_lib.prdc(_LINE, _LINE.copy())
    assert out == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_hand_made_dropped_mode_and_far_away():
    real = np.concatenate([_LINE, _LINE + 1e6])  # two far-apart "modes"
    fake = _LINE.copy()  # covers the first mode only, perfectly
    out = prdc_lib.prdc(real, fake)
    assert out == {"precision": 1.0, "recall": 0.5, "density": 1.0, "coverage": 0.5}
    far = prdc_lib.prdc(_LINE, _LINE + 1e7)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_bad_input():
    with pytest.raises(ValueError, match="more than k"):
        prdc_lib.prdc(np.zeros((5, 2)), np.ones((20, 2)))
    with pytest.raises(ValueError, match="dims differ"):
        prdc_lib.prdc(np.zeros((20, 2)), np.ones((20, 3)))
    with pytest.raises(ValueError, match=r"k must be in \[1, N - 1\]"):
        prdc_lib.nearest_neighbour_radii(np.zeros((3, 2)), k=3)


# ----------------------------------------------------------------------------
# Inception Score.


def test_inception_score_uniform_predictions_is_one():
    out = is_lib.inception_score(np.full((50, 7), 1.0 / 7), from_logits=False)
    assert out["is_mean"] == pytest.approx(1.0, abs=1e-12)
    assert out["is_std"] == pytest.approx(0.0, abs=1e-12)
    # Equal logits are uniform predictions too.
    assert is_lib.inception_score(np.zeros((50, 7)), from_logits=True)["is_mean"] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_confident_and_balanced_is_num_classes():
    # Each split of 20 holds every one of 5 classes 4 times, one-hot: KL = log 5 per sample.
    probs = np.tile(np.eye(5), (40, 1))
    out = is_lib.inception_score(probs, from_logits=False, num_splits=10)
    assert out["is_mean"] == pytest.approx(5.0, rel=1e-12)
    # Confident but collapsed onto one class: IS = 1.
    assert is_lib.inception_score(np.tile(np.eye(5)[:1], (40, 1)), from_logits=False)["is_mean"] == pytest.approx(1.0)


def test_inception_score_matches_scipy_per_split():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(103, 6))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for i in range(10):  # consecutive splits of the original improved-gan code
        part = probs[i * 103 // 10 : (i + 1) * 103 // 10]
        scores.append(math.exp(rel_entr(part, part.mean(0, keepdims=True)).sum(1).mean()))
    out = is_lib.inception_score(logits, from_logits=True)
    assert out["is_mean"] == pytest.approx(np.mean(scores), rel=1e-10)
    assert out["is_std"] == pytest.approx(np.std(scores), rel=1e-8)
    assert is_lib.inception_score(probs, from_logits=False) == pytest.approx(out, rel=1e-10)


def test_inception_score_bad_input():
    with pytest.raises(ValueError, match="from_logits=True"):
        is_lib.inception_score(np.ones((20, 4)), from_logits=False)
    with pytest.raises(ValueError, match="num_splits"):
        is_lib.inception_score(np.zeros((5, 4)), from_logits=True)
    with pytest.raises(ValueError, match=r"\[N, num_classes"):
        is_lib.inception_score(np.zeros((5,)), from_logits=True)
