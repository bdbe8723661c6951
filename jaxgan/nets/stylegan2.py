"""StyleGAN2's generator and discriminator (Karras et al. 2020, arXiv:1912.04958), with ADA's conditioning.

Written from the paper and NVIDIA's stylegan2-ada-pytorch (`training/networks.py`), NHWC:

- Equalized learning rate (Karras et al. 2018, arXiv:1710.10196, sec. 4.1): every weight is stored
  N(0, 1 / lr_multiplier^2) and scaled at run time by lr_multiplier / sqrt(fan_in) (`EqualDense`,
  `EqualConv`); biases by lr_multiplier. The mapping network's layers use lr_multiplier 0.01.
- Mapping network: z normalized to unit second moment (and, conditional, a normalized class embedding
  concatenated, as StyleGAN2-ADA's cond configs), `mapping_layers` LeakyReLU(0.2) x sqrt(2) layers ->
  w; the running mean w_avg (decay 0.995) is tracked in "batch_stats" for truncation (psi) in W.
- Synthesis (the "skip" G): a learned 4x4 constant, per resolution two modulated 3x3 convolutions
  (the first upsampling 2x) with weight demodulation, per-pixel noise of learned strength (from 0),
  and a 1x1 modulated (not demodulated) ToRGB whose output is added to the 2x-upsampled image so far.
  Up/down sampling is bilinear: the FIR filter [1, 3, 3, 1] through `jaxgan.upfirdn`.
- D (the "resnet" D): per resolution conv3 -> conv3 with 2x down, plus a 1x1 downsampled skip, both
  scaled by sqrt(1/2); then the minibatch standard deviation (group 4, 1 feature), conv3, a dense layer
  and the logit. Conditional: ADA's projection <out(phi), cmap(y)> / sqrt(cmap_dim), cmap from a
  mapping network of the one-hot class.

The generator's input. Everything random a StyleGAN2 G draws is a standard normal draw, so its jaxgan
latent is all of it, [z | z_mix | u_mix | u_cut | noise]: z and style mixing's second z, two normals
turned uniform by the normal CDF (whether an example mixes styles, and its crossover layer), and one
normal per pixel of every noise input. Every jaxgan path that draws z ~ N(0, I) (the train step,
sampling, metrics) thus drives the noise inputs and style mixing too, per example and keyed by its
global batch index: results do not depend on the device count, and a seed fixes a sample. Style
mixing happens in training only (`train=True`), per example (the reference draws one crossover per
batch), with probability `style_mixing_prob` (0.9).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import latent, upfirdn
from jaxgan.common import DATA_AXIS
from jaxgan.nets.conditioning import DiscriminatorOptions, check_labels, discriminator_input
from jaxgan.nets.layers import minibatch_stddev, scaled_width

SUPPORTED_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
LRELU_GAIN = math.sqrt(2.0)  # the reference's def_gain of LeakyReLU(0.2): keeps activations' scale
RESAMPLE_FILTER = (1, 3, 3, 1)
# Applied separably (x then y): the same 2-D filter as its outer product, half the slices.
_FIR = upfirdn.setup_filter(RESAMPLE_FILTER, separable=True)


def lrelu(x: jax.Array, gain: float = 1.0) -> jax.Array:
    """LeakyReLU(0.2) times sqrt(2) (and an extra gain)."""
    return nn.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """x / sqrt(mean(x^2) + eps) over the last axis (the mapping network's input normalization)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def channels_at(resolution: int, *, channel_base: int, channel_max: int) -> int:
    """The reference's width at a resolution: min(channel_base // resolution, channel_max)."""
    return max(1, min(channel_base // resolution, channel_max))


def block_resolutions(image_size: int) -> list[int]:
    """4, 8, ..., image_size."""
    return [2**i for i in range(2, int(math.log2(image_size)) + 1)]


def num_ws(image_size: int) -> int:
    """How many w vectors the synthesis network reads: two per resolution above 4, one at 4, plus the last ToRGB."""
    return 2 * int(math.log2(image_size)) - 2


def noise_resolutions(image_size: int) -> list[int]:
    """The resolution of each noise input, in order: one at 4x4, two per higher resolution."""
    return [4] + [r for r in block_resolutions(image_size)[1:] for _ in range(2)]


def check_image_size(image_size: int, who: str) -> None:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"{who}: image_size must be a power of two in {SUPPORTED_SIZES}, got {image_size}.")


# ----------------------------------------------------------------------------------------------- layers


class EqualDense(nn.Module):
    """A dense layer with equalized learning rate (the reference's FullyConnectedLayer)."""

    features: int
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    activation: str = "linear"  # or "lrelu"
    use_bias: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.normal(1.0 / self.lr_multiplier), (fan_in, self.features), jnp.float32
        )
        w = kernel * (self.lr_multiplier / math.sqrt(fan_in))
        y = jnp.dot(x.astype(self.dtype), w.astype(self.dtype)).astype(jnp.float32)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,), jnp.float32)
            y = y + bias * self.lr_multiplier
        return lrelu(y) if self.activation == "lrelu" else y


