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

import ml_collections


def get_config(preset: str = "demo") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = "pix2pix"
    config.seed = 0
    config.data = ml_collections.ConfigDict(dict(
        source="demo",  # demo | side_by_side (path) | folders (path_a, path_b: paired by sorted order)
        name="", path_a="", path_b="", path="", split="train", data_dir="",
        load_size=72, crop_size=64, channels_a=1, channels_b=3, flip=True))
    config.g = ml_collections.ConfigDict(dict(features=16, num_blocks=0, num_downs=6, dropout=0.5))
    config.d = ml_collections.ConfigDict(dict(features=16, num_layers=3))
    config.batch_size = 4
    config.train_steps = 1000
    config.decay_steps = 0  # the paper keeps 2e-4 constant; the reference code also offers a decay
    config.learning_rate = 2e-4
    config.b1 = 0.5
    config.l1_weight = 100.0
    config.log_every_steps = 50
    config.sample_every_steps = 250
    config.checkpoint_every_steps = 250
    config.keep_checkpoints = 3
    config.num_sample_rows = 4
    if preset == "paper":
        config.data.source = "side_by_side"
        config.data.channels_a = 3
        config.data.load_size, config.data.crop_size = 286, 256
        config.g.features, config.g.num_downs = 64, 8
        config.d.features = 64
        config.batch_size = 1
        config.train_steps = 80_000  # facades: 200 epochs x 400 images
        config.log_every_steps = 100
        config.sample_every_steps = 5000
        config.checkpoint_every_steps = 5000
    elif preset != "demo":
        raise ValueError(f"Unknown preset {preset!r}; use 'demo' or 'paper'.")
    return config
