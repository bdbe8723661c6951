"""WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028, alg. 1): lambda 10, n_critic 5, Adam 1e-4 (0, 0.9).

  python experiments/train.py --config=experiments/configs/wgan_gp.py

The critic is the DCGAN D without BatchNorm (the paper: no BN in the critic,
since the penalty is per example).
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.loss = "wasserstein"
    config.model.d_batch_norm = False
    config.regularization.gradient_penalty = 10.0
    config.n_critic = 5
    for opt in (config.g_optimizer, config.d_optimizer):
        opt.learning_rate, opt.b1, opt.b2 = 1e-4, 0.0, 0.9
    config.train_steps = 3000
    return config
