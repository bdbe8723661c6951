"""The classic fully connected GAN of the tutorials (Goodfellow et al. 2014).

G maps a latent vector to a sample of any shape (a 2-D point, a flattened 28x28
image, ...); D maps a sample to one logit.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPGenerator(nn.Module):
    """Latent [B, latent_dim] -> sample [B, *out_shape].

    Attributes:
      latent_dim: size of the latent vector z ~ N(0, I).
      out_shape: shape of one sample, e.g. (2,) for 2-D mixtures, (28, 28, 1).
      hidden: width of each hidden layer.
      depth: number of hidden layers.
      tanh_output: squash to [-1, 1] (images); off for unbounded data (points).
    """

    latent_dim: int = 64
    out_shape: tuple[int, ...] = (2,)
    hidden: int = 128
    depth: int = 2
    tanh_output: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        del train  # no BatchNorm or dropout
        h = z.astype(self.dtype)
        for _ in range(self.depth):
            h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(h))
        h = nn.Dense(math.prod(self.out_shape), dtype=self.dtype)(h)
        if self.tanh_output:
            h = jnp.tanh(h)
        return h.astype(jnp.float32).reshape(z.shape[:-1] + tuple(self.out_shape))


class MLPDiscriminator(nn.Module):
    """Sample [B, ...] -> logit [B], LeakyReLU(0.2) hidden layers."""

    hidden: int = 128
    depth: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        h = x.reshape(x.shape[0], -1).astype(self.dtype)
        for _ in range(self.depth):
            h = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype)(h), 0.2)
        return nn.Dense(1, dtype=self.dtype)(h).astype(jnp.float32)[:, 0]
