"""CycleGAN (Zhu et al. 2017). Default: a fast offline DEMO; `:paper` gives the paper's settings.

  python experiments/cyclegan.py                       # demo: china.jpg <-> flower.jpg patches, 64 px
  python experiments/cyclegan.py --config=experiments/configs/cyclegan.py:paper \
      --config.data.name=horse2zebra                   # TFDS cycle_gan/horse2zebra, prepared beforehand

The demo domains are patches of scikit-learn's two sample photographs (no
download): small nets (width 8, 2 residual blocks) at 64 px, batch 2, 800
steps, a few minutes on 2 CPU cores. It shows the pipeline working; it is not a benchmark.
The paper preset: ResNet G with 9 blocks, width 64, 70x70 PatchGAN, 256 px crops
of 286 px, batch 1, Adam 2e-4 beta1 0.5, 200 epochs with the rate decaying
linearly to zero over the last 100 (train_steps counts images at batch 1; the
reference code's epoch is max(|A|, |B|) images, 1334 for horse2zebra, so 200
epochs = 266,800 steps).
"""

from jaxgan.translation.config import base_config, paper_sizes


def get_config(preset: str = "demo"):
    config = base_config("cyclegan")  # Adam 2e-4 beta1 0.5, lambda 10, identity 0.5 lambda, 50-image pools
    if preset == "paper":
        paper_sizes(config)  # 286 -> 256 px crops, widths 64, batch 1
        config.data.source, config.data.name = "tfds", "horse2zebra"
        config.train_steps = 266_800
        config.decay_steps = 133_400  # linear decay to zero over the second half
    elif preset == "demo":
        config.g.features, config.g.num_blocks, config.d.features = 8, 2, 8
        config.batch_size = 2
        config.train_steps = 800
        config.decay_steps = 400  # linear decay to zero over the second half
        config.sample_every_steps = config.checkpoint_every_steps = 200
    else:
        raise ValueError(f"Unknown preset {preset!r}; use 'demo' or 'paper'.")
    return config
