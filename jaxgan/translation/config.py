"""The fields of a CycleGAN or pix2pix run, in one place for experiments/configs/{cyclegan,pix2pix}.py.

`base_config(model)` lists every field with a comment, set to the papers' optimizer
and loss weights and to a small offline demo's sizes; `paper_sizes(config)` sets
what both papers share at full size. The experiment configs start from these and
change only what differs. Only the translation orchestrator reads these configs; nothing
below it does.
"""

from __future__ import annotations

import ml_collections

MODELS = ("cyclegan", "pix2pix")


def base_config(model: str) -> ml_collections.ConfigDict:
    """Every field of a `model` ('cyclegan' or 'pix2pix') run; demo-sized, papers' optimizer and weights."""
    if model not in MODELS:
        raise ValueError(f"model={model!r}; valid: {MODELS}.")
    c = ml_collections.ConfigDict()
    c.model = model
    c.seed = 0  # drives init, every random draw of the step, the data order and the crops

    c.data = ml_collections.ConfigDict()
    # "demo" (offline patches of scikit-learn's photos), "folders" (path_a, path_b; paired by file
    # name for pix2pix), "side_by_side" (path: A|B pairs, pix2pix) or "tfds" (name: cycle_gan/<name>).
    c.data.source = "demo"
    c.data.name = ""  # TFDS cycle_gan dataset: horse2zebra, monet2photo, ...
    c.data.path_a = ""  # folder of domain A images
    c.data.path_b = ""  # folder of domain B images
    c.data.path = ""  # folder of side-by-side pairs
    c.data.split = "train"  # TFDS: "train" or "test" (the splits <split>A and <split>B)
    c.data.data_dir = ""  # TFDS data dir; "" = $JAXGAN_DATA_DIR, $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.load_size = 72  # images are resized to this ...
    c.data.crop_size = 64  # ... then randomly cropped to this (papers: 286 -> 256)
    c.data.channels_a = 3
    c.data.channels_b = 3
    c.data.flip = True  # random horizontal flips

    c.g = ml_collections.ConfigDict()
    cyclegan = model == "cyclegan"
    c.g.features = 64  # width of the first layer (papers: 64)
    c.g.num_blocks = 9 if cyclegan else 0  # CycleGAN's ResNet generator: residual blocks (6 at 128 px, 9 at 256)
    c.g.num_downs = 0 if cyclegan else 8  # pix2pix's U-Net: levels; crops are multiples of 2**num_downs
    c.g.dropout = 0.0 if cyclegan else 0.5  # pix2pix's U-Net: dropout in the innermost decoder layers
    c.d = ml_collections.ConfigDict()
    c.d.features = 64  # PatchGAN width
    c.d.num_layers = 3  # PatchGAN stride-2 layers: 3 is the 70x70 PatchGAN

    c.batch_size = 1  # global batch (both papers: 1)
    c.train_steps = 1000
    c.decay_steps = 0  # the learning rate decays linearly to zero over the last decay_steps steps
    c.learning_rate = 2e-4  # Adam, both papers
    c.b1 = 0.5
    if cyclegan:
        c.cycle_weight = 10.0  # lambda
        c.identity_weight = 0.5  # times lambda
        c.pool_size = 50  # history of fakes per D
    else:
        c.l1_weight = 100.0  # lambda

    c.log_every_steps = 50
    c.sample_every_steps = 250  # PNG triplet grids in workdir/samples
    c.checkpoint_every_steps = 250
    c.keep_checkpoints = 3
    c.num_sample_rows = 4  # rows of the triplet grids
    return c


def paper_sizes(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """What both papers share at full size: 286 px loads cropped to 256, widths 64, batch 1
    (Zhu et al. 2017, sec. 4 and appendix 7.1; Isola et al. 2017, sec. 6.2); sparser logging."""
    config.data.load_size, config.data.crop_size = 286, 256
    config.g.features = config.d.features = 64
    config.batch_size = 1
    config.log_every_steps = 100
    config.sample_every_steps = config.checkpoint_every_steps = 5000
    return config
