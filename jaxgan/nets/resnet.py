"""ResNet G and D in the SNGAN / BigGAN style, at 32, 64 and 128 px.

Miyato, Kataoka, Koyama & Yoshida 2018 (SNGAN, arXiv:1802.05957, appendix B.4)
after Gulrajani et al. 2017 (WGAN-GP's ResNet, arXiv:1704.00028); the 64/128 px
widths are BigGAN's (Brock, Donahue & Simonyan 2019, arXiv:1809.11096, tables
4-5; `G_arch`/`D_arch` of its reference code) with ch = ngf / ndf.

G: z -> linear to 4x4 -> residual up-blocks (BN-ReLU-up-conv3-BN-ReLU-conv3,
plus an upsampled 1x1-conv shortcut) -> BN-ReLU-conv3-tanh. With
`num_classes > 0` every block's BatchNorm is class-conditional (de Vries et al.
2017; Miyato & Koyama 2018, arXiv:1802.05637).

D: residual down-blocks (ReLU-conv3-ReLU-conv3-avgpool, plus a 1x1-conv +
avgpool shortcut; the first block "optimized": conv3-ReLU-conv3-avgpool with an
avgpool + 1x1 shortcut, since a ReLU on the image would discard information),
`depth` plain blocks at the lowest resolution, ReLU, global SUM pooling, a
linear logit; class conditioning by projection (Miyato & Koyama 2018) by
default. Spectral norm on every D layer is on by default, as in SNGAN.

Widths, in units of ngf / ndf:
  G (4x4 first):   32: 1,1,1,1   64: 16,8,4,2,1   128: 16,16,8,4,2,1
  D down blocks:   32: 1,1       64: 1,2,4,8      128: 1,2,4,8,16
  D plain blocks:  32: 2 x 1     64: 1 x 16       128: 1 x 16   (default depth)
At 32 px this is SNGAN's CIFAR-10 net with ngf=256, ndf=128.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import latent
from jaxgan.common import DATA_AXIS
from jaxgan.nets.attention import SelfAttention
from jaxgan.nets.conditioning import (
    DiscriminatorOptions,
    VectorConditionalBatchNorm,
    check_labels,
    class_batch_norm,
    discriminator_head,
    discriminator_input,
    generator_latent,
)
from jaxgan.nets.layers import apply_layer, avg_pool2, minibatch_stddev, scaled_width, upsample_nearest

SUPPORTED_SIZES = (32, 64, 128)

# image_size -> G widths (first at 4x4), then one up-block per consecutive pair.
_G_WIDTHS = {32: (1, 1, 1, 1), 64: (16, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}
# image_size -> (D down-block widths, plain-block width, default number of plain blocks).
_D_ARCH = {32: ((1, 1), 1, 2), 64: ((1, 2, 4, 8), 16, 1), 128: ((1, 2, 4, 8, 16), 16, 1)}

# SNGAN's inits: Glorot-uniform with gain sqrt(2) on the residual convs, gain 1 elsewhere.
_RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
_INIT = nn.initializers.xavier_uniform()


def g_resolutions(image_size: int) -> tuple[int, ...]:
    """The resolutions G's up-blocks output: 8, 16, ..., image_size."""
    return tuple(8 * 2**i for i in range(len(_G_WIDTHS[image_size]) - 1))


