"""A tiny CPU config for tests: DCGAN with 8 channels, a few steps."""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.model.latent_dim = 16
    config.model.g_width = 8
    config.model.d_width = 8
    config.batch_size = 16
    config.train_steps = 6
    config.log_every_steps = 2
    config.sample_every_steps = 3
    config.checkpoint_every_steps = 3
    config.num_samples = 16
    return config
