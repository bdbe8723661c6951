"""Mode coverage on known 2-D Gaussian mixtures: the 2D-ring and 2D-grid protocol.

The benchmark of VEEGAN (Srivastava, Valkov, Russell, Gutmann & Sutton 2017,
arXiv:1705.07761) as PacGAN (Lin, Khetan, Fanti & Oh 2018, arXiv:1712.04086,
table 1) runs it:

- 2D-ring: 8 Gaussians with means on the unit circle (angle 2 pi k / 8),
  sigma = 0.01. 2D-grid: 25 Gaussians with means {-4, -2, 0, 2, 4}^2,
  sigma = 0.05. Equal weights, isotropic.
- 2,500 generated samples. A sample is high quality if it lies within 3 sigma
  of its nearest mean (Euclidean distance < 3 sigma; strict, as in PacGAN's
  released `MetricLogger`); a mode is captured if it is the nearest mean of at
  least one high-quality sample.
- "% high quality" = (number of high-quality samples) / (all samples).
- Reverse KL: PacGAN reports "reverse KL" = KL(P_gen || P_true) of the mode
  distribution. Our reading of the paper and the released code: the
  histogram counts only high-quality samples, each at its nearest mean; it is
  normalised by the number of high-quality samples (low-quality samples are
  dropped, not a bin of their own); P_true is uniform over the modes; empty
  modes contribute 0 (0 log 0 = 0; their `JSD.KLD(p, q)` sums only over
  p != 0, which is also how their Stacked-MNIST KL is computed). So a
  generator that puts all its good samples on one mode of K scores log K,
  a perfectly balanced one 0. With no high-quality sample at all the KL is
  undefined and reported as NaN. (The released 2-D logger writes the JSD to
  uniform, not the KL; we also return it as `jsd` for comparison.)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

PROTOCOL_SAMPLES = 2_500
HIGH_QUALITY_SIGMAS = 3.0


class GaussianMixture2D(NamedTuple):
    """An equal-weight mixture of isotropic 2-D Gaussians."""

    name: str
    means: np.ndarray  # float64 [K, 2]
    sigma: float


def ring_mixture(*, num_modes: int = 8, radius: float = 1.0, sigma: float = 0.01) -> GaussianMixture2D:
    """The 2D-ring: means (r cos(2 pi k / K), r sin(2 pi k / K)), k = 0..K-1."""
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture2D("ring", means, float(sigma))


def grid_mixture(*, values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0), sigma: float = 0.05) -> GaussianMixture2D:
    """The 2D-grid: means on values x values (row-major: first coordinate slowest)."""
    a, b = np.meshgrid(np.asarray(values, np.float64), np.asarray(values, np.float64), indexing="ij")
    return GaussianMixture2D("grid", np.stack([a.ravel(), b.ravel()], axis=1), float(sigma))


MIXTURES = {"ring": ring_mixture, "grid": grid_mixture}


def get_mixture(name: str) -> GaussianMixture2D:
    """The protocol mixture named 'ring' or 'grid'."""
    if name not in MIXTURES:
        raise ValueError(f"Unknown mixture {name!r}; valid names: {sorted(MIXTURES)}.")
    return MIXTURES[name]()


def sample_mixture(
    mixture: GaussianMixture2D, num_samples: int, *, seed: int, return_modes: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Seeded float32 samples [N, 2] of the mixture (modes drawn uniformly).

    numpy default_rng(seed): first the mode of every sample, then the unit
    Gaussian noise [N, 2]; x = means[mode] + sigma * noise. With
    `return_modes`, also returns the int64 mode index of every sample.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, len(mixture.means), size=num_samples)
    x = mixture.means[modes] + mixture.sigma * rng.standard_normal((num_samples, 2))
    x = x.astype(np.float32)
    return (x, modes.astype(np.int64)) if return_modes else x


def _kl_to_uniform(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def _jsd_to_uniform(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts / total
    q = np.full(len(counts), 1.0 / len(counts))
    m = 0.5 * (p + q)
    nz = p > 0
    return float(0.5 * np.sum(p[nz] * np.log(p[nz] / m[nz])) + 0.5 * np.sum(q * np.log(q / m)))


def mode_coverage(
    samples: Any,
    mixture: GaussianMixture2D | str,
    *,
    threshold_sigmas: float = HIGH_QUALITY_SIGMAS,
    expect_protocol_size: bool = False,
) -> dict[str, Any]:
    """Modes captured, % high quality and reverse KL of 2-D samples (module docstring).

    Returns {'modes': int, 'num_modes': int, 'high_quality': fraction in
    [0, 1], 'reverse_kl': nats, 'jsd': nats, 'counts': int64 [K] high-quality
    samples per mode}. `expect_protocol_size=True` checks N = 2,500.
    """
    mix = get_mixture(mixture) if isinstance(mixture, str) else mixture
    x = np.asarray(samples)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"samples must be 2-D points [N, 2], got shape {x.shape}.")
    if len(x) == 0:
        raise ValueError("mode_coverage needs at least one sample.")
    if expect_protocol_size and len(x) != PROTOCOL_SAMPLES:
        raise ValueError(f"The protocol uses {PROTOCOL_SAMPLES} samples, got {len(x)}.")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or inf (a diverged generator?).")
    d2 = np.sum((x[:, None, :] - mix.means[None, :, :]) ** 2, axis=-1)  # [N, K]
    nearest = d2.argmin(axis=1)
    dist = np.sqrt(d2[np.arange(len(x)), nearest])
    good = dist < threshold_sigmas * mix.sigma
    counts = np.bincount(nearest[good], minlength=len(mix.means)).astype(np.int64)
    return {
        "modes": int(np.count_nonzero(counts)),
        "num_modes": len(mix.means),
        "high_quality": float(good.mean()),
        "reverse_kl": _kl_to_uniform(counts),
        "jsd": _jsd_to_uniform(counts),
        "counts": counts,
    }


def high_quality_probability(threshold_sigmas: float = HIGH_QUALITY_SIGMAS) -> float:
    """P(|z| < t sigma) for a 2-D isotropic Gaussian: the chi-square(2) CDF, 1 - exp(-t^2 / 2).

    The expected high-quality fraction of true samples when the modes are far
    apart (1 - exp(-4.5) = 0.98889 at t = 3).
    """
    return 1.0 - math.exp(-0.5 * threshold_sigmas**2)