def d_resolutions(image_size: int) -> tuple[int, ...]:
    """The resolutions D's down-blocks output: image_size / 2, image_size / 4, ..."""
    return tuple(image_size // 2 ** (i + 1) for i in range(len(_D_ARCH[image_size][0])))


def check_attention_resolution(resolution: int, options: tuple[int, ...], who: str) -> None:
    """0 (no attention) or a resolution that a block outputs; attention needs an even size, at least 4."""
    valid = tuple(r for r in options if r >= 4)
    if resolution != 0 and resolution not in valid:
        raise ValueError(
            f"{who}: attention_resolution={resolution!r} is not the output of one of its blocks; valid: 0 (none) "
            f"or one of {valid}."
        )


def check_size(image_size: int, who: str) -> None:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(
            f"{who} supports image_size in {SUPPORTED_SIZES}, got {image_size}; "
            "resize the data or pick another architecture."
        )


class GBlock(nn.Module):
    """Residual up-block: BN-ReLU-up2-conv3-BN-ReLU-conv3 + conv1(up2(x)).

    The 1x1 shortcut runs before the nearest-neighbour upsampling: the two
    commute (a pointwise linear map) and this is 4x cheaper.
    """

    features: int
    num_classes: int = 0
    spectral_norm: bool = False
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, labels: jax.Array | None, *, train: bool, cond: jax.Array | None = None
    ) -> jax.Array:
        """`cond`: BigGAN's conditioning vector of this block ([B, d]); its BatchNorms then take their scale
        and shift from it (`VectorConditionalBatchNorm`) instead of per-class tables."""
        bn = dict(num_classes=self.num_classes, train=train, axis_name=self.bn_axis_name, dtype=self.dtype)

        def norm(h, name):
            if cond is None:
                return class_batch_norm(h, labels, name=name, **bn)
            return VectorConditionalBatchNorm(
                spectral_norm=self.spectral_norm, axis_name=self.bn_axis_name, dtype=self.dtype, name=name
            )(h, cond, train=train)

        def conv(k, init, name, h):
            layer = nn.Conv(self.features, (k, k), padding="SAME", kernel_init=init, dtype=self.dtype, name=name)
            return apply_layer(layer, h, spectral_norm=self.spectral_norm, train=train, axis_name=self.bn_axis_name)

        h = nn.relu(norm(x, "bn0"))
        h = conv(3, _RESIDUAL_INIT, "conv0", upsample_nearest(h))
        h = nn.relu(norm(h, "bn1"))
        h = conv(3, _RESIDUAL_INIT, "conv1", h)
        return h + upsample_nearest(conv(1, _INIT, "shortcut", x))


class DBlock(nn.Module):
    """Residual down-block: ReLU-conv3-ReLU-conv3-avgpool + avgpool(conv1(x)).

    `optimized` (the first block, Miyato et al. 2018): no leading ReLU, and the
    shortcut is conv1(avgpool(x)). Without `downsample` it is a plain block
    whose shortcut is the identity, or a 1x1 conv when the width changes.
    """

    features: int
    downsample: bool = True
    optimized: bool = False
    spectral_norm: bool = True
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layer = lambda lyr, h: apply_layer(
            lyr, h, spectral_norm=self.spectral_norm, train=train, axis_name=self.bn_axis_name
        )
        conv = lambda k, init, name: nn.Conv(
            self.features, (k, k), padding="SAME", kernel_init=init, dtype=self.dtype, name=name
        )
        h = x if self.optimized else nn.relu(x)
        h = layer(conv(3, _RESIDUAL_INIT, "conv0"), h)
        h = layer(conv(3, _RESIDUAL_INIT, "conv1"), nn.relu(h))
        if self.downsample:
            h = avg_pool2(h)
        if self.optimized:
            shortcut = layer(conv(1, _INIT, "shortcut"), avg_pool2(x))
        elif self.downsample or x.shape[-1] != self.features:
            shortcut = layer(conv(1, _INIT, "shortcut"), x)
            shortcut = avg_pool2(shortcut) if self.downsample else shortcut
        else:
            shortcut = x
        return h + shortcut


