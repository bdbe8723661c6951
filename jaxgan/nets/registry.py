"""Architectures by name: what each network pair is built from, so configs select them by name.

`ARCHITECTURES[name].from_config(model, sample_shape, ...)` builds (G, D) from the fields of an experiment
config's `model` section (any mapping with `[]` and `.get`; nothing here reads a config file): each
architecture's `fields` is the one place that maps those fields onto its constructors' arguments, and
`from_config` adds what every architecture shares (latent size, classes, the discriminator options of
`jaxgan.nets.conditioning`, the D capacity preset). Also the early checks a config runs before building
anything (`check_image_size`) and the D capacity presets, the "weaken D" remedy for a D that wins too easily.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn

from jaxgan import latent
from jaxgan.nets import dcgan, resnet, stylegan2
from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator
from jaxgan.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

Model = Mapping[str, Any]  # an experiment config's `model` section
Fields = Callable[[Model, tuple[int, ...]], tuple[dict[str, Any], dict[str, Any]]]


def extra_layers(model: Model, net: str) -> int:
    """DCGAN extra 3x3 conv layers of G (`net`="g") or D ("d"): model.g_/d_extra_layers, or model.extra_layers
    where that is -1."""
    own = model.get(f"{net}_extra_layers", -1)
    return model.get("extra_layers", 0) if own == -1 else own


# Config fields that only one architecture reads, with the value that means "off": set on another
# architecture they would be silently ignored, so `from_config` refuses them there.
OWN_FIELDS: dict[str, tuple[str, Any]] = {
    "extra_layers": ("dcgan", 0),
    "g_extra_layers": ("dcgan", -1),
    "d_extra_layers": ("dcgan", -1),
    "g_conditional_bn": ("dcgan", False),
    "attention_resolution": ("resnet", 0),
    "hierarchical_latent": ("resnet", False),
    "shared_embedding_dim": ("resnet", 0),
    "g_spectral_norm": ("resnet", False),
    "channel_base": ("stylegan2", 0),
    "channel_max": ("stylegan2", 0),
    "w_dim": ("stylegan2", 0),
    "mapping_layers": ("stylegan2", 0),
    "d_mapping_layers": ("stylegan2", 0),
    "style_mixing_prob": ("stylegan2", 0.0),
}


def _check_own_fields(m: Model, name: str) -> None:
    """Refuses a field another architecture owns, set to a value other than its "off"."""
    for field, (owner, off) in OWN_FIELDS.items():
        value = m.get(field, off)
        if owner != name and value != off:
            raise ValueError(
                f"config.model.{field}={value!r} is a {owner.upper()} option; model.name is {name!r}. "
                f"Set it to {off!r} or use model.name={owner!r}."
            )


def _check_dcgan_fields(m: Model) -> None:
    """DCGAN's own config fields, checked where they are read (their errors name the config field)."""
    if m["upsample"] not in dcgan.UPSAMPLE_FORMS:
        raise ValueError(f"config.model.upsample={m['upsample']!r}; valid: {dcgan.UPSAMPLE_FORMS}.")
    if m.get("downsample", "conv") not in dcgan.DOWNSAMPLE_FORMS:
        raise ValueError(f"config.model.downsample={m['downsample']!r}; valid: {dcgan.DOWNSAMPLE_FORMS}.")
    for field, lowest in (("extra_layers", 0), ("g_extra_layers", -1), ("d_extra_layers", -1)):
        value = m.get(field, lowest)
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            raise ValueError(
                f"config.model.{field}={value!r} must be an int >= {lowest}"
                + (" (-1: as model.extra_layers)." if lowest else ".")
            )
    if m.get("g_conditional_bn", False) and not m["num_classes"]:
        raise ValueError(
            "config.model.g_conditional_bn=True gives G per-class BatchNorm scales and shifts, so "
            "it needs model.num_classes > 0 (or data.cluster_labels); set it to False otherwise."
        )