def conv2d(x: jax.Array, w: jax.Array, *, stride: int = 1, padding: Any = "VALID", groups: int = 1, lhs_dilation=None):
    """Cross-correlation of x [B, H, W, I] with w [k, k, I / groups, O]."""
    return jax.lax.conv_general_dilated(
        x,
        w.astype(x.dtype),
        (stride, stride),
        padding,
        lhs_dilation=lhs_dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def conv2d_resample(
    x: jax.Array, w: jax.Array, f: np.ndarray, *, up: int = 1, down: int = 1, groups: int = 1
) -> jax.Array:
    """A 'same' k x k convolution with 2x up or down sampling through the FIR filter f.

    Equal to the reference's generic form: up: `upfirdn2d(x, f, up=2, padding=p, gain=4)` then a VALID
    convolution (p puts the output at exactly 2x); down: `upfirdn2d(x, f, padding=p)` then a stride-2
    VALID convolution. The up path convolves the zero-interleaved input first (`lhs_dilation`, XLA's
    transposed convolution) and filters after: both are linear and shift-invariant, so the order does
    not change the result (`tests/stylegan2_test.py` checks this against the generic form).
    """
    k = w.shape[0]
    fw = len(f) if np.ndim(f) == 1 else np.shape(f)[0]
    pad = k // 2
    if up > 1:
        # Generic padding on the zero-interleaved input: (pad + (fw + up - 1) // 2, pad + (fw - up) // 2);
        # the convolution takes k - 1 of it on each side (its "full" output), the filter the rest.
        before, after = pad + (fw + up - 1) // 2, pad + (fw - up) // 2
        full = k - 1
        y = conv2d(x, w, padding=((full, full + up - 1),) * 2, groups=groups, lhs_dilation=(up, up))
        fb, fa = before - full, after - full
        return upfirdn.upfirdn2d(y, f, padding=(fb, fa, fb, fa), gain=up * up)
    if down > 1:
        if k == 1:  # the reference's fast path: filter and decimate first
            return conv2d(upfirdn.downsample2d(x, f, down=down), w, groups=groups)
        p0, p1 = pad + (fw - down + 1) // 2, pad + (fw - down) // 2
        return conv2d(upfirdn.upfirdn2d(x, f, padding=(p0, p1, p0, p1)), w, stride=down, groups=groups)
    return conv2d(x, w, padding=((pad, pad), (pad, pad)), groups=groups)


class EqualConv(nn.Module):
    """A k x k convolution with equalized learning rate, optional 2x down sampling (the reference's Conv2dLayer)."""

    features: int
    kernel_size: int = 3
    down: int = 1
    activation: str = "lrelu"
    use_bias: bool = True
    gain: float = 1.0  # the block's extra output gain (sqrt(1/2) on both residual branches)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, fan_in = self.kernel_size, x.shape[-1] * self.kernel_size**2
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, x.shape[-1], self.features), jnp.float32)
        w = kernel / math.sqrt(fan_in)
        f = _FIR
        y = conv2d_resample(x.astype(self.dtype), w, f, down=self.down).astype(jnp.float32)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return lrelu(y, self.gain) if self.activation == "lrelu" else y * self.gain


