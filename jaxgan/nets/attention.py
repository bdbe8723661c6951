"""Self-attention over the positions of a feature map (SAGAN), as BigGAN places it in G and D.

Zhang, Goodfellow, Metaxas & Odena 2019 (SAGAN, arXiv:1805.08318, sec. 3), in the form of BigGAN's
reference code (Brock, Donahue & Simonyan 2019, arXiv:1809.11096; `layers.Attention`): for x [B, H, W, C],

    theta = x W_theta               [B, HW, C/8]    (1x1 convolutions, no bias)
    phi   = maxpool2(x W_phi)       [B, HW/4, C/8]  (keys and values max-pooled 2x2: a quarter of the cost)
    g     = maxpool2(x W_g)         [B, HW/4, C/2]
    beta  = softmax_keys(theta phi^T)               [B, HW, HW/4]
    o     = (beta g) W_o            [B, HW, C]
    y     = x + gamma o,  gamma a learned scalar starting at 0,

so a network with the block starts as the same network without it and learns how much non-local
evidence to mix in. The four convolutions go through spectral norm when asked (SAGAN: in G and D).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.common import DATA_AXIS
from jaxgan.nets.layers import apply_layer


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (module docstring): [B, H, W, C] -> [B, H, W, C]; H, W even, C >= 8."""

    spectral_norm: bool = False
    bn_axis_name: str | None = DATA_AXIS  # where spectral norm keeps its power iterates replicated
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        b, h, w, c = x.shape
        if c < 8 or c % 8 or h % 2 or w % 2:
            raise ValueError(
                f"SelfAttention needs channels divisible by 8 and an even height and width, got {x.shape}; "
                "place it at another resolution."
            )
        init = nn.initializers.xavier_uniform()

        def conv(features: int, name: str, h_in: jax.Array) -> jax.Array:
            layer = nn.Conv(features, (1, 1), use_bias=False, kernel_init=init, dtype=self.dtype, name=name)
            return apply_layer(layer, h_in, spectral_norm=self.spectral_norm, train=train, axis_name=self.bn_axis_name)

        pool = lambda t: nn.max_pool(t, (2, 2), strides=(2, 2))
        theta = conv(c // 8, "theta", x).reshape(b, h * w, c // 8)
        phi = pool(conv(c // 8, "phi", x)).reshape(b, h * w // 4, c // 8)
        g = pool(conv(c // 2, "g", x)).reshape(b, h * w // 4, c // 2)
        beta = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi).astype(jnp.float32), axis=-1)
        attended = jnp.einsum("bqk,bkc->bqc", beta.astype(g.dtype), g).reshape(b, h, w, c // 2)
        o = conv(c, "o", attended)
        gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
        return x + (gamma * o).astype(x.dtype)
