"""A shipped digits classifier, Stacked-digits mode counting and a domain Frechet distance.

Stacked MNIST (Metz, Poole, Pfau & Sohl-Dickstein 2017, arXiv:1611.02163;
Srivastava et al. 2017, arXiv:1705.07761) stacks three random MNIST digits in the RGB
channels, giving 10^3 = 1000 modes; a pretrained classifier labels each channel
of 26,000 generated samples, and the metrics are the number of distinct
(d_R, d_G, d_B) triples and KL(generated mode histogram || uniform). Here the
digits are scikit-learn's 8x8 `load_digits()`, so everything runs offline.

The classifier (`DigitsCNN`, ~28k parameters) is trained by
`tools/train_digits_classifier.py` and its parameters ship in
`assets/digits_classifier.msgpack`, with the held-out accuracy and the exact
recipe in `assets/digits_classifier.json`. Its inputs match jaxgan's GAN data
exactly: the digits are converted to uint8 as `jaxgan.data.digits` does
(round(v * 255 / 16)), upsampled from 8x8 to 32x32 with the bilinear,
antialiased resize of `jaxgan.data.pipeline.resize_and_convert` (here
`jax.image.resize`, bit-identical on these images; tested), and scaled to
[-1, 1]. The train/held-out split is the `sklearn_digits` TFDS split (within a
class, every 5th example is held out: 1442 / 355).

This module never imports `jaxgan.data` (metrics sit below the data layer); the
equivalence of both conversions is checked in tests/metrics_digits_test.py.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.metrics.stats import feature_stats, frechet_distance

IMAGE_SIZE = 32  # the size the classifier was trained at (jaxgan's default GAN size)
NUM_CLASSES = 10
NUM_STACKED_MODES = NUM_CLASSES**3
STACKED_PROTOCOL_SAMPLES = 26_000  # Srivastava et al. 2017; Lin et al. 2018 (PacGAN)
FEATURE_DIM = 64
ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
PARAMS_PATH = os.path.join(ASSETS_DIR, "digits_classifier.msgpack")
INFO_PATH = os.path.join(ASSETS_DIR, "digits_classifier.json")
_HELD_OUT_EVERY = 5  # as jaxgan.data.digits: within a class, every 5th example is held out
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as jaxgan.data.pipeline's 3 -> 1 conversion
_BATCH = 512  # images per classifier call; the last chunk is padded so jit compiles once


# ----------------------------------------------------------------------------
# Data: scikit-learn digits exactly as jaxgan's data pipeline sees them.


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 sklearn digits as (uint8 [N, 8, 8] with round(v * 255 / 16), int64 labels [N])."""
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

    d = load_digits()
    v = np.asarray(d.images).astype(np.int64)  # exact integers 0..16
    return ((v * 255 + 8) // 16).astype(np.uint8), np.asarray(d.target, np.int64)


def split_rows(labels: np.ndarray, split: str) -> np.ndarray:
    """Ascending rows of `split` ('train' or 'test'): within each class, every 5th is 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rank[rows] = np.arange(len(rows))
    is_test = rank % _HELD_OUT_EVERY == _HELD_OUT_EVERY - 1
    return np.flatnonzero(is_test if split == "test" else ~is_test)


@functools.partial(jax.jit, static_argnums=1)
def _resize(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Bilinear with antialiasing: TF's resize(method='bilinear', antialias=True) kernel."""
    return jax.image.resize(x, shape, "linear", antialias=True)


def upsample_uint8(images: np.ndarray, *, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 [N, h, w] -> uint8 [N, image_size, image_size]: bilinear, antialiased, rounded.

    The same resize as `jaxgan.data.pipeline.resize_and_convert` (TF's bilinear
    with half-pixel centres and antialiasing; `jax.image.resize` 'linear' with
    antialias=True computes the same scale-and-translate kernel).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"Expected uint8 images [N, H, W], got {images.dtype} {images.shape}.")
    if images.shape[1:] == (image_size, image_size):
        return images.copy()
    x = _resize(jnp.asarray(images, jnp.float32), (len(images), image_size, image_size))
    return np.asarray(jnp.clip(jnp.round(x), 0, 255)).astype(np.uint8)


def load_split(split: str, *, image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One split of the digits as (uint8 [N, image_size, image_size], int64 labels [N])."""
    images, labels = _all_digits(image_size)
    rows = split_rows(labels, split)
    return images[rows], labels[rows]


@functools.cache
def _all_digits(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits_uint8()
    images = upsample_uint8(images, image_size=image_size)
    images.flags.writeable = False  # cached: callers get read-only views
    labels.flags.writeable = False
    return images, labels


def make_stacked_digits(
    num_samples: int, *, seed: int, split: str = "train", image_size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Real Stacked-digits samples: uint8 [N, S, S, 3] and their mode ids in [0, 1000).

    Each channel is an independent, uniformly drawn digit of `split` (as Stacked
    MNIST draws three random MNIST images); mode id = 100 d_R + 10 d_G + d_B.
    Seeded with numpy's default_rng(seed). Images are uint8 as jaxgan's data
    loaders give them (`jaxgan.common.to_model_range` maps them to [-1, 1]).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    images, labels = load_split(split, image_size=image_size)
    idx = np.random.default_rng(seed).integers(0, len(images), size=(num_samples, 3))
    stacked = np.stack([images[idx[:, c]] for c in range(3)], axis=-1)
    modes = labels[idx] @ np.array([100, 10, 1])
    return stacked, modes.astype(np.int64)


# ----------------------------------------------------------------------------
# The classifier.


class DigitsCNN(nn.Module):
    """[B, 32, 32, 1] in [-1, 1] -> (logits [B, 10], features [B, 64]).

    Three 3x3 conv + ReLU stages with 2x2 max-pooling between them, global
    average pooling (the analogue of Inception's pool3), a 64-unit ReLU layer
    whose output is the feature vector used for the Frechet distance, and a
    linear classifier. (In the shipped weights some feature units are 0 on every
    real digit, so feature covariances are singular; `stats.frechet_distance`
    handles that exactly. Counts: experiments/results/digits_classifier_reference/.)
    """

    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = FEATURE_DIM

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for i, width in enumerate(self.widths):
            if i:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.relu(nn.Conv(width, (3, 3), name=f"conv{i}")(x))
        features = nn.relu(nn.Dense(self.hidden, name="hidden")(jnp.mean(x, axis=(1, 2))))
        return nn.Dense(NUM_CLASSES, name="logits")(features), features


def init_params(seed: int = 0) -> Any:
    """Freshly initialised DigitsCNN parameters (eager, as the shipped ones were made)."""
    x = jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), jnp.float32)
    return DigitsCNN().init(jax.random.key(seed), x)["params"]


def _param_shapes() -> Any:
    x = jax.ShapeDtypeStruct((1, IMAGE_SIZE, IMAGE_SIZE, 1), jnp.float32)
    return jax.eval_shape(DigitsCNN().init, jax.random.key(0), x)["params"]


@functools.cache
def load_params(path: str = PARAMS_PATH) -> Any:
    """The shipped (or a given) msgpack of DigitsCNN parameters, shape-checked."""
    from flax import serialization  # pylint: disable=g-import-not-at-top

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No digits classifier parameters at {path}. They ship with jaxgan "
            "(jaxgan/metrics/assets/); regenerate them with `python tools/train_digits_classifier.py`."
        )
    with open(path, "rb") as f:
        params = serialization.msgpack_restore(f.read())
    want = jax.tree_util.tree_map(lambda s: (tuple(s.shape), str(s.dtype)), _param_shapes())
    got = jax.tree_util.tree_map(lambda a: (tuple(np.shape(a)), str(np.asarray(a).dtype)), params)
    if got != want:
        raise ValueError(
            f"{path} does not hold DigitsCNN parameters (shapes {got}, expected {want}); "
            "regenerate it with `python tools/train_digits_classifier.py`."
        )
    return jax.tree_util.tree_map(jnp.asarray, params)


def classifier_info(path: str = INFO_PATH) -> dict[str, Any]:
    """The JSON written beside the parameters: held-out accuracy and training recipe."""
    with open(path) as f:
        return json.load(f)


@jax.jit
def _apply(params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return DigitsCNN().apply({"params": params}, x)


def _as_unit_range(images: Any, what: str) -> np.ndarray:
    """uint8 [0, 255] or float [-1, 1] -> float32 [-1, 1], same shape."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{what} must be uint8 in [0, 255] or float in [-1, 1], got {images.dtype}.")
    images = images.astype(np.float32)
    if images.size and (not np.isfinite(images).all() or images.min() < -1.01 or images.max() > 1.01):
        raise ValueError(
            f"{what} are float but not in [-1, 1] (min {np.nanmin(images):.3g}, max {np.nanmax(images):.3g}); "
            "pass G's tanh output as is, or uint8 images in [0, 255]."
        )
    return images


def _single_channel(images: Any, what: str) -> np.ndarray:
    """[N, H, W] / [N, H, W, 1] / [N, H, W, 3] (luma) -> float32 [N, 32, 32, 1] in [-1, 1]."""
    x = _as_unit_range(images, what)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be [N, H, W] or [N, H, W, C] with C in (1, 3), got {x.shape}.")
    if min(x.shape[1:3]) < 8:
        raise ValueError(
            f"{what} of {x.shape[1]}x{x.shape[2]} px are smaller than the 8x8 digits; a single image "
            f"needs a leading batch axis ([1, H, W, C]). Got shape {x.shape}."
        )
    if x.shape[-1] == 3:
        x = x @ np.asarray(_LUMA, np.float32)[:, None]
    return _resize_to_classifier(x)


def _resize_to_classifier(x: np.ndarray) -> np.ndarray:
    """float [N, H, W, 1] -> [N, 32, 32, 1], bilinear antialiased (the data pipeline's resize)."""
    if x.shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE):
        return x
    return np.asarray(_resize(jnp.asarray(x), (len(x), IMAGE_SIZE, IMAGE_SIZE, 1)))


def classify(images: Any, *, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Digit logits [N, 10] and 64-d penultimate features [N, 64] of single digits.

    `images`: uint8 in [0, 255] or float in [-1, 1], shaped [N, H, W], [N, H, W, 1]
    or [N, H, W, 3] (RGB is reduced to ITU-R 601 luma, as the data pipeline's
    3 -> 1 conversion does; identical channels pass through unchanged). Sizes
    other than 32x32 are resized bilinearly with antialiasing. `params`: the
    shipped classifier by default.
    """
    x = _single_channel(images, "images")
    params = load_params() if params is None else params
    logits, feats = [], []
    for i in range(0, len(x), _BATCH):
        chunk = x[i : i + _BATCH]
        padded = np.pad(chunk, ((0, _BATCH - len(chunk)), (0, 0), (0, 0), (0, 0)))
        lo, fe = _apply(params, jnp.asarray(padded))
        logits.append(np.asarray(lo)[: len(chunk)])
        feats.append(np.asarray(fe)[: len(chunk)])
    if not logits:
        return np.zeros((0, NUM_CLASSES), np.float32), np.zeros((0, FEATURE_DIM), np.float32)
    return np.concatenate(logits), np.concatenate(feats)


def _channels(images: Any, what: str) -> list[np.ndarray]:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{what} must be stacked digits [N, H, W, 3] (one digit per channel), got shape {x.shape}.")
    return [x[..., c] for c in range(3)]


def stacked_digits_modes(images: Any, *, params: Any = None, expect_protocol_size: bool = False) -> dict[str, Any]:
    """Modes captured and KL(mode histogram || uniform) on Stacked digits.

    Each channel of `images` ([N, H, W, 3], uint8 or float in [-1, 1]) is
    classified separately; mode = 100 d_R + 10 d_G + d_B in [0, 1000). As in
    the Stacked MNIST protocol (Srivastava et al. 2017, arXiv:1705.07761; Lin
    et al. 2018, arXiv:1712.04086, tables 2-3, whose released code computes
    KL = sum_i p_i log(p_i / q_i) over modes with p_i > 0, q uniform over 1000),
    `modes` counts distinct predicted triples and `kl` is KL(p_gen || uniform)
    over all N samples; the protocol uses N = 26,000 (`expect_protocol_size=True`
    enforces it). Also returns `counts` [1000] and `num_samples`.

    Real stacked samples (`make_stacked_digits`) score all modes and a small
    KL above 0 (multinomial noise plus the classifier's errors): the floor of
    the protocol, in experiments/results/digits_classifier_reference/README.md.
    """
    channels = _channels(images, "images")
    n = len(channels[0])
    if n == 0:
        raise ValueError("stacked_digits_modes needs at least one image.")
    if expect_protocol_size and n != STACKED_PROTOCOL_SAMPLES:
        raise ValueError(f"The protocol uses {STACKED_PROTOCOL_SAMPLES} samples, got {n}.")
    digits = [classify(ch, params=params)[0].argmax(-1) for ch in channels]
    modes = 100 * digits[0] + 10 * digits[1] + digits[2]
    counts = np.bincount(modes, minlength=NUM_STACKED_MODES)
    return {
        "modes": int(np.count_nonzero(counts)),
        "kl": kl_to_uniform(counts),
        "counts": counts,
        "num_samples": n,
    }


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) for p = counts / sum(counts), with 0 log 0 = 0 (nats)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


# ----------------------------------------------------------------------------
# Domain Frechet distance on the classifier's features.


def digits_features(images: Any, *, stacked: bool = False, params: Any = None) -> np.ndarray:
    """Penultimate classifier features: [N, 64], or [N, 192] per-channel concatenated if `stacked`."""
    if stacked:
        return np.concatenate([classify(ch, params=params)[1] for ch in _channels(images, "images")], axis=1)
    return classify(images, params=params)[1]


def frechet_digits_distance(images_a: Any, images_b: Any, *, stacked: bool = False, params: Any = None) -> float:
    """ "FCD": the Frechet distance between DigitsCNN penultimate features of two image sets.

    FID's formula (Heusel et al. 2017, arXiv:1706.08500, eq. 6) on a domain
    classifier instead of Inception, as the Frechet ChemNet Distance does for
    molecules (Preuer et al. 2018, arXiv:1803.09518). Compare it with
    `frechet_digits_floor`, the same number between real train and held-out
    digits. Values depend on the sample count (the estimator is biased), so
    compare at equal N.
    """
    a = feature_stats(digits_features(images_a, stacked=stacked, params=params))
    b = feature_stats(digits_features(images_b, stacked=stacked, params=params))
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def frechet_digits_floor(
    *, stacked: bool = False, num_samples: int = 10_000, seed: int = 0, params: Any = None
) -> float:
    """The real-vs-real FCD: train split vs held-out split, computed as `frechet_digits_distance`.

    Plain digits: all 1442 train vs all 355 held-out images. Stacked: two sets
    of `num_samples` stacked samples, from the train and from the held-out
    digits (seeds `seed` and `seed + 1`).
    """
    if stacked:
        a, _ = make_stacked_digits(num_samples, seed=seed, split="train")
        b, _ = make_stacked_digits(num_samples, seed=seed + 1, split="test")
    else:
        a, _ = load_split("train")
        b, _ = load_split("test")
    return frechet_digits_distance(a, b, stacked=stacked, params=params)