def modulated_conv2d(
    x: jax.Array,
    weight: jax.Array,
    styles: jax.Array,
    *,
    demodulate: bool = True,
    up: int = 1,
    fused: bool = True,
    resample_filter: np.ndarray | None = None,
    eps: float = 1e-8,
) -> jax.Array:
    """StyleGAN2's modulated convolution (Karras et al. 2020, sec. 2.2, eqs. 1-3).

    x [B, H, W, I], weight [k, k, I, O], styles s [B, I]:
      w'_{ijk} = s_i w_{ijk}  (modulation),  w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} w'_{ijk}^2 + eps)  (demodulation),
    then a 'same' convolution (2x upsampling when up == 2). `fused`: one grouped convolution with a weight
    per example (the paper's formulation); otherwise the activations are scaled by s before and by the
    demodulation coefficients after a shared-weight convolution (the reference's training path). Both
    compute the same function.
    """
    b, _, _, cin = x.shape
    k, cout = weight.shape[0], weight.shape[-1]
    f = _FIR if resample_filter is None else resample_filter
    styles = styles.astype(jnp.float32)
    dcoefs = None
    if demodulate:
        wsq = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # [I, O]
        dcoefs = jax.lax.rsqrt(jnp.square(styles) @ wsq + eps)  # [B, O]
    if not fused:
        y = conv2d_resample(x * styles[:, None, None, :].astype(x.dtype), weight, f, up=up)
        return y if dcoefs is None else y * dcoefs[:, None, None, :].astype(y.dtype)
    w = weight[None] * styles[:, None, None, :, None]  # [B, k, k, I, O]
    if dcoefs is not None:
        w = w * dcoefs[:, None, None, None, :]
    # Examples become channel groups: x [1, H, W, B * I], weight [k, k, I, B * O].
    xg = jnp.transpose(x, (1, 2, 0, 3)).reshape(1, x.shape[1], x.shape[2], b * cin)
    wg = jnp.transpose(w, (1, 2, 3, 0, 4)).reshape(k, k, cin, b * cout)
    y = conv2d_resample(xg, wg, f, up=up, groups=b)
    return jnp.transpose(y.reshape(y.shape[1], y.shape[2], b, cout), (2, 0, 1, 3))


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (2x up when `up`), noise of learned strength, bias, LeakyReLU x sqrt(2)."""

    features: int
    up: int = 1
    use_noise: bool = True
    fused: bool | None = None  # None: the reference's choice (grouped when not training)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise: jax.Array | None, *, train: bool) -> jax.Array:
        cin = x.shape[-1]
        styles = EqualDense(cin, bias_init=1.0, name="affine")(w)
        weight = self.param("kernel", nn.initializers.normal(1.0), (3, 3, cin, self.features), jnp.float32)
        fused = (not train) if self.fused is None else self.fused
        y = modulated_conv2d(x.astype(self.dtype), weight, styles, up=self.up, fused=fused).astype(jnp.float32)
        if self.use_noise:
            strength = self.param("noise_strength", nn.initializers.zeros, (), jnp.float32)
            y = y + noise * strength
        return lrelu(y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32))


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, styles scaled by 1 / sqrt(fan_in); linear, with bias."""

    channels: int
    fused: bool | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, *, train: bool) -> jax.Array:
        cin = x.shape[-1]
        styles = EqualDense(cin, bias_init=1.0, name="affine")(w) / math.sqrt(cin)
        weight = self.param("kernel", nn.initializers.normal(1.0), (1, 1, cin, self.channels), jnp.float32)
        fused = (not train) if self.fused is None else self.fused
        y = modulated_conv2d(x.astype(self.dtype), weight, styles, demodulate=False, fused=fused)
        return y.astype(jnp.float32) + self.param("bias", nn.initializers.zeros, (self.channels,), jnp.float32)


# ----------------------------------------------------------------------------------------------- mapping


