"""Architectures by name, so configs can select them and errors list the choices.

Also the early checks a config can run before building anything
(`check_image_size`) and the discriminator capacity presets, the "weaken D"
remedy for a D that wins too easily.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxgan.nets import dcgan, resnet
from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator

NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "resnet": (ResNetGenerator, ResNetDiscriminator),
}

# Image sizes each network supports; None = any sample shape (the MLP flattens).
SUPPORTED_IMAGE_SIZES: dict[str, tuple[int, ...] | None] = {
    "mlp": None,
    "dcgan": dcgan.SUPPORTED_SIZES,
    "resnet": resnet.SUPPORTED_SIZES,
}

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


def get_network_classes(name: str) -> tuple[type[nn.Module], type[nn.Module]]:
    """(Generator class, Discriminator class) registered under `name`."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(
            f"Unknown network {name!r}; valid names: {sorted(NETWORKS)}."
        ) from None


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
            f"of them or use a network that supports {image_size}: {others}.")
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