def _dcgan_fields(m: Model, shape: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    _check_dcgan_fields(m)
    size, channels = shape[0], shape[2]
    return (
        dict(
            image_size=size,
            channels=channels,
            ngf=m["g_width"],
            upsample=m["upsample"],
            label_embed_dim=m["label_embed_dim"],
            extra_layers=extra_layers(m, "g"),
            conditional_batch_norm=m.get("g_conditional_bn", False),
        ),
        dict(
            image_size=size,
            ndf=m["d_width"],
            batch_norm=m["d_batch_norm"],
            downsample=m.get("downsample", "conv"),
            extra_layers=extra_layers(m, "d"),
        ),
    )


def _mlp_fields(m: Model, shape: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        dict(
            out_shape=tuple(shape),
            hidden=m["g_width"],
            depth=m["depth"],
            tanh_output=len(shape) == 3,
            label_embed_dim=m["label_embed_dim"],
            batch_norm=m.get("g_batch_norm", False),
        ),
        dict(hidden=m["d_width"], maxout_pieces=m.get("d_maxout_pieces", 0), depth=m.get("d_depth", 0) or m["depth"]),
    )


def _resnet_fields(m: Model, shape: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    attention = m.get("attention_resolution", 0)  # SAGAN's block at this resolution in G and D (0 = none)
    both = tuple(sorted(set(resnet.g_resolutions(shape[0])) & set(resnet.d_resolutions(shape[0]))))
    if attention != 0 and attention not in both:
        raise ValueError(
            f"config.model.attention_resolution={attention!r}: at image_size {shape[0]} the resolutions both G's "
            f"and D's blocks output are {both}; set one of them, or 0 for no attention."
        )
    return (
        dict(
            image_size=shape[0],
            channels=shape[2],
            ngf=m["g_width"],
            attention_resolution=attention,
            hierarchical_latent=m.get("hierarchical_latent", False),
            shared_embedding_dim=m.get("shared_embedding_dim", 0),
            spectral_norm=m.get("g_spectral_norm", False),
        ),
        dict(image_size=shape[0], ndf=m["d_width"], attention_resolution=attention),
    )


def _stylegan2_fields(m: Model, shape: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    base, cmax = m.get("channel_base", 0), m.get("channel_max", 0)
    if base < 1 or cmax < 1:
        raise ValueError(
            f"config.model.channel_base={base!r} and channel_max={cmax!r} size StyleGAN2's widths "
            "(min(channel_base // resolution, channel_max)); set both > 0, e.g. 32768 and 512 (the paper's) "
            "or the stylegan2 preset's small CPU widths."
        )
    both = dict(image_size=shape[0], channel_base=base, channel_max=cmax)
    return (
        dict(
            channels=shape[2],
            w_dim=m.get("w_dim", 0) or m["latent_dim"],
            mapping_layers=m.get("mapping_layers", 0) or 8,
            style_mixing_prob=m.get("style_mixing_prob", 0.0),
            **both,
        ),
        dict(mapping_layers=m.get("d_mapping_layers", 0) or 8, **both),
    )


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A generator/discriminator pair, the square image sizes it supports (None: any sample shape), and
    `fields(model, sample_shape) -> (G kwargs, D kwargs)`: its own config fields, mapped in this one place."""

    name: str
    generator: type[nn.Module]
    discriminator: type[nn.Module]
    image_sizes: tuple[int, ...] | None
    fields: Fields
    latent_field: str = "latent_dim"  # the generator's argument that model.latent_dim sets (StyleGAN2: z_dim)

    def from_config(
        self, model: Model, sample_shape: tuple[int, ...], *, latent_codes: latent.LatentCodes, dtype: Any
    ) -> tuple[nn.Module, nn.Module]:
        """(G, D) for samples of `sample_shape` from `model`'s fields; `latent_codes` (InfoGAN codes, sizing
        D's Q head) and the compute `dtype` come resolved."""
        _check_own_fields(model, self.name)
        g_own, d_own = self.fields(model, sample_shape)
        generator = self.generator(
            **{self.latent_field: model["latent_dim"]},
            num_classes=model["num_classes"],
            latent_codes=latent_codes,
            dtype=dtype,
            **g_own,
        )
        d_kwargs = dict(  # `jaxgan.nets.conditioning.DiscriminatorOptions`: the same field names in every D
            num_classes=model["num_classes"],
            conditioning=model["conditioning"],
            aux_classifier=model["aux_classifier"],
            projection_dim=model.get("projection_dim", 0),
            embed_spectral_norm=model.get("projection_embed_sn", True),
            minibatch_std=model["minibatch_std"],
            minibatch_discrimination=model["minibatch_discrimination"],
            pack=model["pack"],
            info_outputs=latent_codes.q_outputs,
            spectral_norm=model["spectral_norm"],
            dtype=dtype,
        )
        d_kwargs.update(d_own)
        d_kwargs.update(d_capacity_kwargs(model["d_capacity"], self.name))  # the preset wins (e.g. its depth)
        return generator, self.discriminator(**d_kwargs)


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture("mlp", MLPGenerator, MLPDiscriminator, None, _mlp_fields),
    "dcgan": Architecture("dcgan", DCGANGenerator, DCGANDiscriminator, dcgan.SUPPORTED_SIZES, _dcgan_fields),
    "resnet": Architecture("resnet", ResNetGenerator, ResNetDiscriminator, resnet.SUPPORTED_SIZES, _resnet_fields),
    "stylegan2": Architecture(
        "stylegan2",
        StyleGAN2Generator,
        StyleGAN2Discriminator,
        stylegan2.SUPPORTED_SIZES,
        _stylegan2_fields,
        latent_field="z_dim",
    ),
}

NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    name: (a.generator, a.discriminator) for name, a in ARCHITECTURES.items()
}

# Image sizes each network supports; None = any sample shape (the MLP flattens).
SUPPORTED_IMAGE_SIZES: dict[str, tuple[int, ...] | None] = {name: a.image_sizes for name, a in ARCHITECTURES.items()}

# D capacity presets: preset -> network -> D kwargs. Width scales every layer of
# D by `width_multiplier` (the parameter count of a conv/dense stack falls about
# as its square); "shallow" keeps full width with the fewest layers the network
# allows: one hidden layer (MLP), no plain residual blocks after the down-blocks
# (ResNet). DCGAN's depth is fixed by image_size, so it has no "shallow".
_WIDTHS = {"full": 1.0, "half": 0.5, "quarter": 0.25}
D_CAPACITY_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    **{preset: {net: {"width_multiplier": m} for net in NETWORKS} for preset, m in _WIDTHS.items()},
    "shallow": {"mlp": {"width_multiplier": 1.0, "depth": 1}, "resnet": {"width_multiplier": 1.0, "depth": 0}},
}


