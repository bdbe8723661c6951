"""The classic fully connected GAN (Goodfellow et al. 2014) on the offline digits.

  python experiments/train.py --config=experiments/configs/mlp_gan.py

G and D: 3 hidden layers of 256 (ReLU / LeakyReLU 0.2), non-saturating loss,
Adam 2e-4 (0.5, 0.999). About 2 minutes on 2 CPU cores.
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.name = "mlp"
    config.model.latent_dim = 64
    config.model.g_width = 256
    config.model.d_width = 256
    config.model.depth = 3
    config.train_steps = 3000
    return config
