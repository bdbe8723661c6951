"""Projection-discriminator cGAN (Miyato & Koyama 2018, arXiv:1802.05637), SNGAN ResNet, hinge loss.

  python experiments/train.py --config=experiments/configs/cgan_projection.py

G: ResNet with conditional BatchNorm; D: spectrally normalized ResNet with the
projection term <embed(y), phi(x)>; Adam 2e-4 (0, 0.9), n_critic 5 as in the
paper's CIFAR-10 setting. Slow on CPU (minutes per hundred steps).
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.name = "resnet"
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.model.num_classes = 10
    config.model.conditioning = "projection"
    config.model.spectral_norm = True
    config.loss = "hinge"
    config.n_critic = 5
    config.g_optimizer.b1, config.g_optimizer.b2 = 0.0, 0.9
    config.d_optimizer.b1, config.d_optimizer.b2 = 0.0, 0.9
    config.num_samples = 100
    config.train_steps = 5000
    return config
