"""pix2pix (Isola et al. 2017). Default: a fast offline DEMO; `:paper` gives the paper's settings.

  python experiments/pix2pix.py                        # demo: grayscale -> colour patches, 64 px
  python experiments/pix2pix.py --config=experiments/configs/pix2pix.py:paper \
      --config.data.path=DIR                           # a folder of A|B side-by-side pairs (e.g. facades)

The demo pairs are grayscale and colour versions of patches of scikit-learn's
two sample photographs (colorization; no download): a 6-level U-Net of width 16
at 64 px, batch 4, a few minutes on 2 CPU cores; a pipeline demo, not a
benchmark. The paper preset: U-Net 256 (8 levels, width 64, dropout 0.5),
70x70 PatchGAN conditioned on the input, L1 weight 100, 256 px crops of 286 px,
batch 1, Adam 2e-4 beta1 0.5 (facades: 200 epochs of 400 images).
"""

from jaxgan.translation.config import base_config, paper_sizes


def get_config(preset: str = "demo"):
    config = base_config("pix2pix")  # Adam 2e-4 beta1 0.5, constant (decay_steps 0), L1 weight 100
    if preset == "paper":
        paper_sizes(config)  # 286 -> 256 px crops, widths 64, batch 1
        config.data.source = "side_by_side"  # U-Net 256: 8 levels, dropout 0.5 (the defaults)
        config.train_steps = 80_000  # facades: 200 epochs x 400 images
    elif preset == "demo":
        config.data.channels_a = 1  # grayscale -> colour
        config.g.features, config.g.num_downs, config.d.features = 16, 6, 16
        config.batch_size = 4
    else:
        raise ValueError(f"Unknown preset {preset!r}; use 'demo' or 'paper'.")
    return config
