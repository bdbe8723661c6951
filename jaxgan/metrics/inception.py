"""The FID Inception network (TF inception-2015-12-05) in Flax, for feature extraction.

The architecture is Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception
Architecture for Computer Vision", arXiv:1512.00567) in the exact variant whose
TensorFlow graph `inception-2015-12-05` defines FID (Heusel et al. 2017,
arXiv:1706.08500), as re-implemented by pytorch-fid's `FIDInceptionA/C/E_1/E_2`
(src/pytorch_fid/inception.py). It differs from torchvision's Inception-v3 in:

- the 3x3 average pools of the A, C and E blocks' pool branches do NOT count
  the zero padding (count_include_pad=False);
- the last block (Mixed_7c, pytorch-fid's `FIDInceptionE_2`) max-pools in its pool
  branch;
- BatchNorm has no scale (gamma = 1) and eps = 1e-3.

Names follow torchvision / pytorch-fid (`Conv2d_1a_3x3`, `Mixed_5b/branch1x1`, ...),
so the mapping from any weights file is explicit (see `jaxgan.metrics.weights`).

The module is pure: it owns no weights. Pass the variables returned by
`jaxgan.metrics.weights.load_inception_params()`:

    feats = InceptionV3().apply(variables, images)  # images: float NHWC in [-1, 1]

Inputs are float NHWC, already resized (FID uses 299x299) and scaled to [-1, 1].
Outputs are the spatially averaged features of the chosen depth: 64, 192, 768
or 2048 (pytorch-fid's `dims`), shape [N, feature_dim]. Convolutions run at
HIGHEST precision so the port matches the reference to float32 rounding
(tests/metrics_inception_test.py; figures: experiments/results/fid_inception_cpu/).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# pytorch-fid's dims -> the stage whose output is averaged into features.
FEATURE_DIMS = (64, 192, 768, 2048)
BN_EPS = 1e-3  # TF inception-2015-12-05 BatchNorm epsilon.
NUM_CLASSES = 1008  # TF inception-2015-12-05's classifier (1000 ImageNet classes + 8 unused).


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm in inference mode (gamma = 1, eps = 1e-3) -> ReLU.

    Params: `kernel` [kh, kw, Cin, Cout] and `bias` (BN beta); batch_stats: `mean`
    and `var` (BN running statistics). Padding is explicit and symmetric, as in
    pytorch-fid's BasicConv2d (Ioffe & Szegedy 2015, arXiv:1502.03167, alg. 2 for BN).
    """

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (*self.kernel_size, x.shape[-1], c))
        beta = self.param("bias", nn.initializers.zeros, (c,))
        mean = self.variable("batch_stats", "mean", jnp.zeros, (c,)).value
        var = self.variable("batch_stats", "var", jnp.ones, (c,)).value
        ph, pw = self.padding
        y = lax.conv_general_dilated(
            x,
            kernel.astype(x.dtype),
            (self.strides, self.strides),
            ((ph, ph), (pw, pw)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=lax.Precision.HIGHEST,
        )
        y = (y - mean) * lax.rsqrt(var + BN_EPS) + beta
        return nn.relu(y)


def _avg_pool_3x3(x: jax.Array, include_pad: bool) -> jax.Array:
    # FID's blocks average over the valid pixels only (TF 'SAME' avg_pool semantics).
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=include_pad)


