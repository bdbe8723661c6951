"""StyleGAN2 with ADA (Karras et al. 2020, arXiv:2006.06676) on the offline digits, for limited data.

  python experiments/train.py --config=experiments/configs/stylegan2_ada.py
  python experiments/train.py --config=experiments/configs/stylegan2_ada.py --config.data.split='train[:200]'
  python experiments/train.py --config=experiments/configs/stylegan2_ada.py:paper

The stylegan2 preset plus adaptive discriminator augmentation: every image D sees (reals and fakes, in
D's and G's updates, and the reals of lazy R1) passes the 'bgc' pipeline (x-flip, quarter turns,
integer translation, isotropic and anisotropic scale, rotation, fractional translation, brightness,
contrast, luma flip, hue, saturation; `jaxgan.ada`), each op with probability p. p starts at 0 and
is adjusted every 4 steps toward r_t = E[sign(D(real))] = 0.6. The paper lets p go from 0 to 1 in 500k
images; this CPU preset uses 100k (ada_kimg=100, ~3k steps at batch 32) so that short runs can reach
the p they need; `:paper` restores 500 with the paper's sizes.
"""

from jaxgan.config import sibling_config


def get_config(arg: str = ""):
    config = sibling_config(__file__, "stylegan2", arg)
    reg = config.regularization
    reg.ada_pipeline, reg.ada_target, reg.ada_p, reg.ada_interval = "bgc", 0.6, 0.0, 4
    reg.ada_kimg = 500.0 if "paper" in str(arg) else 100.0
    return config
