"""The small classifier: a Flax CNN for few-label image classification.

Its 3x3 convolutions are computed as im2col patches times the kernel matrix
(`PatchConv`), with the same parameters and outputs as `nn.Conv(features, (3, 3))`:
the classifier trains many short runs as `lax.scan`s, and XLA:CPU (jax 0.10.2)
ran a convolution's training step inside a scan many times slower than the same
step outside one, while the patch form runs in the scan at outside-the-scan
speed (timings: experiments/results/classify_conv_in_scan/README.md).
Max-pooling is a reshape and max, for the same reason.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class PatchConv(nn.Module):
    """3x3 'SAME' convolution, stride 1, as patches @ kernel: `nn.Conv(features, (3, 3))`'s params and outputs."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        height, width = x.shape[1:3]
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # Patch channel order (di, dj, c) matches the kernel's [di, dj, c, out] layout.
        patches = jnp.concatenate([padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)], -1)
        return patches @ kernel.reshape(9 * in_features, self.features) + bias


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling, stride 2, 'VALID' (an odd last row/column is dropped), as `nn.max_pool`."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class SmallCNN(nn.Module):
    """Images [B, H, W, C] in [-1, 1] -> class logits [B, num_classes].

    Two 3x3 conv + ReLU layers per stage, 2x2 max-pooling between stages,
    global average pooling (so any image size >= 2^(stages-1) works), one
    hidden ReLU layer and a linear head. No BatchNorm or dropout, so a train
    step is a pure function of (params, batch) and evaluation needs no mode.

    Attributes:
      num_classes: number of output classes.
      widths: channels of each stage (one 2x2 pool between consecutive stages).
      hidden: units of the hidden dense layer.
    """

    num_classes: int = 10
    widths: tuple[int, ...] = (32, 64)
    hidden: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"SmallCNN expects images [B, H, W, C], got shape {x.shape}.")
        min_size = 2 ** (len(self.widths) - 1)
        if min(x.shape[1:3]) < min_size:
            raise ValueError(
                f"SmallCNN with {len(self.widths)} stages needs images of at least {min_size}x{min_size} "
                f"pixels, got {x.shape[1]}x{x.shape[2]}; use fewer widths or larger images."
            )
        for i, width in enumerate(self.widths):
            if i:
                x = max_pool_2x2(x)
            x = nn.relu(PatchConv(width, name=f"conv{i}a")(x))
            x = nn.relu(PatchConv(width, name=f"conv{i}b")(x))
        x = nn.relu(nn.Dense(self.hidden, name="hidden")(jnp.mean(x, axis=(1, 2))))
        return nn.Dense(self.num_classes, name="logits")(x)