class MappingNetwork(nn.Module):
    """z (and/or one-hot labels) -> w [B, w_dim]; tracks w_avg in training (`track_w_avg`)."""

    w_dim: int
    num_layers: int = 8
    num_classes: int = 0
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995  # None: no w_avg (D's label mapping)
    axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array | None, labels: jax.Array | None, *, update_w_avg: bool = False) -> jax.Array:
        parts = []
        if z is not None:
            parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
        if self.num_classes:
            one_hot = jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)
            parts.append(normalize_2nd_moment(EqualDense(self.w_dim, name="embed")(one_hot)))
        x = jnp.concatenate(parts, axis=-1)
        for i in range(self.num_layers):
            x = EqualDense(
                self.w_dim, lr_multiplier=self.lr_multiplier, activation="lrelu", dtype=self.dtype, name=f"fc{i}"
            )(x)
        if self.w_avg_beta is not None:
            w_avg = self.variable("batch_stats", "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
            if update_w_avg and self.is_mutable_collection("batch_stats") and not self.is_initializing():
                mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
                if self.axis_name is not None:  # the global batch's mean: the same on every device
                    mean = jax.lax.pmean(mean, self.axis_name)
                w_avg.value = mean + self.w_avg_beta * (w_avg.value - mean)  # lerp(mean, w_avg, beta)
        return x

    def w_avg(self) -> jax.Array:
        return self.get_variable("batch_stats", "w_avg")


# ----------------------------------------------------------------------------------------------- G


class StyleGAN2Generator(nn.Module):
    """Latent [B, latent_dim] (+ labels [B]) -> images [B, size, size, channels] (unbounded, ~[-1, 1]).

    Attributes:
      z_dim, w_dim: z's and w's sizes (paper: 512, 512); `latent_dim` is the whole Gaussian input
        (see the module docstring).
      image_size, channels: the output.
      channel_base, channel_max: width min(channel_base // resolution, channel_max) (config-f: 32768, 512).
      mapping_layers: the mapping network's depth (paper 8; ADA's CIFAR config 2).
      num_classes: > 0 embeds the class into the mapping network (StyleGAN2-ADA's conditional G).
      style_mixing_prob: the probability of style mixing regularization in training (0.9).
      use_noise: the per-pixel noise inputs.
      truncation_psi, truncation_cutoff: w <- w_avg + psi (w - w_avg) on the first `cutoff` ws (all when
        None), in training and sampling alike (set psi < 1 for sampling only).
      w_avg_beta: decay of w's running mean (in "batch_stats").
      fused_modconv: None = the reference's choice (grouped convolution when not training).
      latent_codes: InfoGAN codes are not supported here (must be empty).
      bn_axis_name: the axis over which w_avg's batch mean is averaged in training.
    """

    z_dim: int = 512
    w_dim: int = 512
    image_size: int = 32
    channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 8
    num_classes: int = 0
    style_mixing_prob: float = 0.9
    use_noise: bool = True
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    w_avg_beta: float = 0.995
    fused_modconv: bool | None = None
    latent_codes: latent.LatentCodes = latent.LatentCodes()
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    # --- the latent's layout -----------------------------------------------------------------

    @property
    def num_ws(self) -> int:
        return num_ws(self.image_size)

    @property
    def noise_dim(self) -> int:
        return sum(r * r for r in noise_resolutions(self.image_size)) if self.use_noise else 0

    @property
    def mixing_dim(self) -> int:
        return self.z_dim + 2 if self.style_mixing_prob > 0 else 0

    @property
    def latent_dim(self) -> int:
        """The size of the Gaussian input: z, style mixing's draws, the noise inputs."""
        return self.z_dim + self.mixing_dim + self.noise_dim

    def split_latent(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None, jax.Array | None, list[jax.Array]]:
        """(z, z_mix, [u_mix, u_cut] as normals, noise maps [B, r, r, 1] per layer) of a latent."""
        if x.ndim != 2 or x.shape[-1] != self.latent_dim:
            raise ValueError(
                f"StyleGAN2Generator expects latents [B, {self.latent_dim}] (z {self.z_dim} + style mixing "
                f"{self.mixing_dim} + noise {self.noise_dim}), got shape {tuple(x.shape)}; draw "
                "z ~ N(0, I) of size generator.latent_dim."
            )
        z, rest = x[:, : self.z_dim], x[:, self.z_dim :]
        z_mix = mix = None
        if self.mixing_dim:
            z_mix, mix, rest = rest[:, : self.z_dim], rest[:, self.z_dim : self.z_dim + 2], rest[:, self.z_dim + 2 :]
        noise, start = [], 0
        if self.use_noise:
            for r in noise_resolutions(self.image_size):
                noise.append(rest[:, start : start + r * r].reshape(-1, r, r, 1))
                start += r * r
        return z, z_mix, mix, noise

    # --- modules -------------------------------------------------------------------------------

    def setup(self):
        check_image_size(self.image_size, "StyleGAN2Generator")
        if self.latent_codes.q_outputs:
            raise ValueError("StyleGAN2Generator does not take InfoGAN latent codes; set model.info_* to 0.")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}.")
        self.mapping = MappingNetwork(
            self.w_dim,
            num_layers=self.mapping_layers,
            num_classes=self.num_classes,
            w_avg_beta=self.w_avg_beta,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
        )
        self.const = self.param("const", nn.initializers.normal(1.0), (4, 4, self._width(4)), jnp.float32)
        layers, to_rgb = [], []
        for r in block_resolutions(self.image_size):
            if r > 4:
                layers.append(self._layer(r, up=2, name=f"b{r}_conv0"))
            layers.append(self._layer(r, up=1, name=f"b{r}_conv1"))
            to_rgb.append(ToRGB(self.channels, fused=self.fused_modconv, dtype=self.dtype, name=f"b{r}_torgb"))
        self.layers, self.to_rgb = layers, to_rgb

    def _width(self, r: int) -> int:
        return channels_at(r, channel_base=self.channel_base, channel_max=self.channel_max)

    def _layer(self, r: int, *, up: int, name: str) -> SynthesisLayer:
        return SynthesisLayer(
            self._width(r), up=up, use_noise=self.use_noise, fused=self.fused_modconv, dtype=self.dtype, name=name
        )

    # --- the forward pass ----------------------------------------------------------------------

    def styles(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        """ws [B, num_ws, w_dim]: mapping, style mixing (training), truncation; updates w_avg when mutable."""
        check_labels(labels, batch_size=x.shape[0], num_classes=self.num_classes, who="StyleGAN2Generator")
        z, z_mix, mix, _ = self.split_latent(x)
        ws = self._broadcast(self.mapping(z, labels, update_w_avg=train))
        if train and self.mixing_dim:
            # Style mixing (Karras et al. 2019, sec. 3.1): from a crossover layer on, the ws of a second z.
            ws2 = self._broadcast(self.mapping(z_mix, labels))
            u = jax.scipy.special.ndtr(mix)  # two U(0, 1) per example
            cutoff = 1 + jnp.floor(u[:, 1] * (self.num_ws - 1)).astype(jnp.int32)  # in [1, num_ws - 1]
            cutoff = jnp.where(u[:, 0] < self.style_mixing_prob, jnp.minimum(cutoff, self.num_ws - 1), self.num_ws)
            second = jnp.arange(self.num_ws)[None, :] >= cutoff[:, None]
            ws = jnp.where(second[..., None], ws2, ws)
        return ws

    def _broadcast(self, w: jax.Array) -> jax.Array:
        """w [B, w_dim] -> ws [B, num_ws, w_dim], truncated in W (Karras et al. 2019, sec. 3.3):
        w_avg + psi (w - w_avg) on the first `truncation_cutoff` ws (all when None)."""
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, self.w_dim))
        if self.truncation_psi == 1.0:
            return ws
        w_avg = self.mapping.w_avg()
        truncated = w_avg + self.truncation_psi * (ws - w_avg)
        cutoff = self.num_ws if self.truncation_cutoff is None else self.truncation_cutoff
        return jnp.where((jnp.arange(self.num_ws) < cutoff)[None, :, None], truncated, ws)

    def synthesize(self, ws: jax.Array, x: jax.Array, *, train: bool = True) -> jax.Array:
        """ws [B, num_ws, w_dim] and the latent x (its noise part) -> images."""
        _, _, _, noise = self.split_latent(x)
        h = jnp.broadcast_to(self.const[None], (ws.shape[0], *self.const.shape))
        img, layer, w_idx = None, 0, 0
        for i, r in enumerate(block_resolutions(self.image_size)):
            for _ in range(2 if r > 4 else 1):
                h = self.layers[layer](h, ws[:, w_idx], noise[layer] if noise else None, train=train)
                layer, w_idx = layer + 1, w_idx + 1
            if img is not None:
                img = upfirdn.upsample2d(img, _FIR)
            y = self.to_rgb[i](h, ws[:, w_idx], train=train)  # the next block's first w
            img = y if img is None else img + y
        return img

    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        return self.synthesize(self.styles(x, labels, train=train), x, train=train)


