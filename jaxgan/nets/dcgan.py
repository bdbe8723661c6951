"""DCGAN (Radford, Metz & Chintala 2016, arXiv:1511.06434) at 8, 16, 32 and 64 px.

G: a projection of z to 4x4, then stride-2 transposed convs with BatchNorm+ReLU,
tanh out. D: stride-2 convs with LeakyReLU(0.2), BatchNorm on all but the first,
no pooling, a linear logit. `extra_layers` adds 3x3 stride-1 conv layers to both
(G: before its output layer; D: after its first conv), as the `n_extra_layers` of
the DCGAN in Arjovsky, Chintala & Bottou's WGAN code (arXiv:1701.07875): at 8 px
G and D otherwise have a single conv each. BatchNorm is cross-replica over
`bn_axis_name` in training, so a data-parallel step sees the statistics of the
global batch.

Class conditioning (num_classes > 0) concatenates the label to z in G and, by
default, one-hot label maps to D's input channels (the cGAN of Mirza & Osindero
2014, arXiv:1411.1784); D also offers the projection term and the ACGAN head
(`jaxgan.nets.conditioning`), spectral norm, minibatch std / discrimination and
PacGAN packing (`jaxgan.nets.layers`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import latent
from jaxgan.common import DATA_AXIS
from jaxgan.nets.conditioning import (
    DiscriminatorOptions,
    class_batch_norm,
    check_labels,
    concat_label_to_latent,
    d_layer,
    generator_latent,
    discriminator_head,
    discriminator_input,
)
from jaxgan.nets.layers import (
    PatchesConv,
    batch_norm,
    PatchesConvTranspose,
    PhaseConvTranspose,
    SpaceToDepthConv,
    SubPixelConvTranspose,
    minibatch_stddev,
    scaled_width,
)

SUPPORTED_SIZES = (8, 16, 32, 64)


def _num_resolution_steps(image_size: int) -> int:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"DCGAN supports image_size in {SUPPORTED_SIZES}, got {image_size}; "
            "resize the data or pick another architecture."
        )
    return int(math.log2(image_size // 4))


def _check_extra_layers(extra_layers: int, who: str) -> None:
    if not isinstance(extra_layers, int) or extra_layers < 0:
        raise ValueError(f"{who}: extra_layers={extra_layers!r} must be an int >= 0 (3x3 stride-1 conv layers).")


UPSAMPLE_FORMS = ("patches", "phase", "subpixel", "transpose")
DOWNSAMPLE_FORMS = ("patches", "space_to_depth", "conv")


def _transposed_conv(form: str, features: int, use_bias: bool, dtype: Any, name: str) -> nn.Module:
    """A 4x4 stride-2 'SAME' transposed conv; every form has the same params and outputs."""
    if form == "patches":
        return PatchesConvTranspose(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "phase":
        return PhaseConvTranspose(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "subpixel":
        return SubPixelConvTranspose(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "transpose":
        return nn.ConvTranspose(
            features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias, dtype=dtype, name=name
        )
    raise ValueError(f"Unknown transposed-conv form {form!r}; valid: {UPSAMPLE_FORMS}.")


def _strided_conv(form: str, features: int, use_bias: bool, dtype: Any, name: str) -> nn.Module:
    """A 4x4 stride-2 'SAME' conv; both forms have the same params and outputs."""
    if form == "patches":
        return PatchesConv(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "space_to_depth":
        return SpaceToDepthConv(features, kernel_size=4, stride=2, use_bias=use_bias, dtype=dtype, name=name)
    if form == "conv":
        return nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias, dtype=dtype, name=name)
    raise ValueError(f"Unknown strided-conv form {form!r}; valid: {DOWNSAMPLE_FORMS}.")


class DCGANGenerator(nn.Module):
    """Latent [B, latent_dim] (+ labels [B]) -> images [B, size, size, channels] in [-1, 1].

    `upsample` picks how the transposed convs are computed: "subpixel" (one conv
    + depth-to-space, fast on CPU) or "transpose" (lax.conv_transpose); the two
    have identical parameters and outputs. With `num_classes > 0` the label's
    one-hot (label_embed_dim=0) or learned embedding is concatenated to z, and with
    `conditional_batch_norm` every BatchNorm of G takes a per-class scale and shift
    (de Vries et al. 2017, as Miyato & Koyama 2018's generator). With
    `latent_codes`, the first coordinates of z become InfoGAN codes
    (`jaxgan.latent`; Chen et al. 2016). `extra_layers` 3x3 conv+BN+ReLU layers
    run at size/2, before the output layer (module docstring).
    """

    latent_dim: int = 100
    image_size: int = 32
    channels: int = 3
    ngf: int = 64
    upsample: str = "subpixel"
    num_classes: int = 0
    label_embed_dim: int = 0
    latent_codes: latent.LatentCodes = latent.LatentCodes()
    extra_layers: int = 0
    conditional_batch_norm: bool = False
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        n_up = _num_resolution_steps(self.image_size)
        _check_extra_layers(self.extra_layers, "DCGANGenerator")
        if self.conditional_batch_norm and not self.num_classes:
            raise ValueError(
                "DCGANGenerator: conditional_batch_norm=True takes per-class scales and shifts, so it "
                "needs num_classes > 0; turn it off for an unconditional G."
            )
        check_labels(labels, batch_size=z.shape[0], num_classes=self.num_classes, who="DCGANGenerator")
        norm = functools.partial(
            class_batch_norm,
            labels=labels,
            train=train,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            num_classes=self.num_classes if self.conditional_batch_norm else 0,
        )
        width = self.ngf * 2 ** (n_up - 1)
        z_in = generator_latent(z, self.latent_codes, latent_dim=self.latent_dim, who="DCGANGenerator")
        h = concat_label_to_latent(
            z_in.astype(self.dtype),
            labels,
            num_classes=self.num_classes,
            embed_dim=self.label_embed_dim,
            dtype=self.dtype,
        )
        h = nn.Dense(4 * 4 * width, use_bias=False, dtype=self.dtype)(h)
        h = h.reshape(z.shape[0], 4, 4, width)
        h = nn.relu(norm(h))
        for i in range(n_up - 1):
            width //= 2
            h = _transposed_conv(self.upsample, width, False, self.dtype, f"up{i}")(h)
            h = nn.relu(norm(h))
        for i in range(self.extra_layers):
            h = nn.Conv(width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype, name=f"extra{i}")(h)
            h = nn.relu(norm(h))
        h = _transposed_conv(self.upsample, self.channels, True, self.dtype, "to_image")(h)
        return jnp.tanh(h).astype(jnp.float32)


class DCGANDiscriminator(DiscriminatorOptions):
    """Images [B, size, size, C] (+ labels [B]) -> logits [B // pack].

    Attributes:
      image_size, ndf: input size (8, 16, 32 or 64) and the first conv's width (doubling per layer;
        log2(size / 4) stride-2 convs, so at 8 px a single conv, without BatchNorm, before the head).
      extra_layers: 3x3 stride-1 convs after the first conv, at its width (module docstring), each
        with LeakyReLU and, with batch_norm, BatchNorm.
      width_multiplier: scales `ndf` (the "weaken D" knob; see
        `jaxgan.nets.registry.D_CAPACITY_PRESETS`).
      batch_norm: BatchNorm after every conv but the first (DCGAN). Turn it off
        for a WGAN-GP critic (Gulrajani et al. 2017, arXiv:1704.00028 sec. 4)
        or with spectral norm (Miyato et al. 2018's CNN D has none).
      spectral_norm: spectral normalization on every layer (Miyato et al. 2018,
        arXiv:1802.05957); its power-iteration vectors live in "batch_stats".
      num_classes, conditioning, aux_classifier: "concat" (one-hot maps as extra
        input channels), "projection" or "none" (ACGAN head only); see
        `jaxgan.nets.conditioning`.
      minibatch_std, mbstd_group_size: the minibatch-std channel (Karras et al.
        2018) appended before the last conv.
      minibatch_discrimination, mbd_kernel_dim: minibatch discrimination kernels
        on the flattened last feature map (0 = off; Salimans et al. 2016).
      pack: PacGAN packing (Lin et al. 2018): `pack` consecutive images are
        judged jointly, concatenated along channels.
      bn_axis_name: the cross-replica axis of BatchNorm (and of spectral norm's
        power iterates) in training; None outside a mapped axis.

    Sows "features" (the flattened 4x4 map, [B // pack, 16 * 2^(n-1) * ndf]) and,
    with aux_classifier, "class_logits" into "intermediates".
    """

    image_size: int = 32
    ndf: int = 64
    batch_norm: bool = True
    downsample: str = "conv"
    extra_layers: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        n_down = _num_resolution_steps(self.image_size)
        _check_extra_layers(self.extra_layers, "DCGANDiscriminator")
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"DCGANDiscriminator(image_size={self.image_size}) expects images [B, {self.image_size}, "
                f"{self.image_size}, C], got shape {tuple(x.shape)}; set image_size to the data's size."
            )
        h = discriminator_input(self, x, labels)
        layer = lambda lyr, h: d_layer(self, lyr, h, train)
        width = scaled_width(self.ndf, self.width_multiplier)
        for i in range(n_down):
            if self.minibatch_std and i == n_down - 1:
                h = minibatch_stddev(h, group_size=self.mbstd_group_size)
            h = layer(_strided_conv(self.downsample, width, i == 0 or not self.batch_norm, self.dtype, f"down{i}"), h)
            if i > 0 and self.batch_norm:
                h = batch_norm(train, self.bn_axis_name, self.dtype)(h)
            h = nn.leaky_relu(h, 0.2)
            for j in range(self.extra_layers if i == 0 else 0):
                h = layer(
                    nn.Conv(
                        width, (3, 3), padding="SAME", use_bias=not self.batch_norm, dtype=self.dtype, name=f"extra{j}"
                    ),
                    h,
                )
                if self.batch_norm:
                    h = batch_norm(train, self.bn_axis_name, self.dtype)(h)
                h = nn.leaky_relu(h, 0.2)
            width *= 2
        phi = h.reshape(h.shape[0], -1)  # 4x4 features -> one logit: DCGAN's final 4x4 valid conv
        return discriminator_head(self, phi, labels, train=train)
