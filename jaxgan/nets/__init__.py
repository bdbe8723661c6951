"""Flax linen generators and discriminators."""

from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.nets.registry import NETWORKS, get_network_classes

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "NETWORKS",
    "get_network_classes",
]
