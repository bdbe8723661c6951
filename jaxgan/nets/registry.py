"""Architectures by name, so configs can select them and errors list the choices."""

from __future__ import annotations

import flax.linen as nn

from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator

NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
}


def get_network_classes(name: str) -> tuple[type[nn.Module], type[nn.Module]]:
    """(Generator class, Discriminator class) registered under `name`."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(
            f"Unknown network {name!r}; valid names: {sorted(NETWORKS)}."
        ) from None
