"""SNGAN (Miyato et al. 2018, arXiv:1802.05957): ResNet G and spectrally normalized ResNet D, hinge loss.

  python experiments/train.py --config=experiments/configs/sngan_resnet.py

The paper's CIFAR-10 setting: Adam 2e-4 (0, 0.9), n_critic 5, batch 64. On the
offline digits (32x32x1) by default; `--config.data.name=cifar10
--config.data.channels=3` for CIFAR-10 where it is prepared. Slow on CPU.
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.name = "resnet"
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.model.spectral_norm = True
    config.loss = "hinge"
    config.n_critic = 5
    config.g_optimizer.b1, config.g_optimizer.b2 = 0.0, 0.9
    config.d_optimizer.b1, config.d_optimizer.b2 = 0.0, 0.9
    config.train_steps = 5000
    return config
