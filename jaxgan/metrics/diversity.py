"""Sample diversity as mean pairwise MS-SSIM (lower = more diverse).

SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, IEEE TIP 13(4), eq. 13) with an
11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, on the 'valid' region
(no padding, as the authors' MATLAB `ssim_index` and tf.image.ssim), local
(co)variances with the population normalisation E[x^2] - E[x]^2.

MS-SSIM (Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for
image quality assessment", Asilomar Conf. on Signals, Systems and Computers):
prod_{j=1}^{M} cs_j^{w_j} * l_M^{w_M} with the five standard weights
w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); between scales the images are
2x2 average-pooled (an odd side is first padded by repeating its last
row/column, as tf.image.ssim_multiscale pads SYMMETRIC). As
tf.image.ssim_multiscale does, cs_j and the final SSIM are clamped at 0 before
the fractional powers.

Small images (our choice, documented): the 11x11 window must fit inside every
scale, so an image of side s gets M = the largest number of scales <= 5 with
ceil(s / 2^(M-1)) >= 11 (the side after M - 1 halvings), and the weights used
are w_1..w_M renormalised to sum to 1. That is 2 scales from 21 px (32 px:
32 and 16), 3 from 41 px (64 px), 4 from 81 px (128 px) and all 5 from 161 px,
the size tf.image.ssim_multiscale needs for 5 scales. Images smaller than 11 px
raise. (Shrinking the window instead would change what SSIM measures at every
scale; dropping the coarsest scales only drops structure as large as the image.)
Report `num_scales(H, W)` with the number.

Diversity (Odena, Olah & Shlens 2017, "Conditional Image Synthesis with
Auxiliary Classifier GANs", arXiv:1610.09585, sec. 4.2): the mean MS-SSIM over
random pairs of distinct samples; compare it with the same number on real data.
Colour images are scored per channel and averaged over channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
_PIXELS_PER_BATCH = 2**20  # bounds the window temporaries to ~100 MB


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of [..., H, W, C] with the window g (x) g."""
    s = len(g)
    x = np.lib.stride_tricks.sliding_window_view(x, s, axis=-3) @ g  # [..., H-s+1, W, C]
    return np.lib.stride_tricks.sliding_window_view(x, s, axis=-2) @ g  # [..., H-s+1, W-s+1, C]


