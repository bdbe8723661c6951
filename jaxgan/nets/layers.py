"""Shared building blocks of the architectures."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _same_padding_before(kernel: int, stride: int) -> int:
    # lax.conv_transpose's 'SAME' padding of the stride-dilated input (jax._src.lax.convolution).
    return kernel - 1 if stride > kernel - 1 else int(np.ceil((kernel + stride - 2) / 2))


def subpixel_taps(kernel: int, stride: int) -> tuple[int, np.ndarray]:
    """How a 1-D 'SAME' transposed conv splits into `stride` ordinary convs.

    Output position s*m + p equals sum_k x[m + d] * w[k] over the taps k with
    p + k - pad = s * d. Returns (d_min, table) where table[p, j] is the index
    k of the kernel tap that phase p applies at input offset d_min + j, or -1
    where the phase has no tap there.
    """
    pad = _same_padding_before(kernel, stride)
    hits = [(p, (p + k - pad) // stride, k) for p in range(stride) for k in range(kernel)
            if (p + k - pad) % stride == 0]
    d_min = min(d for _, d, _ in hits)
    width = max(d for _, d, _ in hits) - d_min + 1
    table = -np.ones((stride, width), np.int32)
    for p, d, k in hits:
        table[p, d - d_min] = k
    return d_min, table


def _phase_kernel(kernel: jax.Array, stride: int) -> tuple[jax.Array, int, int]:
    """[k, k, Cin, Cout] transposed-conv kernel -> [w, w, Cin, s*s*Cout] conv kernel."""
    k, _, c_in, c_out = kernel.shape
    d_min, table = subpixel_taps(k, stride)
    width = table.shape[1]
    # Gather the taps with a zero row appended for "no tap" (index -1 -> k).
    padded = jnp.concatenate([kernel, jnp.zeros((1, k, c_in, c_out), kernel.dtype)], axis=0)
    padded = jnp.concatenate([padded, jnp.zeros((k + 1, 1, c_in, c_out), kernel.dtype)], axis=1)
    rows = np.where(table < 0, k, table)  # [s, w]
    # out[a, b, cin, py, px, cout] = kernel[rows[py, a], rows[px, b], cin, cout]
    gathered = padded[rows.T[:, None, :, None], rows.T[None, :, None, :]]  # [w, w, s, s, Cin, Cout]
    gathered = jnp.transpose(gathered, (0, 1, 4, 2, 3, 5)).reshape(width, width, c_in, stride * stride * c_out)
    return gathered, -d_min, width - 1 + d_min


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """[B, H, W, b*b*C] -> [B, b*H, b*W, C], channel order (row phase, column phase, C)."""
    b, h, w, c = x.shape
    c_out = c // (block * block)
    x = x.reshape(b, h, w, block, block, c_out)
    return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(b, h * block, w * block, c_out)


class SubPixelConvTranspose(nn.Module):
    """`nn.ConvTranspose(features, (k, k), strides=(s, s), padding='SAME')`, computed
    as one ordinary convolution to s*s*features channels plus depth-to-space.

    Same parameters (names, shapes, init) and the same outputs as the Flax layer,
    but XLA lowers an ordinary convolution and its gradients to far faster code
    than a transposed one on CPU (see tools/bench.py).
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    use_bias: bool = True
    dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        phase_kernel, pad_lo, pad_hi = _phase_kernel(kernel.astype(self.dtype), s)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), phase_kernel, window_strides=(1, 1),
            padding=((pad_lo, pad_hi), (pad_lo, pad_hi)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = depth_to_space(y, s)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y
