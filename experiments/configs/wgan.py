"""WGAN with weight clipping (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875, alg. 1).

  python experiments/train.py --config=experiments/configs/wgan.py

Critic: DCGAN D without BatchNorm, weights clipped to [-0.01, 0.01] after every
update, n_critic 5, RMSProp in the paper; here Adam with beta1 0 (close to
RMSProp) at lr 5e-5.
"""

from jaxgan.config import base_config


def get_config():
    config = base_config()
    config.loss = "wasserstein"
    config.model.d_batch_norm = False
    config.regularization.weight_clip = 0.01
    config.n_critic = 5
    for opt in (config.g_optimizer, config.d_optimizer):
        opt.learning_rate, opt.b1, opt.b2 = 5e-5, 0.0, 0.999
    config.train_steps = 3000
    return config
