"""Auxiliary-classifier GAN (Odena, Olah & Shlens 2017, arXiv:1610.09585) on the digits.

  python experiments/train.py --config=experiments/configs/acgan.py

DCGAN G conditioned on the class; D has no label input but a class head, and
both players add the class cross-entropy (weight 1) to their losses.
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.num_classes = 10
    config.model.conditioning = "none"
    config.model.aux_classifier = True
    config.num_samples = 100
    return config
