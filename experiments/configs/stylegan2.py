"""StyleGAN2 (Karras et al. 2020, arXiv:1912.04958) on the offline digits at 32 px, small enough for a CPU.

  python experiments/train.py --config=experiments/configs/stylegan2.py
  python experiments/train.py --config=experiments/configs/stylegan2.py:paper   # the paper's sizes

The skip G and resnet D of `jaxgan.nets.stylegan2` (mapping network, modulated convolutions with
demodulation, noise inputs, bilinear resampling, minibatch std) trained as StyleGAN2-ADA trains them:
the non-saturating logistic loss, lazy R1 (every 16 steps) and lazy path length regularization (weight 2,
every 4 steps, half the batch), style mixing (0.9), Adam (0, 0.99) at 0.0025 for both nets with the lazy
corrections, the EMA of G with a half-life in images (ramped up over the first 5% of images seen).
Conditional on the digits' 10 classes: the class embedding enters the mapping network and D projects
onto a mapped class vector (StyleGAN2-ADA's cond configs); set model.num_classes=0 for the plain G.

Default sizes (small; widths min(1024 // resolution, 64), z and w of 64, 2 mapping layers, as ADA's CIFAR
config has 2) are for CPU runs; `:paper` gives config-f's (channel_base 32768, channel_max 512, z and w of
512, 8 mapping layers) with the paper's R1 gamma 10 and EMA half-life of 10k images.
"""

from jaxgan.config import base_config, preset_options


def get_config(arg: str = ""):
    options = preset_options(arg, ("paper",), preset="stylegan2")
    config = base_config()
    m = config.model
    m.name = "stylegan2"
    m.latent_dim, m.w_dim = 64, 64
    m.channel_base, m.channel_max = 1024, 64
    m.mapping_layers = 2
    m.style_mixing_prob = 0.9
    m.minibatch_std = True
    m.num_classes = 10
    m.conditioning = "projection"
    config.loss = "non_saturating"
    reg = config.regularization
    reg.r1_gamma, reg.r1_every = 0.01, 16  # ADA's CIFAR gamma; its heuristic 0.0002 * 32^2 / 32 gives 0.0064
    reg.path_length, reg.path_length_every = 2.0, 4
    for opt in (config.g_optimizer, config.d_optimizer):
        opt.learning_rate, opt.b1, opt.b2 = 0.0025, 0.0, 0.99
    config.batch_size = 32
    config.ema_half_life_images, config.ema_rampup = 10_000.0, 0.05
    config.train_steps = 5000
    config.num_samples = 100
    if "paper" in options:
        m.latent_dim, m.w_dim = 512, 512
        m.channel_base, m.channel_max = 32768, 512
        m.mapping_layers = 8
        reg.r1_gamma = 10.0
        config.ema_rampup = 0.0
    return config
