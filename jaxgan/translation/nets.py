"""Image-to-image networks: CycleGAN's ResNet generator, pix2pix's U-Net, the PatchGAN discriminator.

All NHWC, images in [-1, 1] (tanh outputs), weights N(0, 0.02) as in both papers'
reference code. Normalization is instance normalization (Ulyanov et al. 2016,
arXiv:1607.08022) everywhere, so the nets keep no running statistics: for
pix2pix, whose paper uses batch normalization at batch size 1 with test-batch
statistics at inference (Isola et al. 2017, sec. 3.3 and 6.1), that IS instance
normalization (with an affine scale and bias, kept here).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_INIT = nn.initializers.normal(0.02)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Reflection padding of H and W (CycleGAN pads this way to reduce border artifacts)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def instance_norm(affine: bool) -> nn.Module:
    """Per-example, per-channel normalization over H, W (eps 1e-5 as torch.nn.InstanceNorm2d)."""
    return nn.InstanceNorm(epsilon=1e-5, use_scale=affine, use_bias=affine)


class ResnetBlock(nn.Module):
    """R_k: two reflection-padded 3x3 convs with instance norm and a residual connection."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=_INIT)(reflect_pad(x, 1))
        y = nn.relu(instance_norm(False)(y))
        y = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=_INIT)(reflect_pad(y, 1))
        return x + instance_norm(False)(y)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: c7s1-64, d128, d256, R256 x num_blocks, u128, u64, c7s1-3.

    `features` scales every width (64 in the paper); `num_blocks` is 6 for 128 px
    and 9 for 256 px. Takes any H, W divisible by 4 (two stride-2 convs).

    References:
      Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
      Networks", arXiv:1703.10593, sec. 4 and appendix 7.2; Johnson et al. 2016 (the architecture).
    """

    features: int = 64
    num_blocks: int = 9
    out_channels: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout, no batch statistics
        f = self.features
        x = nn.Conv(f, (7, 7), padding="VALID", kernel_init=_INIT)(reflect_pad(x, 3))  # c7s1-64
        x = nn.relu(instance_norm(False)(x))
        for mult in (2, 4):  # d128, d256
            x = nn.Conv(f * mult, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=_INIT)(x)
            x = nn.relu(instance_norm(False)(x))
        for _ in range(self.num_blocks):  # R256
            x = ResnetBlock(f * 4)(x)
        for mult in (2, 1):  # u128, u64: fractionally strided 3x3 convs doubling H and W
            x = nn.ConvTranspose(f * mult, (3, 3), strides=(2, 2), padding="SAME", kernel_init=_INIT)(x)
            x = nn.relu(instance_norm(False)(x))
        x = nn.Conv(self.out_channels, (7, 7), padding="VALID", kernel_init=_INIT)(reflect_pad(x, 3))  # c7s1-3
        return jnp.tanh(x)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: encoder C64-C128-C256-C512-C512-..., decoder mirrored with skip connections.

    Every layer is a 4x4 stride-2 conv; `num_downs` halvings (8 for 256 px, down to
    1x1), so H and W must be divisible by 2**num_downs. The first encoder layer and
    the innermost one have no normalization; the decoder's first three layers
    (CD512-CD512-CD512, appendix 6.1.1) use dropout 0.5, the paper's only noise
    source (sec. 3.1); the reference code starts the dropout one layer later. Decoder layer i takes the concatenation of the previous decoder
    output and encoder layer n - i (the skip connections, sec. 3.2.1).

    References:
      Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks",
      arXiv:1611.07004, sec. 3.2.1 and appendix 6.1.2; Ronneberger et al. 2015 (U-Net).
    """

    features: int = 64
    num_downs: int = 8
    out_channels: int = 3
    dropout_rate: float = 0.5

    def widths(self) -> list[int]:
        return [self.features * min(2**i, 8) for i in range(self.num_downs)]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        widths = self.widths()
        skips = []
        for i, w in enumerate(widths):
            if i > 0:
                x = nn.leaky_relu(x, 0.2)
            x = nn.Conv(w, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=_INIT)(x)
            if 0 < i < self.num_downs - 1:
                x = instance_norm(True)(x)
            skips.append(x)
        n = self.num_downs
        for i in range(n - 1):  # decoder up to the last (outermost) layer
            w = widths[n - 2 - i]
            x = nn.ConvTranspose(w, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_INIT)(nn.relu(x))
            x = instance_norm(True)(x)
            if i < 3 and self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = jnp.concatenate([x, skips[n - 2 - i]], axis=-1)
        x = nn.ConvTranspose(self.out_channels, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_INIT)(nn.relu(x))
        return jnp.tanh(x)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: C64-C128-C256-C512 then a 1-channel conv, one logit per patch.

    4x4 convs (stride 2 except the last two), LeakyReLU 0.2, no normalization on
    C64, padding 1 as the reference code: a 256x256 input gives [30, 30] logits,
    each with a 70x70 receptive field. `num_layers` = 3 is the 70x70 PatchGAN.
    pix2pix conditions it by concatenating the input image on channels (the
    caller's job). Returns logits [B, h, w].

    References:
      Isola et al. 2017, arXiv:1611.07004, sec. 3.2.2 and appendix 6.1.2; Zhu et al. 2017, sec. 4.
    """

    features: int = 64
    num_layers: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        pad = ((1, 1), (1, 1))
        x = nn.leaky_relu(nn.Conv(self.features, (4, 4), strides=(2, 2), padding=pad, kernel_init=_INIT)(x), 0.2)
        for i in range(1, self.num_layers + 1):
            stride = 2 if i < self.num_layers else 1
            w = self.features * min(2**i, 8)
            x = nn.Conv(w, (4, 4), strides=(stride, stride), padding=pad, kernel_init=_INIT)(x)
            x = nn.leaky_relu(instance_norm(False)(x), 0.2)
        return nn.Conv(1, (4, 4), padding=pad, kernel_init=_INIT)(x)[..., 0]


def patch_receptive_field(num_layers: int = 3) -> int:
    """Receptive field (px) of one PatchGAN logit: 70 for num_layers=3 (kernel 4 everywhere)."""
    strides = [2] * num_layers + [1, 1]
    field = 1
    for s in reversed(strides):
        field = (field - 1) * s + 4
    return field


def check_image_size(height: int, width: int, *, multiple: int, what: str) -> None:
    """Raises ValueError unless H and W are positive multiples of `multiple` (before any compilation)."""
    if height < multiple or width < multiple or height % multiple or width % multiple:
        raise ValueError(
            f"{what}: size {height}x{width} cannot be halved enough times; this generator needs "
            f"height and width that are multiples of {multiple}. Crop or resize the image "
            f"(e.g. to {max(multiple, height // multiple * multiple)}x"
            f"{max(multiple, width // multiple * multiple)})."
        )


def size_multiple(generator: nn.Module) -> int:
    """H and W of the generator's inputs must be multiples of this (1 for a module not known here)."""
    if isinstance(generator, UNetGenerator):
        return 2**generator.num_downs
    if isinstance(generator, ResnetGenerator):
        return 4
    return int(getattr(generator, "size_multiple", 1))