def get_architecture(name: str) -> Architecture:
    """The architecture registered under `name`."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"Unknown network {name!r}; valid names: {sorted(NETWORKS)}.") from None


def get_network_classes(name: str) -> tuple[type[nn.Module], type[nn.Module]]:
    """(Generator class, Discriminator class) registered under `name`."""
    architecture = get_architecture(name)
    return architecture.generator, architecture.discriminator


def check_image_size(name: str, image_size: int, *, channels: int | None = None) -> None:
    """Raises a ValueError, before anything is built, unless network `name`
    supports square images of `image_size` (and `channels` >= 1 when given)."""
    get_network_classes(name)
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
    supported = SUPPORTED_IMAGE_SIZES[name]
    if supported is not None and image_size not in supported:
        others = [n for n, sizes in SUPPORTED_IMAGE_SIZES.items() if sizes is None or image_size in sizes]
        raise ValueError(
            f"Network {name!r} supports image_size in {supported}, got {image_size}; resize the data to one "
            f"of them or use a network that supports {image_size}: {others}."
        )
    if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool) or channels < 1):
        raise ValueError(f"channels must be a positive int (1 grey, 3 RGB), got {channels!r}.")


def d_capacity_kwargs(preset: str, network: str) -> dict[str, Any]:
    """The discriminator kwargs of capacity `preset` for `network`, e.g.
    `d_cls(**d_capacity_kwargs("half", "dcgan"), image_size=32, ndf=64)`."""
    get_network_classes(network)
    if preset not in D_CAPACITY_PRESETS:
        raise ValueError(f"Unknown D capacity preset {preset!r}; valid: {sorted(D_CAPACITY_PRESETS)}.")
    if network not in D_CAPACITY_PRESETS[preset]:
        valid = sorted(p for p, nets in D_CAPACITY_PRESETS.items() if network in nets)
        raise ValueError(f"D capacity preset {preset!r} is not defined for {network!r}; valid for it: {valid}.")
    return dict(D_CAPACITY_PRESETS[preset][network])
