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

import ml_collections


def get_config(preset: str = "demo") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = "cyclegan"
    config.seed = 0
    config.data = ml_collections.ConfigDict(dict(
        source="demo",  # demo | folders (path_a, path_b) | tfds (name: horse2zebra, monet2photo, ...)
        name="", path_a="", path_b="", path="", split="train", data_dir="",
        load_size=72, crop_size=64, channels_a=3, channels_b=3, flip=True))
    config.g = ml_collections.ConfigDict(dict(features=8, num_blocks=2, num_downs=0, dropout=0.0))
    config.d = ml_collections.ConfigDict(dict(features=8, num_layers=3))
    config.batch_size = 2
    config.train_steps = 800
    config.decay_steps = 400  # linear decay to zero over the second half
    config.learning_rate = 2e-4
    config.b1 = 0.5
    config.cycle_weight = 10.0  # lambda
    config.identity_weight = 0.5  # times lambda
    config.pool_size = 50  # history of fakes per D
    config.log_every_steps = 50
    config.sample_every_steps = 200
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 3
    config.num_sample_rows = 4
    if preset == "paper":
        config.data.source = "tfds"
        config.data.name = "horse2zebra"
        config.data.load_size, config.data.crop_size = 286, 256
        config.g.features, config.g.num_blocks = 64, 9
        config.d.features = 64
        config.batch_size = 1
        config.train_steps = 266_800
        config.decay_steps = 133_400
        config.log_every_steps = 100
        config.sample_every_steps = 5000
        config.checkpoint_every_steps = 5000
    elif preset != "demo":
        raise ValueError(f"Unknown preset {preset!r}; use 'demo' or 'paper'.")
    return config
