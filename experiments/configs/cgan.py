"""Conditional GAN by concatenation (Mirza & Osindero 2014, arXiv:1411.1784) on the digits' 10 classes.

  python experiments/train.py --config=experiments/configs/cgan.py

DCGAN with the one-hot label next to z in G and as 10 extra input channels of
D. Sample grids cycle through the classes (row by row: 0, 1, ..., 9, 0, ...).
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.num_classes = 10
    config.model.conditioning = "concat"
    config.num_samples = 100
    return config
