"""Shared building blocks of the architectures."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def batch_norm(train: bool, axis_name: str | None, dtype: Any, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (its momentum 0.1 is Flax's 0.9; eps 1e-5): batch statistics in
    training, cross-replica over `axis_name`, running ones otherwise. Create it inside a compact method."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=axis_name if train else None,
        dtype=dtype,
        name=name,
    )


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
    hits = [
        (p, (p + k - pad) // stride, k) for p in range(stride) for k in range(kernel) if (p + k - pad) % stride == 0
    ]
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


class StridedConvForm(nn.Module):
    """The attributes shared by the conv forms below: a k x k, stride-s 'SAME' (transposed)
    convolution with Flax's parameter names, shapes and initializers."""

    features: int
    kernel_size: int = 4
    stride: int = 2
    use_bias: bool = True
    dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()


class SubPixelConvTranspose(StridedConvForm):
    """`nn.ConvTranspose(features, (k, k), strides=(s, s), padding='SAME')`, computed
    as one ordinary convolution to s*s*features channels plus depth-to-space.

    Same parameters (names, shapes, init) and the same outputs as the Flax layer,
    but XLA lowers an ordinary convolution and its gradients to far faster code
    than a transposed one on CPU (see tools/bench.py).
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        phase_kernel, pad_lo, pad_hi = _phase_kernel(kernel.astype(self.dtype), s)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            phase_kernel,
            window_strides=(1, 1),
            padding=((pad_lo, pad_hi), (pad_lo, pad_hi)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        y = depth_to_space(y, s)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


def phase_window_kernel(kernel: jax.Array, stride: int) -> tuple[jax.Array, tuple[int, ...], int]:
    """[k, k, Cin, Cout] transposed-conv kernel -> ([v, v, Cin, s*s*Cout], starts, v).

    Each output phase p reads only its own taps, a window of v = ceil(k / s)
    input positions starting at offset starts[p] (relative to the output's
    input index); the kernel holds every phase's taps in that window, so one
    convolution over the padded input computes all phases, each at a shifted
    position (see `PhaseConvTranspose`).
    """
    k, _, c_in, c_out = kernel.shape
    d_min, table = subpixel_taps(k, stride)
    spans = [np.nonzero(table[p] >= 0)[0] for p in range(stride)]
    width = max(int(sp.max() - sp.min()) + 1 for sp in spans)
    rows = np.full((stride, width), k, np.int32)  # index k -> the appended zero tap
    for p, sp in enumerate(spans):
        for j in range(width):
            i = int(sp.min()) + j
            if i < table.shape[1] and table[p, i] >= 0:
                rows[p, j] = table[p, i]
    padded = jnp.concatenate([kernel, jnp.zeros((1, k, c_in, c_out), kernel.dtype)], axis=0)
    padded = jnp.concatenate([padded, jnp.zeros((k + 1, 1, c_in, c_out), kernel.dtype)], axis=1)
    gathered = padded[rows.T[:, None, :, None], rows.T[None, :, None, :]]  # [v, v, s, s, Cin, Cout]
    gathered = jnp.transpose(gathered, (0, 1, 4, 2, 3, 5)).reshape(width, width, c_in, stride * stride * c_out)
    return gathered, tuple(int(sp.min()) + d_min for sp in spans), width


class PhaseConvTranspose(StridedConvForm):
    """`nn.ConvTranspose(features, (k, k), strides=(s, s), padding='SAME')` with the
    same parameters and outputs, computed as ONE convolution whose window holds
    only the taps each output phase uses, then a phase interleave.

    `SubPixelConvTranspose` gives every phase the union window (3x3 for k=4,
    s=2: 2.25x the transposed conv's FLOPs); here the window is ceil(k/s)
    (2x2), evaluated at (H+1)x(W+1) positions: 1.13x the exact FLOPs at 16x16
    input, 1.56x at 4x4. Still one large matmul-shaped convolution, so XLA CPU
    runs it at the speed of an ordinary conv (see tools/bench.py).
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        window_kernel, starts, width = phase_window_kernel(kernel.astype(self.dtype), s)
        lo, hi = -min(starts), max(starts) + width - 1
        b, h, w, c_in = x.shape
        xp = jnp.pad(x.astype(self.dtype), ((0, 0), (lo, hi), (lo, hi), (0, 0)))
        kernels = window_kernel.reshape(width, width, c_in, s, s, self.features)
        # Phase (py, px): a VALID conv of its own taps over the input shifted by its window start.
        phases = [
            [
                jax.lax.conv_general_dilated(
                    xp[
                        :,
                        starts[py] + lo : starts[py] + lo + h + width - 1,
                        starts[px] + lo : starts[px] + lo + w + width - 1,
                    ],
                    kernels[:, :, :, py, px],
                    window_strides=(1, 1),
                    padding="VALID",
                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                )
                for px in range(s)
            ]
            for py in range(s)
        ]
        y = jnp.concatenate([jnp.concatenate(row, axis=-1) for row in phases], axis=-1)  # [B, H, W, (py, px, C)]
        y = depth_to_space(y, s)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


def space_to_depth(x: jax.Array, block: int) -> jax.Array:
    """[B, b*H, b*W, C] -> [B, H, W, b*b*C], channel order (row phase, column phase, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // block, block, w // block, block, c)
    return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(b, h // block, w // block, block * block * c)


class SpaceToDepthConv(StridedConvForm):
    """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')` (k a multiple of s,
    even input sizes) with the same parameters and outputs, computed as
    space-to-depth + a stride-1 (k/s)x(k/s) convolution.

    Same FLOPs; the point is the backward pass: the input gradient of a strided
    convolution is a transposed convolution, which XLA CPU runs far slower than
    an ordinary one, and G's update backpropagates through every D layer.
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        b, h, w, c = x.shape
        if k % s or h % s or w % s:
            raise ValueError(f"SpaceToDepthConv needs kernel {k} and input size {h}x{w} divisible by stride {s}.")
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features), jnp.float32)
        pad = max(k - s, 0)  # 'SAME' for an input divisible by s: (h/s - 1) * s + k - h
        lo, hi = pad // 2, pad - pad // 2
        x = jnp.pad(x.astype(self.dtype), ((0, 0), (lo, hi), (lo, hi), (0, 0)))
        if (h + pad) % s:  # keep the padded size divisible by s; the extra row/column is never read
            extra = s - (h + pad) % s
            x = jnp.pad(x, ((0, 0), (0, extra), (0, extra), (0, 0)))
        blocks = k // s
        kernel = kernel.astype(self.dtype).reshape(blocks, s, blocks, s, c, self.features)
        kernel = jnp.transpose(kernel, (0, 2, 1, 3, 4, 5)).reshape(blocks, blocks, s * s * c, self.features)
        y = jax.lax.conv_general_dilated(
            space_to_depth(x, s),
            kernel,
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        y = y[:, : h // s, : w // s]
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


def _patches(x: jax.Array, window: int, stride: int, out_h: int, out_w: int) -> jax.Array:
    """[B, H', W', C] (already padded) -> [B, out_h, out_w, window*window*C]: im2col by strided slices,
    channel order (ky, kx, C), so a conv is one matmul with the kernel reshaped [window*window*C, F]."""
    cols = [
        x[:, ky : ky + stride * (out_h - 1) + 1 : stride, kx : kx + stride * (out_w - 1) + 1 : stride]
        for ky in range(window)
        for kx in range(window)
    ]
    return jnp.concatenate(cols, axis=-1)


class PatchesConv(StridedConvForm):
    """`nn.Conv(features, (k, k), strides=(s, s), padding='SAME')`, same params and
    outputs, computed as im2col (strided slices) + one matmul: forward and both
    gradients are then large dots, and the input gradient a sum of padded slices
    instead of a transposed convolution."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        b, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features), jnp.float32)
        out_h, out_w = -(-h // s), -(-w // s)
        pad_h, pad_w = max((out_h - 1) * s + k - h, 0), max((out_w - 1) * s + k - w, 0)
        x = jnp.pad(
            x.astype(self.dtype), ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
        )
        y = _patches(x, k, s, out_h, out_w) @ kernel.astype(self.dtype).reshape(k * k * c, self.features)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


class PatchesConvTranspose(StridedConvForm):
    """`nn.ConvTranspose(features, (k, k), strides=(s, s), padding='SAME')`, same
    params and outputs: the sub-pixel form (`SubPixelConvTranspose`) with its
    convolution computed as im2col + one matmul."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        b, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features), jnp.float32)
        phase_kernel, pad_lo, pad_hi = _phase_kernel(kernel.astype(self.dtype), s)
        width = phase_kernel.shape[0]
        x = jnp.pad(x.astype(self.dtype), ((0, 0), (pad_lo, pad_hi), (pad_lo, pad_hi), (0, 0)))
        y = _patches(x, width, 1, h, w) @ phase_kernel.reshape(width * width * c, s * s * self.features)
        y = depth_to_space(y, s)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
        return y


# --------------------------------------------------------------------------- spectral normalization


def _l2_normalize(x: jax.Array, eps: float) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.sum(jnp.square(x)) + eps)


def spectral_norm_matrix(kernel: jax.Array) -> jax.Array:
    """The matrix whose spectral norm spectral normalization controls: every
    axis but the last (the output features) flattened, so a conv kernel
    [kh, kw, Cin, Cout] becomes [kh*kw*Cin, Cout] (Miyato et al. 2018, sec. 2.1,
    the 'reshape to a 2-D matrix' of their conv layers)."""
    return kernel.reshape(-1, kernel.shape[-1])


class SpectralNorm(nn.Module):
    """Wraps a layer so it runs with every >= 2-D parameter divided by its
    largest singular value, estimated by power iteration: W_SN = W / sigma(W)
    (Miyato, Kataoka, Koyama & Yoshida 2018, arXiv:1802.05957, alg. 1).

    Like `flax.linen.SpectralNorm`, the power-iteration vector `u` (and the
    last `sigma`) live in the "batch_stats" collection, which the train step
    threads and checkpoints, and are stored only when `update_stats=True`
    (training); with `update_stats=False` the same iterations run from the
    stored `u` without storing, so evaluation is deterministic. Unlike Flax's,
    with `axis_name` set and `update_stats=True` the new `u` and `sigma` are
    averaged over that axis: every device computes them from the same replicated
    weights, so the mean changes nothing numerically, but it marks them as
    replicated, which `jax.shard_map` requires of a state returned with out spec
    P(). The gradient flows through sigma(W) but not through u and v, as in the
    paper. The wrapped layer's parameters keep their own name and place, so a
    network has the same parameter tree with and without spectral norm.
    """

    layer_instance: nn.Module
    n_steps: int = 1
    epsilon: float = 1e-12
    axis_name: str | None = None

    @nn.compact
    def __call__(self, *args: Any, update_stats: bool, **kwargs: Any) -> Any:
        return nn.map_variables(
            lambda layer: layer(*args, **kwargs),
            trans_in_fn=lambda vs: jax.tree_util.tree_map_with_path(
                lambda path, v: self._normalize(path, v, update_stats), vs
            ),
            init=self.is_initializing(),
            mutable=True,
        )(self.layer_instance)

    def _normalize(self, path: Any, value: jax.Array, update_stats: bool) -> jax.Array:
        if value.ndim < 2 or self.n_steps < 1:
            return value  # biases, scalars: left alone
        matrix = spectral_norm_matrix(jnp.asarray(value, jnp.float32))
        name = "/".join([self.layer_instance.name] + [str(getattr(k, "key", k)) for k in path[1:]])
        u_var = self.variable(
            "batch_stats",
            f"{name}/u",
            lambda: jax.random.normal(self.make_rng("params"), (1, matrix.shape[-1]), jnp.float32),
        )
        sigma_var = self.variable("batch_stats", f"{name}/sigma", lambda: jnp.ones((), jnp.float32))
        u = u_var.value
        for _ in range(self.n_steps):
            v = _l2_normalize(u @ matrix.T, self.epsilon)  # [1, in]
            u = _l2_normalize(v @ matrix, self.epsilon)  # [1, out]
        u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
        sigma = (v @ matrix @ u.T)[0, 0]
        if update_stats and not self.is_initializing():
            new_u, new_sigma = u, jax.lax.stop_gradient(sigma)
            if self.axis_name is not None:
                new_u, new_sigma = jax.lax.pmean((new_u, new_sigma), self.axis_name)
            u_var.value, sigma_var.value = new_u, new_sigma
        return (matrix / jnp.where(sigma != 0, sigma, 1.0)).reshape(value.shape).astype(value.dtype)


def apply_layer(
    layer: nn.Module, x: jax.Array, *, spectral_norm: bool, train: bool, axis_name: str | None
) -> jax.Array:
    """`layer(x)`, through `SpectralNorm` when `spectral_norm` (power iterate stored in training only)."""
    if not spectral_norm:
        return layer(x)
    return SpectralNorm(layer, axis_name=axis_name if train else None, name=f"{layer.name}_sn" if layer.name else None)(
        x, update_stats=train
    )


# --------------------------------------------------------------------------- minibatch statistics


def minibatch_stddev(
    x: jax.Array, *, group_size: int = 4, num_features: int = 1, eps: float = 1e-8, contiguous: bool = False
) -> jax.Array:
    """Appends the minibatch standard deviation: [B, ..., C] -> [B, ..., C + num_features].

    Karras, Aila, Laine & Lehtinen 2018 (ProGAN), arXiv:1710.10196 sec. 3, with
    StyleGAN2's `num_features` split of the channels. The batch is cut into
    B // G groups of G = min(group_size, B) samples; as in the reference code
    (`x.reshape(G, -1, ...)`), sample i belongs to group i % (B // G), so group
    j is {j, j + B/G, j + 2B/G, ...}. Per group, the std over its G samples (biased,
    sqrt(var + eps)) of every feature is averaged over the spatial positions and
    over the C / num_features channels of each channel group; the result is
    broadcast to every position of the group's samples as `num_features` new
    channels. Works on images [B, H, W, C] and flat features [B, C].

    Under data parallelism this runs on each device's LOCAL batch: groups never
    span devices, so the local batch size must be divisible by G. `contiguous`
    groups consecutive samples instead ({0..G-1}, {G..2G-1}, ...): the same
    statistic of a random batch, and then the groups, hence D's outputs, do not
    depend on how many devices share the batch.
    """
    b, c = x.shape[0], x.shape[-1]
    g = min(group_size, b)
    if group_size < 1 or b % g:
        raise ValueError(
            f"minibatch_stddev: the (per-device) batch size {b} must be divisible by the group size "
            f"min({group_size}, {b}) = {g}; change the batch size or mbstd_group_size."
        )
    if num_features < 1 or c % num_features:
        raise ValueError(f"minibatch_stddev: {c} channels cannot be split into num_features={num_features} groups.")
    spatial = x.shape[1:-1]
    if contiguous:
        y = x.astype(jnp.float32).reshape(b // g, g, -1, num_features, c // num_features)  # [M, G, P, F, c]
        y = jnp.mean(jnp.sqrt(jnp.var(y, axis=1) + eps), axis=(1, 3))  # [M, F]
        y = jnp.repeat(y, g, axis=0)  # sample i -> group i // G
    else:
        y = x.astype(jnp.float32).reshape(g, b // g, -1, num_features, c // num_features)  # [G, M, P, F, c]
        y = jnp.sqrt(jnp.var(y, axis=0) + eps)  # [M, P, F, c]
        y = jnp.mean(y, axis=(1, 3))  # [M, F]
        y = jnp.tile(y, (g, 1))  # sample i -> group i % M
    y = jnp.broadcast_to(y.reshape((b,) + (1,) * len(spatial) + (num_features,)), x.shape[:-1] + (num_features,))
    return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination: [B, A] -> [B, A + num_kernels].

    Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen 2016, arXiv:1606.03498
    sec. 3.2: M_i = f(x_i) T in R^{num_kernels x kernel_dim},
    c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_1), o(x_i)_b = sum_{j != i} c_b(x_i, x_j);
    the output is [f(x_i), o(x_i)]. The sum skips j = i as the authors' code does
    (the paper's formula sums over all j, which only adds the constant 1). T is
    stored as one [A, num_kernels * kernel_dim] matrix, so spectral norm sees the
    linear map it is. Under data parallelism the sum runs over each device's
    LOCAL batch.
    """

    num_kernels: int
    kernel_dim: int = 5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, f: jax.Array) -> jax.Array:
        t = self.param(
            "kernel", nn.initializers.normal(0.05), (f.shape[-1], self.num_kernels * self.kernel_dim), jnp.float32
        )
        m = (f.astype(self.dtype) @ t.astype(self.dtype)).astype(jnp.float32)
        m = m.reshape(f.shape[0], self.num_kernels, self.kernel_dim)
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [B, B, K]
        o = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # drop j = i, where exp(0) = 1
        return jnp.concatenate([f, o.astype(f.dtype)], axis=-1)


# --------------------------------------------------------------------------- packing and resampling


def pack_samples(x: jax.Array, pack: int) -> jax.Array:
    """PacGAN packing: [B, ..., C] -> [B // pack, ..., pack * C].

    Lin, Khetan, Fanti & Oh 2018, arXiv:1712.04086 sec. 3: D judges `pack`
    samples jointly. Consecutive samples form a pack (samples k*pack ... k*pack +
    pack - 1 make pack k), concatenated along the last axis (channels of an image,
    features of a flat sample) in sample order.
    """
    if pack < 1:
        raise ValueError(f"pack must be >= 1, got {pack}.")
    b = x.shape[0]
    if b % pack:
        raise ValueError(
            f"PacGAN packing: the (per-device) batch size {b} is not divisible by pack={pack}; use a batch "
            f"size that is a multiple of {pack} (times the device count)."
        )
    if pack == 1:
        return x
    y = x.reshape((b // pack, pack) + x.shape[1:])
    y = jnp.moveaxis(y, 1, -2)  # [B/p, ..., p, C]
    return y.reshape(y.shape[:-2] + (pack * x.shape[-1],))


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, factor*H, factor*W, C], nearest neighbour."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def avg_pool2(x: jax.Array) -> jax.Array:
    """2x2 average pooling, stride 2: [B, H, W, C] -> [B, H/2, W/2, C]."""
    b, h, w, c = x.shape
    return jnp.mean(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def scaled_width(width: int, multiplier: float) -> int:
    """round(width * multiplier), at least 1: the D capacity knob."""
    if not multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {multiplier!r}.")
    return max(1, int(round(width * multiplier)))