# ----------------------------------------------------------------------------------------------- D


class DBlock(nn.Module):
    """The resnet D block: (conv3, conv3 + 2x down) + (1x1 down skip), both branches scaled by sqrt(1/2)."""

    tmp_features: int
    out_features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        g = math.sqrt(0.5)
        skip = EqualConv(self.out_features, 1, down=2, activation="linear", use_bias=False, gain=g, name="skip")(x)
        h = EqualConv(self.tmp_features, 3, dtype=self.dtype, name="conv0")(x)
        h = EqualConv(self.out_features, 3, down=2, gain=g, dtype=self.dtype, name="conv1")(h)
        return skip + h


class StyleGAN2Discriminator(DiscriminatorOptions):
    """Images [B, size, size, C] (+ labels [B]) -> logits [B // pack] (the resnet D).

    Attributes:
      image_size, channel_base, channel_max: as the generator's.
      minibatch_std, mbstd_group_size, mbstd_num_features: the minibatch standard deviation (on by
        default; group 4, 1 feature). Groups are CONSECUTIVE examples (the reference strides them),
        which with a per-device batch divisible by the group makes D's output the same on any number
        of devices.
      conditioning: "projection" (ADA's cmap projection; default), "concat" (one-hot input maps) or "none".
      mapping_layers: depth of the label mapping network (reference 8).
      width_multiplier: scales channel_base (the "weaken D" knob).
    Unsupported (a clear error): spectral_norm, aux_classifier, InfoGAN outputs, minibatch discrimination.
    Sows "features" (the last hidden layer) into "intermediates".
    """

    image_size: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    minibatch_std: bool = True
    mbstd_num_features: int = 1
    conditioning: str = "projection"
    mapping_layers: int = 8

    def _check(self) -> None:
        check_image_size(self.image_size, "StyleGAN2Discriminator")
        for field, off in (
            ("spectral_norm", False),
            ("aux_classifier", False),
            ("info_outputs", 0),
            ("minibatch_discrimination", 0),
        ):
            if getattr(self, field) != off:
                raise ValueError(
                    f"StyleGAN2Discriminator does not support {field}={getattr(self, field)!r}; set "
                    f"config.model.{field} to {off!r} (StyleGAN2 regularizes D with R1 instead)."
                )

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        self._check()
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"StyleGAN2Discriminator(image_size={self.image_size}) expects images [B, {self.image_size}, "
                f"{self.image_size}, C], got shape {tuple(x.shape)}; set image_size to the data's size."
            )
        base = scaled_width(self.channel_base, self.width_multiplier)
        width = lambda r: channels_at(r, channel_base=base, channel_max=self.channel_max)
        h = discriminator_input(self, x, labels)
        h = EqualConv(width(self.image_size), 1, dtype=self.dtype, name="fromrgb")(h)
        for r in block_resolutions(self.image_size)[::-1][:-1]:  # size, ..., 8
            h = DBlock(width(r), width(r // 2), dtype=self.dtype, name=f"b{r}")(h)
        if self.minibatch_std:
            h = minibatch_stddev(
                h, group_size=self.mbstd_group_size, num_features=self.mbstd_num_features, contiguous=True
            )
        h = EqualConv(width(4), 3, dtype=self.dtype, name="b4_conv")(h)
        phi = EqualDense(width(4), activation="lrelu", dtype=self.dtype, name="b4_fc")(h.reshape(h.shape[0], -1))
        self.sow("intermediates", "features", phi.astype(jnp.float32))
        projection = bool(self.num_classes) and self.conditioning == "projection"
        cmap_dim = width(4)
        out = EqualDense(cmap_dim if projection else 1, name="b4_out")(phi)
        if not projection:
            return out[:, 0]
        cmap = MappingNetwork(
            cmap_dim, num_layers=self.mapping_layers, num_classes=self.num_classes, w_avg_beta=None, name="mapping"
        )(None, labels[:: self.pack] if self.pack > 1 else labels)
        return jnp.sum(out * cmap, axis=-1) / math.sqrt(cmap_dim)
