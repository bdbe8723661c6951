"""Video GAN networks in the MoCoGAN style: latent path, per-frame generator, video and image Ds.

Videos are [B, T, H, W, C] in [-1, 1]. The generator factors a clip into
content and motion (Tulyakov et al. 2018, "MoCoGAN: Decomposing Motion and
Content for Video Generation", arXiv:1707.04993, sec. 3):

  z_C ~ N(0, I)             one content code per clip, shared by all T frames;
  h_0, eps_1..T ~ N(0, I)   the motion RNN's initial state and per-frame inputs;
  z_M^t = GRU(eps_t, z_M^(t-1))   (z_M^0 = h_0), a trajectory in motion space;
  frame_t = G_I([z_C, z_M^t])     one image generator applied to every frame.

Two discriminators (MoCoGAN sec. 3.1): D_V, 3-D convolutions over the whole
clip (it judges motion; the spatio-temporal D of Vondrick et al. 2016 and
TGAN, Saito et al. 2017), and D_I, 2-D convolutions over single frames (it
judges appearance). The frame generator uses BatchNorm over all frames of the
batch, cross-replica over `bn_axis_name` in training; the Ds use none, so
their outputs for a clip never depend on the rest of the batch.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.common import DATA_AXIS
from jaxgan.nets.layers import SubPixelConvTranspose, batch_norm

_INIT = nn.initializers.normal(0.02)  # DCGAN / MoCoGAN weight init


def check_frame_size(frame_size: int) -> int:
    """The number of 2x up/down-sampling stages between 4x4 and `frame_size` (a power of two >= 8)."""
    if not isinstance(frame_size, int) or frame_size < 8 or frame_size & (frame_size - 1):
        raise ValueError(f"frame_size must be a power of two >= 8 (e.g. 16, 32, 64), got {frame_size!r}.")
    return int(math.log2(frame_size // 4))


class MotionLatents(nn.Module):
    """(z_content [B, Dc], h0 [B, Dm], eps [B, T, Dm]) -> per-frame latents [B, T, Dc + Dm].

    MoCoGAN's latent path: a GRU (Cho et al. 2014) driven by i.i.d. noise gives
    the motion codes z_M^1..T; the content code is repeated for every frame.
    """

    motion_dim: int

    @nn.compact
    def __call__(self, z_content: jax.Array, h0: jax.Array, eps: jax.Array) -> jax.Array:
        cell = nn.GRUCell(features=self.motion_dim, name="gru")
        scan = nn.scan(
            lambda c, h, e: c(h, e), variable_broadcast="params", split_rngs={"params": False}, in_axes=1, out_axes=1
        )
        _, z_motion = scan(cell, h0, eps)  # [B, T, Dm]
        t = eps.shape[1]
        return jnp.concatenate([jnp.repeat(z_content[:, None], t, axis=1), z_motion], axis=-1)


class FrameGenerator(nn.Module):
    """Frame latents [N, D] -> frames [N, S, S, C] in [-1, 1]: DCGAN's generator at any S = 2^k >= 8.

    Dense to 4x4 x width, then stride-2 4x4 transposed convs halving the width,
    BatchNorm + ReLU between, tanh out (Radford et al. 2016, arXiv:1511.06434).
    """

    frame_size: int = 32
    channels: int = 1
    width: int = 64  # the last hidden layer's width; doubles towards 4x4
    bn_axis_name: str | None = DATA_AXIS

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool = True) -> jax.Array:
        n_up = check_frame_size(self.frame_size)
        bn = lambda: batch_norm(train, self.bn_axis_name, None)
        width = self.width * 2 ** (n_up - 1)
        h = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=_INIT)(z)
        h = nn.relu(bn()(h.reshape(z.shape[0], 4, 4, width)))
        for i in range(n_up - 1):
            width //= 2
            h = SubPixelConvTranspose(width, use_bias=False, kernel_init=_INIT, name=f"up{i}")(h)
            h = nn.relu(bn()(h))
        h = SubPixelConvTranspose(self.channels, kernel_init=_INIT, name="to_frame")(h)
        return jnp.tanh(h)


class VideoGenerator(nn.Module):
    """(z_content [B, Dc], h0 [B, Dm], eps [B, T, Dm]) -> videos [B, T, S, S, C] in [-1, 1].

    The latent path (`MotionLatents`) then the same `FrameGenerator` on all B*T
    frame latents at once (its BatchNorm sees every frame of the batch).
    """

    content_dim: int = 50
    motion_dim: int = 10
    frame_size: int = 32
    channels: int = 1
    width: int = 64
    bn_axis_name: str | None = DATA_AXIS

    def setup(self):
        check_frame_size(self.frame_size)
        self.latents = MotionLatents(self.motion_dim)
        self.frames = FrameGenerator(
            frame_size=self.frame_size, channels=self.channels, width=self.width, bn_axis_name=self.bn_axis_name
        )

    def __call__(self, z_content: jax.Array, h0: jax.Array, eps: jax.Array, *, train: bool = True) -> jax.Array:
        b, t = eps.shape[:2]
        if (
            z_content.shape != (b, self.content_dim)
            or h0.shape != (b, self.motion_dim)
            or eps.shape[2:] != (self.motion_dim,)
        ):
            raise ValueError(
                f"Expected z_content [B, {self.content_dim}], h0 [B, {self.motion_dim}] and eps "
                f"[B, T, {self.motion_dim}]; got {z_content.shape}, {h0.shape}, {eps.shape}."
            )
        z = self.latents(z_content, h0, eps).reshape(b * t, self.content_dim + self.motion_dim)
        frames = self.frames(z, train=train)
        return frames.reshape(b, t, *frames.shape[1:])


class SpaceTimeConv(nn.Module):
    """`nn.Conv(features, (kt, k, k), strides=(st, s, s), padding="SAME")` on [B, T, H, W, C], computed
    as ONE 2-D convolution over the output frames' kt time-shifted input frames stacked on channels.

    Same parameters (name, shape [kt, k, k, Cin, F], init) and outputs as the
    Flax 3-D layer, but XLA's CPU backend runs 2-D convolutions far faster than
    3-D ones (measured: a 3-D D_V step 0.16 s, this form ~0.01 s, 16 px, 2 cores).
    """

    features: int
    time_kernel: int = 4
    time_stride: int = 1
    kernel_size: int = 4
    stride: int = 2
    kernel_init: Any = _INIT

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        kt, k, st = self.time_kernel, self.kernel_size, self.time_stride
        kernel = self.param("kernel", self.kernel_init, (kt, k, k, c, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        t_out = -(-t // st)
        total = max((t_out - 1) * st + kt - t, 0)  # XLA's "SAME": the odd pad goes after
        padded = jnp.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0), (0, 0), (0, 0)))
        starts = np.arange(t_out) * st
        shifted = jnp.concatenate([padded[:, starts + i] for i in range(kt)], axis=-1)  # [B, T_out, H, W, kt*C]
        kernel2d = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(k, k, kt * c, self.features)
        y = jax.lax.conv_general_dilated(
            shifted.reshape(b * t_out, h, w, kt * c),
            kernel2d,
            (self.stride,) * 2,
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return (y + bias).reshape(b, t_out, *y.shape[1:])


class VideoDiscriminator(nn.Module):
    """D_V: videos [B, T, S, S, C] -> logits [B], 3-D convolutions over time and space.

    4x4x4 kernels, spatial stride 2 down to 4x4, temporal stride 1 in the first
    layer and 2 after it while more than 4 frames remain (as TGAN's D halves
    time), LeakyReLU(0.2), then a linear logit of the whole [T', 4, 4, width]
    map, so the order of the frames matters (MoCoGAN's D_V, without BatchNorm).
    """

    frame_size: int = 32
    width: int = 64

    @nn.compact
    def __call__(self, videos: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        if videos.ndim != 5 or videos.shape[2:4] != (self.frame_size, self.frame_size):
            raise ValueError(f"D_V expects videos [B, T, {self.frame_size}, {self.frame_size}, C], got {videos.shape}.")
        h = videos
        for i in range(check_frame_size(self.frame_size)):
            time_stride = 2 if i > 0 and h.shape[1] > 4 else 1
            h = SpaceTimeConv(self.width * 2**i, time_stride=time_stride, name=f"conv{i}")(h)
            h = nn.leaky_relu(h, 0.2)
        return nn.Dense(1, kernel_init=_INIT, name="logit")(h.reshape(h.shape[0], -1))[:, 0]


class ImageDiscriminator(nn.Module):
    """D_I: frames [N, S, S, C] -> logits [N]: DCGAN's D (stride-2 4x4 convs, LeakyReLU 0.2), no BatchNorm."""

    frame_size: int = 32
    width: int = 64

    @nn.compact
    def __call__(self, frames: jax.Array, *, train: bool = True) -> jax.Array:
        del train
        if frames.ndim != 4 or frames.shape[1:3] != (self.frame_size, self.frame_size):
            raise ValueError(f"D_I expects frames [N, {self.frame_size}, {self.frame_size}, C], got {frames.shape}.")
        h = frames
        for i in range(check_frame_size(self.frame_size)):
            h = nn.Conv(self.width * 2**i, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_INIT, name=f"conv{i}")(
                h
            )
            h = nn.leaky_relu(h, 0.2)
        return nn.Dense(1, kernel_init=_INIT, name="logit")(h.reshape(h.shape[0], -1))[:, 0]


def param_count(params: Any) -> int:
    """Number of scalars in a params tree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
