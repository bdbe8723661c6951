"""DCGAN (Radford, Metz & Chintala 2016, arXiv:1511.06434) at 32 and 64 px.

G: a projection of z to 4x4, then stride-2 transposed convs with BatchNorm+ReLU,
tanh out. D: stride-2 convs with LeakyReLU(0.2), BatchNorm on all but the first,
no pooling, a linear logit. BatchNorm is cross-replica over `bn_axis_name` in
training, so a data-parallel step sees the statistics of the global batch.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.common import DATA_AXIS
from jaxgan.nets.layers import SubPixelConvTranspose

SUPPORTED_SIZES = (32, 64)


def _num_resolution_steps(image_size: int) -> int:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"DCGAN supports image_size in {SUPPORTED_SIZES}, got {image_size}; "
            "resize the data or pick another architecture."
        )
    return int(math.log2(image_size // 4))


def _transposed_conv(form: str, features: int, use_bias: bool, dtype: Any, name: str) -> nn.Module:
    """A 4x4 stride-2 'SAME' transposed conv; both forms have the same params and outputs."""
    if form == "subpixel":
        return SubPixelConvTranspose(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "transpose":
        return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                                dtype=dtype, name=name)
    raise ValueError(f"Unknown transposed-conv form {form!r}; valid: 'subpixel', 'transpose'.")


def _batch_norm(train: bool, axis_name: str | None, dtype: Any) -> nn.BatchNorm:
    # PyTorch's BatchNorm2d defaults (momentum 0.1 there is 0.9 here, eps 1e-5).
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=axis_name if train else None,
        dtype=dtype,
    )


class DCGANGenerator(nn.Module):
    """Latent [B, latent_dim] -> images [B, size, size, channels] in [-1, 1].

    `upsample` picks how the transposed convs are computed: "subpixel" (one conv
    + depth-to-space, fast on CPU) or "transpose" (lax.conv_transpose); the two
    have identical parameters and outputs.
    """

    latent_dim: int = 100
    image_size: int = 32
    channels: int = 3
    ngf: int = 64
    upsample: str = "subpixel"
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        n_up = _num_resolution_steps(self.image_size)
        width = self.ngf * 2 ** (n_up - 1)
        h = nn.Dense(4 * 4 * width, use_bias=False, dtype=self.dtype)(z.astype(self.dtype))
        h = h.reshape(z.shape[0], 4, 4, width)
        h = nn.relu(_batch_norm(train, self.bn_axis_name, self.dtype)(h))
        for i in range(n_up - 1):
            width //= 2
            h = _transposed_conv(self.upsample, width, False, self.dtype, f"up{i}")(h)
            h = nn.relu(_batch_norm(train, self.bn_axis_name, self.dtype)(h))
        h = _transposed_conv(self.upsample, self.channels, True, self.dtype, "to_image")(h)
        return jnp.tanh(h).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
    """Images [B, size, size, channels] -> logits [B]."""

    image_size: int = 32
    ndf: int = 64
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        n_down = _num_resolution_steps(self.image_size)
        h = x.astype(self.dtype)
        width = self.ndf
        for i in range(n_down):
            h = nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME",
                        use_bias=(i == 0), dtype=self.dtype, name=f"down{i}")(h)
            if i > 0:
                h = _batch_norm(train, self.bn_axis_name, self.dtype)(h)
            h = nn.leaky_relu(h, 0.2)
            width *= 2
        h = h.reshape(h.shape[0], -1)  # 4x4 features -> one logit: DCGAN's final 4x4 valid conv
        return nn.Dense(1, dtype=self.dtype, name="logit")(h).astype(jnp.float32)[:, 0]