class ResNetGenerator(nn.Module):
    """Latent [B, latent_dim] (+ labels [B]) -> images [B, size, size, channels] in [-1, 1].

    Attributes:
      latent_dim, image_size (32, 64, 128), channels, ngf: see the module docstring.
      num_classes: > 0 gives every residual block conditional BatchNorm (labels required).
      latent_codes: InfoGAN codes taken from the first coordinates of z (`jaxgan.latent`).
      attention_resolution: SAGAN's self-attention block after the up-block that outputs this
        resolution (`jaxgan.nets.attention`; 0 = none).
      hierarchical_latent, shared_embedding_dim: BigGAN's G (`_biggan_conditioning`): z cut into a
        chunk per block, and one class embedding shared by the blocks, both read by every block's
        BatchNorm through `VectorConditionalBatchNorm`.
      spectral_norm: on every layer of G (its linear layer, convolutions, attention and BigGAN's
        conditional-BatchNorm maps; not the class tables), as SAGAN and BigGAN do (Zhang et al. 2019,
        sec. 5: "spectral normalization for both generator and discriminator"); power iterates in
        "batch_stats".
      bn_axis_name: the cross-replica BatchNorm axis in training; None outside a mapped axis.
    """

    latent_dim: int = 128
    image_size: int = 32
    channels: int = 3
    ngf: int = 64
    num_classes: int = 0
    latent_codes: latent.LatentCodes = latent.LatentCodes()
    attention_resolution: int = 0
    hierarchical_latent: bool = False
    shared_embedding_dim: int = 0
    spectral_norm: bool = False
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        check_size(self.image_size, "ResNetGenerator")
        check_attention_resolution(self.attention_resolution, g_resolutions(self.image_size), "ResNetGenerator")
        check_labels(labels, batch_size=z.shape[0], num_classes=self.num_classes, who="ResNetGenerator")
        widths = [self.ngf * m for m in _G_WIDTHS[self.image_size]]
        z_in = generator_latent(z, self.latent_codes, latent_dim=self.latent_dim, who="ResNetGenerator")
        z_first, conds = self._biggan_conditioning(z_in, labels, num_blocks=len(widths) - 1)
        sn = dict(spectral_norm=self.spectral_norm, train=train, axis_name=self.bn_axis_name)
        linear = nn.Dense(4 * 4 * widths[0], kernel_init=_INIT, dtype=self.dtype, name="linear")
        h = apply_layer(linear, z_first.astype(self.dtype), **sn)
        h = h.reshape(z.shape[0], 4, 4, widths[0])
        for i, width in enumerate(widths[1:]):
            h = GBlock(
                width,
                num_classes=self.num_classes,
                spectral_norm=self.spectral_norm,
                bn_axis_name=self.bn_axis_name,
                dtype=self.dtype,
                name=f"up{i}",
            )(h, labels, train=train, cond=conds[i])
            if h.shape[1] == self.attention_resolution:
                h = SelfAttention(
                    spectral_norm=self.spectral_norm, bn_axis_name=self.bn_axis_name, dtype=self.dtype, name="attention"
                )(h, train=train)
        h = nn.relu(
            class_batch_norm(
                h, None, num_classes=0, train=train, axis_name=self.bn_axis_name, dtype=self.dtype, name="bn_out"
            )
        )
        to_image = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=_INIT, dtype=self.dtype, name="to_image")
        h = apply_layer(to_image, h, **sn)
        return jnp.tanh(h).astype(jnp.float32)

    def _biggan_conditioning(
        self, z: jax.Array, labels: jax.Array | None, *, num_blocks: int
    ) -> tuple[jax.Array, list[jax.Array | None]]:
        """(what the first linear layer reads, each block's BigGAN conditioning vector or None).

        BigGAN (Brock et al. 2019, sec. 3 and fig. 15): with `hierarchical_latent`, z is cut into
        num_blocks + 1 equal chunks, the first for the linear layer and chunk i + 1 for block i; with
        `shared_embedding_dim`, one class embedding is shared by every block. Block i's BatchNorms are
        conditioned on [chunk i + 1, embedding] (either alone when the other is off). Neither: None, the
        SNGAN G (whole z to the linear layer, per-class BatchNorm tables)."""
        if not (self.hierarchical_latent or self.shared_embedding_dim):
            return z, [None] * num_blocks
        if self.num_classes and not self.shared_embedding_dim:
            raise ValueError(
                "ResNetGenerator: a conditional hierarchical-latent G conditions its BatchNorms on [z chunk, "
                "class embedding]; set shared_embedding_dim > 0 (BigGAN: 128)."
            )
        if self.shared_embedding_dim and not self.num_classes:
            raise ValueError("ResNetGenerator: shared_embedding_dim needs num_classes > 0 (it embeds the labels).")
        parts: list[list[jax.Array]] = [[] for _ in range(num_blocks)]
        first = z
        if self.hierarchical_latent:
            slots = num_blocks + 1
            if z.shape[-1] % slots:
                raise ValueError(
                    f"ResNetGenerator: hierarchical_latent cuts z into {slots} equal chunks (1 + {num_blocks} "
                    f"blocks), but latent_dim is {z.shape[-1]}; use a multiple of {slots}."
                )
            chunks = jnp.split(z, slots, axis=-1)
            first = chunks[0]
            for i in range(num_blocks):
                parts[i].append(chunks[i + 1])
        if self.shared_embedding_dim:
            shared = nn.Embed(self.num_classes, self.shared_embedding_dim, name="shared_embedding")(labels)
            for i in range(num_blocks):
                parts[i].append(shared)
        return first, [jnp.concatenate(p, axis=-1) for p in parts]


