"""SAGAN (Zhang, Goodfellow, Metaxas & Odena 2019, arXiv:1805.08318): self-attention in G and D.

  python experiments/train.py --config=experiments/configs/sagan.py
  python experiments/train.py --config=experiments/configs/sagan.py:paper      # the paper's sizes
  python experiments/train.py --config=experiments/configs/sagan.py:d4         # 4 D steps per G step

A class-conditional ResNet G (conditional BatchNorm) and a projection D, both spectrally normalised
(the paper's "spectral normalization for both generator and discriminator"), each with the
self-attention block (`jaxgan.nets.attention`) after its 16x16 block (the paper puts it at 32x32 of
128 px images); hinge loss; two time-scale updates as the paper, Adam (0, 0.9) with G at 1e-4 and D at
4e-4, one D step per G step. On the offline digits (32x32x1, 10 classes) by default. Slow on CPU.

Options after the colon, comma-separated: `paper` (the paper's batch of 256; its widths, ch = 64, are
the default), `d2` / `d4` (2 or 4 D steps per G step: PyTorch-StudioGAN's D:G variants).
"""

from jaxgan.config import base_config, preset_options


def get_config(arg: str = ""):
    options = preset_options(arg, ("paper", "d1", "d2", "d4"), preset="sagan")
    config = base_config()
    config.model.name = "resnet"
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.model.num_classes = 10
    config.model.conditioning = "projection"
    config.model.spectral_norm = True
    config.model.g_spectral_norm = True
    config.model.attention_resolution = 16
    config.loss = "hinge"
    config.n_critic = 1
    config.g_optimizer.learning_rate, config.d_optimizer.learning_rate = 1e-4, 4e-4
    config.g_optimizer.b1, config.g_optimizer.b2 = 0.0, 0.9
    config.d_optimizer.b1, config.d_optimizer.b2 = 0.0, 0.9
    config.num_samples = 100
    config.train_steps = 5000
    if "paper" in options:
        config.batch_size = 256
    for k in (1, 2, 4):
        if f"d{k}" in options:
            config.n_critic = k
    return config
