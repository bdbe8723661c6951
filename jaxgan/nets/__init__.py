"""Flax linen generators and discriminators."""

from jaxgan.nets.conditioning import D_CONDITIONINGS, ConditionalBatchNorm
from jaxgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from jaxgan.nets.layers import MinibatchDiscrimination, SpectralNorm, minibatch_stddev, pack_samples
from jaxgan.nets.mlp import MLPDiscriminator, MLPGenerator
from jaxgan.nets.registry import (
    ARCHITECTURES,
    D_CAPACITY_PRESETS,
    NETWORKS,
    SUPPORTED_IMAGE_SIZES,
    Architecture,
    check_image_size,
    d_capacity_kwargs,
    get_architecture,
    get_network_classes,
)
from jaxgan.nets.resnet import ResNetDiscriminator, ResNetGenerator
from jaxgan.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ConditionalBatchNorm",
    "D_CAPACITY_PRESETS",
    "D_CONDITIONINGS",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "MinibatchDiscrimination",
    "NETWORKS",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "SUPPORTED_IMAGE_SIZES",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "SpectralNorm",
    "check_image_size",
    "d_capacity_kwargs",
    "get_architecture",
    "get_network_classes",
    "minibatch_stddev",
    "pack_samples",
]