class ResNetDiscriminator(DiscriminatorOptions):
    """Images [B, size, size, C] (+ labels [B]) -> logits [B // pack].

    Attributes:
      image_size (32, 64, 128), ndf: see the module docstring.
      width_multiplier: scales `ndf` (the "weaken D" knob; see
        `jaxgan.nets.registry.D_CAPACITY_PRESETS`).
      depth: plain residual blocks after the down-blocks; None = the
        architecture's (2 at 32 px, 1 at 64/128).
      spectral_norm: on every layer (Miyato et al. 2018); the power-iteration
        vectors live in "batch_stats".
      attention_resolution: SAGAN's self-attention block (spectrally normalised with the rest) after
        the down-block that outputs this resolution (0 = none).
      num_classes, conditioning, aux_classifier: "projection" (default; Miyato &
        Koyama 2018), "concat" (one-hot input channels) or "none" (ACGAN head
        only); see `jaxgan.nets.conditioning`.
      minibatch_std, mbstd_group_size: the minibatch-std channel (Karras et al.
        2018) appended before the last residual block.
      minibatch_discrimination, mbd_kernel_dim: minibatch discrimination kernels
        on the pooled features (0 = off; Salimans et al. 2016).
      pack: PacGAN packing (Lin et al. 2018), along channels.
      bn_axis_name: axis over which spectral norm's power iterates are kept
        replicated in training; None outside a mapped axis.

    Sows "features" (the sum-pooled ReLU features, [B // pack, width]) and,
    with aux_classifier, "class_logits" into "intermediates".
    """

    image_size: int = 32
    ndf: int = 64
    depth: int | None = None
    spectral_norm: bool = True
    conditioning: str = "projection"
    attention_resolution: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        check_size(self.image_size, "ResNetDiscriminator")
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"ResNetDiscriminator(image_size={self.image_size}) expects images [B, {self.image_size}, "
                f"{self.image_size}, C], got shape {tuple(x.shape)}; set image_size to the data's size."
            )
        down, plain_width, default_depth = _D_ARCH[self.image_size]
        check_attention_resolution(self.attention_resolution, d_resolutions(self.image_size), "ResNetDiscriminator")
        depth = default_depth if self.depth is None else self.depth
        if depth < 0:
            raise ValueError(f"ResNetDiscriminator: depth must be >= 0 plain blocks (or None), got {depth}.")
        ndf = scaled_width(self.ndf, self.width_multiplier)
        blocks = [(ndf * m, True) for m in down] + [(ndf * plain_width, False)] * depth
        h = discriminator_input(self, x, labels)
        for i, (width, downsample) in enumerate(blocks):
            if self.minibatch_std and i == len(blocks) - 1:
                h = minibatch_stddev(h, group_size=self.mbstd_group_size)
            h = DBlock(
                width,
                downsample=downsample,
                optimized=(i == 0),
                spectral_norm=self.spectral_norm,
                bn_axis_name=self.bn_axis_name,
                dtype=self.dtype,
                name=f"block{i}",
            )(h, train=train)
            if downsample and h.shape[1] == self.attention_resolution:
                h = SelfAttention(
                    spectral_norm=self.spectral_norm, bn_axis_name=self.bn_axis_name, dtype=self.dtype, name="attention"
                )(h, train=train)
        phi = jnp.sum(nn.relu(h), axis=(1, 2))  # global sum pooling (SNGAN)
        return discriminator_head(self, phi, labels, train=train)