def _max_pool_3x3(x: jax.Array, *, strides: int, pad: int = 0) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(strides, strides), padding=((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: 35x35 block (Szegedy et al. 2016, fig. 5); pytorch-fid `FIDInceptionA`."""

    pool_features: int
    avg_pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        b1 = ConvBN(64, (1, 1), name="branch1x1")(x)
        b5 = ConvBN(48, (1, 1), name="branch5x5_1")(x)
        b5 = ConvBN(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = ConvBN(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = _avg_pool_3x3(x, self.avg_pool_include_pad)
        bp = ConvBN(self.pool_features, (1, 1), name="branch_pool")(bp)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: 35 -> 17 grid reduction (Szegedy et al. 2016, fig. 10); torchvision `InceptionB`."""

    @nn.compact
    def __call__(self, x):
        b3 = ConvBN(384, (3, 3), strides=2, name="branch3x3")(x)
        bd = ConvBN(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = ConvBN(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = ConvBN(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
        bp = _max_pool_3x3(x, strides=2)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
    """Mixed_6b..6e: 17x17 block with factorized 7x7 convs (Szegedy et al. 2016, fig. 6);
    pytorch-fid `FIDInceptionC`."""

    channels_7x7: int
    avg_pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = ConvBN(192, (1, 1), name="branch1x1")(x)
        b7 = ConvBN(c7, (1, 1), name="branch7x7_1")(x)
        b7 = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = ConvBN(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = ConvBN(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = ConvBN(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = _avg_pool_3x3(x, self.avg_pool_include_pad)
        bp = ConvBN(192, (1, 1), name="branch_pool")(bp)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: 17 -> 8 grid reduction; torchvision `InceptionD`."""

    @nn.compact
    def __call__(self, x):
        b3 = ConvBN(192, (1, 1), name="branch3x3_1")(x)
        b3 = ConvBN(320, (3, 3), strides=2, name="branch3x3_2")(b3)
        b7 = ConvBN(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = ConvBN(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = ConvBN(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = ConvBN(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
        bp = _max_pool_3x3(x, strides=2)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b/7c: 8x8 block with expanded filter banks (Szegedy et al. 2016, fig. 7).

    `pool="avg"` is pytorch-fid's `FIDInceptionE_1` (Mixed_7b, average pool not
    counting padding); `pool="max"` is `FIDInceptionE_2` (Mixed_7c), where the TF
    graph max-pools: a quirk of inception-2015-12-05 that FID inherits.
    """

    pool: str
    avg_pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        b1 = ConvBN(320, (1, 1), name="branch1x1")(x)
        b3 = ConvBN(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [
                ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
            ],
            axis=-1,
        )
        bd = ConvBN(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = ConvBN(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [
                ConvBN(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                ConvBN(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
            ],
            axis=-1,
        )
        if self.pool == "avg":
            bp = _avg_pool_3x3(x, self.avg_pool_include_pad)
        elif self.pool == "max":
            bp = _max_pool_3x3(x, strides=1, pad=1)
        else:
            raise ValueError(f"InceptionE pool must be 'avg' or 'max', got {self.pool!r}.")
        bp = ConvBN(192, (1, 1), name="branch_pool")(bp)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def _stage_sizes(size: int) -> list[int]:
    """Spatial size after each of the four stages (64, 192, 768, 2048 features)."""
    down = lambda s: (s - 3) // 2 + 1  # 3x3 stride-2 valid conv or pool
    s64 = down(down(size) - 2)  # Conv2d_1a (s2), 2a (valid), 2b (same), max pool (s2)
    s192 = down(s64 - 2)  # Conv2d_3b (1x1), 4a (valid), max pool (s2)
    s768 = down(s192)  # Mixed_5b..5d (same), Mixed_6a (s2), Mixed_6b..6e (same)
    s2048 = down(s768)  # Mixed_7a (s2), Mixed_7b, 7c (same)
    return [s64, s192, s768, s2048]


def min_input_size(feature_dim: int = 2048) -> int:
    """The smallest square input the network accepts for features of `feature_dim`."""
    stage = FEATURE_DIMS.index(feature_dim)
    size = 1
    while _stage_sizes(size)[stage] < 1:
        size += 1
    return size


class InceptionV3(nn.Module):
    """FID Inception-v3 feature extractor: [N, H, W, 3] in [-1, 1] -> [N, feature_dim].

    feature_dim: 2048 (the FID standard: Mixed_7c, global average pool), or 768 /
      192 / 64 (pytorch-fid's cheaper intermediate dims: after Mixed_6e, after the
      second max pool, after the first max pool), each spatially averaged. The
      network stops at the requested stage.
    avg_pool_include_pad: count padding in the blocks' 3x3 average pools. WRONG
      for FID (torchvision's behaviour); it exists only as a negative control.
    """

    feature_dim: int = 2048
    avg_pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.feature_dim not in FEATURE_DIMS:
            raise ValueError(f"feature_dim must be one of {FEATURE_DIMS} (pytorch-fid's dims), got {self.feature_dim}.")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"InceptionV3 expects float NHWC images [N, H, W, 3] in [-1, 1], got shape {x.shape}.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"InceptionV3 expects float images in [-1, 1], got {x.dtype}; convert uint8 as x / 127.5 - 1."
            )
        stage = FEATURE_DIMS.index(self.feature_dim)
        if min(_stage_sizes(min(x.shape[1:3]))[: stage + 1]) < 1:
            raise ValueError(
                f"Input {x.shape[1]}x{x.shape[2]} is too small for {self.feature_dim}-d features; need at least "
                f"{min_input_size(self.feature_dim)}x{min_input_size(self.feature_dim)} (FID resizes to 299x299)."
            )
        pad = self.avg_pool_include_pad
        pool = lambda y: jnp.mean(y, axis=(1, 2))

        x = ConvBN(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
        x = ConvBN(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = ConvBN(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3(x, strides=2)
        if self.feature_dim == 64:
            return pool(x)
        x = ConvBN(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = ConvBN(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3(x, strides=2)
        if self.feature_dim == 192:
            return pool(x)
        x = InceptionA(32, pad, name="Mixed_5b")(x)
        x = InceptionA(64, pad, name="Mixed_5c")(x)
        x = InceptionA(64, pad, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, pad, name="Mixed_6b")(x)
        x = InceptionC(160, pad, name="Mixed_6c")(x)
        x = InceptionC(160, pad, name="Mixed_6d")(x)
        x = InceptionC(192, pad, name="Mixed_6e")(x)
        if self.feature_dim == 768:
            return pool(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE("avg", pad, name="Mixed_7b")(x)
        x = InceptionE("max", pad, name="Mixed_7c")(x)
        return pool(x)


def classifier_logits(fc: dict, features: jax.Array) -> jax.Array:
    """The 1008-way logits of inception-2015-12-05 from 2048-d pool features.

    `fc` is `{"kernel": [2048, 1008], "bias": [1008]}` (the `fc` entry that
    `load_inception_params` returns when the weights file has the classifier,
    i.e. pytorch-fid's .pth); softmax over these is what the Inception Score uses
    (Salimans et al. 2016, arXiv:1606.03498, sec. 4).
    """
    if features.ndim != 2 or features.shape[-1] != 2048:
        raise ValueError(f"classifier_logits needs 2048-d pool features [N, 2048], got {features.shape}.")
    return jnp.dot(features, fc["kernel"], precision=lax.Precision.HIGHEST) + fc["bias"]


def param_shapes(feature_dim: int = 2048) -> dict:
    """The variables tree's shapes ({'params': ..., 'batch_stats': ...}) without allocating them."""
    model = InceptionV3(feature_dim=feature_dim)
    size = min_input_size(feature_dim)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))


def conv_names(tree: dict) -> Sequence[str]:
    """'Mixed_5b/branch1x1'-style names of the ConvBN layers in a params tree, in tree order."""
    names = []

    def walk(node, prefix):
        if "kernel" in node:
            names.append(prefix)
            return
        for k, v in node.items():
            walk(v, f"{prefix}/{k}" if prefix else k)

    walk(tree, "")
    return names
