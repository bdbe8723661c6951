"""BigGAN (Brock, Donahue & Simonyan 2019, arXiv:1809.11096) at 32 px: SAGAN plus BigGAN's G.

  python experiments/train.py --config=experiments/configs/biggan.py
  python experiments/train.py --config=experiments/configs/biggan.py:paper     # the paper's sizes
  python experiments/train.py --config=experiments/configs/biggan.py:d4        # 4 D steps per G step

SAGAN's nets (experiments/configs/sagan.py: self-attention at 16x16, spectral norm in G and D,
projection D, hinge loss) with BigGAN's G: one class embedding (128-d) shared by every block and a
hierarchical latent (z of 128 cut into 4 chunks of 32: the linear layer's and one per block), both
conditioning each block's BatchNorm (`VectorConditionalBatchNorm`); orthogonal regularization of G's
kernels (beta 1e-4); the paper's optimizer, Adam (0, 0.999) with G at 1e-4 and D at 4e-4, and 2 D steps
per G step; the EMA of G (0.999 here for runs of thousands of steps; the paper's 0.9999 suits 100k+). On
the offline digits (32x32x1, 10 classes) by default. Slow on CPU.

Options after the colon, comma-separated: `paper` (the paper's ImageNet sizes that carry over to any
resolution: ch = 96, z of 120, batch 256, EMA 0.9999), `d1` / `d2` / `d4` (D steps per G step; 2 is
BigGAN's, 4 PyTorch-StudioGAN's other variant).
"""

from jaxgan.config import preset_options, sibling_config


def get_config(arg: str = ""):
    options = preset_options(arg, ("paper", "d1", "d2", "d4"), preset="biggan")
    config = sibling_config(__file__, "sagan", arg)  # SAGAN's nets, loss, learning rates; paper's batch; dK
    config.model.hierarchical_latent = True
    config.model.shared_embedding_dim = 128
    config.regularization.orthogonal = 1e-4
    if not options & {"d1", "d2", "d4"}:
        config.n_critic = 2
    config.g_optimizer.b2 = config.d_optimizer.b2 = 0.999
    if "paper" in options:
        config.model.g_width = config.model.d_width = 96
        config.model.latent_dim = 120  # 30 per chunk at 32 px, 20 at 128 px (the paper's)
        config.ema_decay = 0.9999
    return config
