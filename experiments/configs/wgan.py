"""WGAN with weight clipping (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875, alg. 1).

  python experiments/train.py --config=experiments/configs/wgan.py

Critic: DCGAN D without BatchNorm, weights clipped to [-0.01, 0.01] after every
update, n_critic 5, RMSProp at lr 5e-5 for both nets, as the paper's algorithm 1
(PyTorch's RMSprop: squared-gradient decay 0.99, no momentum).
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.loss = "wasserstein"
    config.model.d_batch_norm = False
    config.regularization.weight_clip = 0.01
    config.n_critic = 5
    for opt in (config.g_optimizer, config.d_optimizer):
        opt.name, opt.learning_rate, opt.b1, opt.b2 = "rmsprop", 5e-5, 0.0, 0.99
    config.train_steps = 3000
    return config