def _ssim_cs(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term per image and channel, for x, y in [0, 1]."""
    c1, c2 = K1**2, K2**2  # dynamic range L = 1
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    syy = _filter_valid(y * y, g) - mu_y**2
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    cs = (2.0 * sxy + c2) / (sxx + syy + c2)
    lum = (2.0 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).mean(axis=(-3, -2)), cs.mean(axis=(-3, -2))


def _downsample(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling of [..., H, W, C]; odd sides padded by repeating the last row/column."""
    h, w = x.shape[-3], x.shape[-2]
    pad = [(0, 0)] * (x.ndim - 3) + [(0, h % 2), (0, w % 2), (0, 0)]
    x = np.pad(x, pad, mode="edge")
    return 0.25 * (x[..., 0::2, 0::2, :] + x[..., 1::2, 0::2, :] + x[..., 0::2, 1::2, :] + x[..., 1::2, 1::2, :])


def num_scales(
    height: int, width: int, *, max_scales: int = len(MSSSIM_WEIGHTS), window_size: int = WINDOW_SIZE
) -> int:
    """How many scales fit: the window must fit inside the image at every scale (module doc)."""
    side = min(height, width)
    if side < window_size:
        raise ValueError(
            f"Images of {height}x{width} are smaller than the {window_size}x{window_size} SSIM window; "
            f"MS-SSIM needs sides >= {window_size} (upsample the images, or pass a smaller window_size)."
        )
    m = 1
    while m < max_scales and -(-side // 2**m) >= window_size:
        m += 1
    return m


def _to_unit(images: Any, name: str) -> np.ndarray:
    """uint8 [0, 255] or float [-1, 1] images [..., H, W, C] -> float64 in [0, 1]."""
    x = np.asarray(images)
    if x.ndim < 3:
        raise ValueError(f"{name} must be images [..., H, W, C], got shape {x.shape}.")
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be uint8 in [0, 255] or float in [-1, 1], got {x.dtype}.")
    x = x.astype(np.float64)
    if x.size and (not np.isfinite(x).all() or x.min() < -1.01 or x.max() > 1.01):
        raise ValueError(
            f"{name} are float but not in [-1, 1] (jaxgan's image range); pass G's output as is or uint8 images."
        )
    return (np.clip(x, -1.0, 1.0) + 1.0) / 2.0


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _to_unit(a, "a"), _to_unit(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"The two image batches differ in shape: {x.shape} vs {y.shape}.")
    return x, y


def ssim(a: Any, b: Any, *, window_size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> np.ndarray:
    """Mean SSIM of image pairs [..., H, W, C] (uint8 or float in [-1, 1]) -> [...], channel-averaged."""
    x, y = _pair(a, b)
    num_scales(x.shape[-3], x.shape[-2], max_scales=1, window_size=window_size)  # size check
    return _ssim_cs(x, y, gaussian_window(window_size, sigma))[0].mean(axis=-1)


def ms_ssim(
    a: Any,
    b: Any,
    *,
    max_scales: int = len(MSSSIM_WEIGHTS),
    window_size: int = WINDOW_SIZE,
    sigma: float = WINDOW_SIGMA,
) -> np.ndarray:
    """MS-SSIM of image pairs [..., H, W, C] -> [...] (module docstring: scales, weights, clamping)."""
    if not 1 <= max_scales <= len(MSSSIM_WEIGHTS):
        raise ValueError(f"max_scales must be in [1, {len(MSSSIM_WEIGHTS)}], got {max_scales}.")
    x, y = _pair(a, b)
    m = num_scales(x.shape[-3], x.shape[-2], max_scales=max_scales, window_size=window_size)
    w = np.asarray(MSSSIM_WEIGHTS[:m])
    w = w / w.sum()
    g = gaussian_window(window_size, sigma)
    out = np.ones(x.shape[:-3] + x.shape[-1:])
    for j in range(m):
        s, cs = _ssim_cs(x, y, g)
        term = s if j == m - 1 else cs
        out = out * np.maximum(term, 0.0) ** w[j]
        if j < m - 1:
            x, y = _downsample(x), _downsample(y)
    return out.mean(axis=-1)


def msssim_diversity(
    images: Any, *, num_pairs: int = 1000, seed: int = 0, max_scales: int = len(MSSSIM_WEIGHTS)
) -> float:
    """Mean MS-SSIM over `num_pairs` random pairs of distinct images [N, H, W, C] (lower = more diverse).

    Pairs: numpy default_rng(seed) draws i uniformly and j uniformly among the
    other N - 1 images (so i != j), num_pairs times. Compare with the same call
    on real images (`msssim_diversity_vs_real`).
    """
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {x.shape}.")
    if len(x) < 2:
        raise ValueError(f"Need at least 2 images to form pairs, got {len(x)}.")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), size=num_pairs)
    j = (i + rng.integers(1, len(x), size=num_pairs)) % len(x)
    per_batch = max(1, _PIXELS_PER_BATCH // int(np.prod(x.shape[1:])))
    scores = [
        ms_ssim(x[i[s : s + per_batch]], x[j[s : s + per_batch]], max_scales=max_scales)
        for s in range(0, num_pairs, per_batch)
    ]
    return float(np.concatenate(scores).mean())


def msssim_diversity_vs_real(
    fake_images: Any, real_images: Any, *, num_pairs: int = 1000, seed: int = 0
) -> dict[str, float]:
    """{'fake', 'real'}: `msssim_diversity` of generated and of real images, same pairs protocol."""
    return {
        "fake": msssim_diversity(fake_images, num_pairs=num_pairs, seed=seed),
        "real": msssim_diversity(real_images, num_pairs=num_pairs, seed=seed),
    }
