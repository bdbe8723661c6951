"""Least-squares GAN (Mao et al. 2017, arXiv:1611.04076; a=0, b=c=1) with the DCGAN nets.

python experiments/train.py --config=experiments/configs/lsgan.py
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.loss = "least_squares"
    return config
