"""The GAN zoo's experiment config: its fields (`base_config`) and their checks (`validate`).

`base_config()` lists every field with a comment; experiment files in
`experiments/configs/` start from it. `validate()` raises one-line errors naming
the field, its value and the fix, before anything compiles. Turning a config
into networks, optimizers and the train step is `jaxgan.build`'s job.

This module imports no network, loss or train step: loading a config (an
experiment file, a workdir's config.json) stays light. The old builder names
(`jaxgan.config.build_networks`, ...) still resolve, from `jaxgan.build`, on
first use.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from typing import Any

import ml_collections

from jaxgan.run_config import Schedule, check_schedule, schedule_from_config

DATA_SOURCES = ("tfds", "npz", "folder", "mixture", "stacked_digits")

# Old names of jaxgan.build's builders, resolved on first use (module __getattr__), so code written against
# the config module keeps working without this module importing the networks.
_BUILD_NAMES = (
    "build_networks",
    "build_optimizers",
    "build_step",
    "latent_codes",
    "compute_dtype",
    "COMPUTE_DTYPES",
    "extra_layers",
)


def __getattr__(name: str) -> Any:
    if name in _BUILD_NAMES:
        from jaxgan import build  # pylint: disable=g-import-not-at-top

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sibling_config(config_file: str, name: str, *args: Any) -> ml_collections.ConfigDict:
    """`get_config(*args)` of the config file `name`.py next to `config_file` (a preset's `__file__`).

    Launchers load a config file by path (absl's config_flags), so `experiments.configs` is not importable
    there; a preset that extends another loads it this way."""
    path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"jaxgan_preset_{name}", path)
    if spec is None or spec.loader is None or not os.path.exists(path):
        raise FileNotFoundError(f"No config file {path} (a preset extends it).")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


def preset_options(arg: str, valid: tuple[str, ...], *, preset: str) -> set[str]:
    """The comma-separated options after a preset file's colon (`--config=biggan.py:paper,d4`), checked."""
    options = {o.strip() for o in str(arg or "").split(",") if o.strip()}
    unknown = sorted(options - set(valid))
    if unknown:
        raise ValueError(f"{preset} preset: unknown options {unknown}; valid: {list(valid)} (comma-separated).")
    return options


def base_config() -> ml_collections.ConfigDict:
    """Every field a jaxgan experiment has; the default is DCGAN on the offline digits."""
    from jaxgan.train import Regularization  # its defaults, where the step defines them

    c = ml_collections.ConfigDict()
    c.seed = 0  # drives init, every latent draw and the data order

    c.data = ml_collections.ConfigDict()
    # "tfds" (a TFDS name), "npz" (a file), "folder" (of PNG/JPEG), "mixture" (2-D points) or
    # "stacked_digits" (Stacked MNIST's 1000-mode analogue from the offline digits: 3 channels)
    c.data.source = "tfds"
    c.data.name = "sklearn_digits"  # TFDS name, or the npz/folder path
    c.data.split = "train"
    c.data.data_dir = ""  # TFDS data dir; "" = $JAXGAN_DATA_DIR, $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.image_size = 32
    c.data.channels = 1
    # "mixture" / "stacked_digits" only: examples drawn once (seeded by config.seed)
    c.data.num_examples = 100_000
    # > 0: label the training images with this many k-means clusters of their pixels and train a GAN
    # conditioned on them (model.num_classes = this, model.fake_labels = "real"; Liu et al. 2020's
    # self-conditioned GAN, clustered once; jaxgan.data.clusters). 0: the data's own labels, if any.
    c.data.cluster_labels = 0
    # tfds / npz / folder are streamed: each batch's records are read when needed (jaxgan.data.stream), by
    # `read_threads` threads and, if > 0, `worker_count` decoding processes (start-up costs seconds each).
    c.data.worker_count = 0
    c.data.read_threads = 2

    c.model = ml_collections.ConfigDict()
    c.model.name = "dcgan"  # one of jaxgan.nets.NETWORKS
    c.model.latent_dim = 100
    c.model.g_width = 32  # DCGAN ngf / MLP hidden units
    c.model.d_width = 32  # DCGAN ndf / MLP hidden units
    c.model.depth = 3  # MLP hidden layers (DCGAN's depth follows from image_size)
    c.model.d_depth = 0  # MLP D hidden layers; 0 = model.depth
    c.model.g_batch_norm = False  # MLP G: BatchNorm before each hidden ReLU (PacGAN's 2-D G)
    c.model.d_maxout_pieces = 0  # MLP D: maxout hidden units with this many pieces (PacGAN's 2-D D: 5); 0 = LeakyReLU
    # DCGAN G transposed-conv form: "subpixel", "phase", "patches" or "transpose" (same results).
    c.model.upsample = "subpixel"
    c.model.downsample = "conv"  # DCGAN D strided-conv form: "conv", "space_to_depth" or "patches" (same results)
    # DCGAN: 3x3 stride-1 conv layers added to G (before its output layer) and D (after its first conv), as the
    # n_extra_layers of Arjovsky et al.'s WGAN DCGAN; at 8 px G and D otherwise have one conv each.
    c.model.extra_layers = 0
    # The same for one network only (-1 = model.extra_layers): e.g. a deeper G beside a shallow D.
    c.model.g_extra_layers = -1
    c.model.d_extra_layers = -1
    # Compute dtype of both networks: "float32", or "bfloat16" on accelerators (activations and
    # matmuls in bfloat16; params, optimizer states, EMA, BatchNorm statistics and losses stay float32;
    # bfloat16 has float32's exponent range, so no loss scaling is needed, unlike float16).
    c.model.dtype = "float32"
    # Class conditioning (labels come from the data): 0 = unconditional.
    c.model.num_classes = 0
    c.model.label_embed_dim = 0  # G (MLP/DCGAN): 0 = one-hot next to z, else a learned embedding
    # DCGAN G: class-conditional BatchNorm (per-class scale and shift; de Vries et al. 2017, Miyato & Koyama 2018)
    c.model.g_conditional_bn = False
    # ResNet only: SAGAN's self-attention block after the G and D blocks that output this resolution (0 = none;
    # Zhang et al. 2019 put it at 32 of 128 px, BigGAN at 64 of 128).
    c.model.attention_resolution = 0
    # ResNet G only, BigGAN's (Brock et al. 2019): z cut into a chunk per block, and a class embedding of this
    # size shared by the blocks, both conditioning every block's BatchNorm (0 / False: SNGAN's G).
    c.model.hierarchical_latent = False
    c.model.shared_embedding_dim = 0
    # ResNet G only: spectral norm on G's layers too (SAGAN and BigGAN; Zhang et al. 2019).
    c.model.g_spectral_norm = False
    # StyleGAN2 only (Karras et al. 2020; jaxgan.nets.stylegan2): widths min(channel_base // resolution,
    # channel_max) (paper config-f: 32768, 512); w's size (0 = latent_dim); mapping layers (0 = 8); the
    # probability of style mixing in training (paper 0.9). 0 = not StyleGAN2.
    c.model.channel_base = 0
    c.model.channel_max = 0
    c.model.w_dim = 0
    c.model.mapping_layers = 0
    c.model.d_mapping_layers = 0  # StyleGAN2 D's class mapping network (0 = 8, the reference's; conditional D only)
    c.model.style_mixing_prob = 0.0
    # G's class ids in training: "uniform", or "real" (the real batch's: the data's class frequencies).
    c.model.fake_labels = "uniform"
    c.model.conditioning = "concat"  # D: "concat" (cGAN), "projection" (Miyato & Koyama 2018), "none" (ACGAN only)
    # Projection D: > 0 maps phi to this many features before the class embedding's inner product (a rank-limited
    # projection; cheaper with thousands of classes, e.g. data.cluster_labels); 0 = onto phi itself.
    c.model.projection_dim = 0
    # Spectral norm on the projection D's class embedding (Miyato & Koyama's SNEmbedID). It caps the rows' root
    # mean square norm at sqrt(min(K, d) / K), so with thousands of classes (data.cluster_labels) turn it off.
    c.model.projection_embed_sn = True
    c.model.aux_classifier = False  # ACGAN head on D (Odena et al. 2017)
    # Discriminator options.
    c.model.spectral_norm = False  # on every D layer (Miyato et al. 2018; the sngan_resnet preset turns it on)
    c.model.d_batch_norm = True  # DCGAN D's BatchNorm (off for WGAN-GP critics / spectral norm)
    c.model.minibatch_std = False  # Karras et al. 2018
    c.model.minibatch_discrimination = 0  # kernels (Salimans et al. 2016); 0 = off
    c.model.pack = 1  # PacGAN packing (Lin et al. 2018)
    # InfoGAN latent codes (Chen et al. 2016; jaxgan.latent), taken from the first coordinates of z, with a Q head
    # on D: comma-separated sizes of the categorical codes, e.g. "10" (their MNIST) or "10,10,10", and the number
    # of U(-1, 1) continuous codes. regularization.info_weight is their lambda.
    c.model.info_categorical = ""
    c.model.info_continuous = 0
    c.model.d_capacity = "full"  # "full", "half", "quarter", "shallow": weaken D (jaxgan.nets.D_CAPACITY_PRESETS)

    c.loss = "non_saturating"  # one of jaxgan.losses.LOSSES
    c.real_label = 1.0  # < 1: one-sided label smoothing of D's real target (Salimans et al. 2016)
    c.n_critic = 1  # D updates per G update
    c.n_gen = 1  # G updates per step, after the n_critic D updates (> 1: a D too strong for G)
    c.critic_loop = "auto"  # "scan", "unroll" or "auto" (by backend)
    # Train steps per compiled call (a lax.scan or unrolled, per step_loop); same
    # results as 1, fewer dispatches: pays for small models (MLP, 2-D mixtures).
    # Logging, samples, checkpoints and evaluations still happen at their steps.
    c.steps_per_call = 1
    c.step_loop = "auto"  # "scan", "unroll" or "auto" (unroll on CPU, scan elsewhere)
    c.batch_size = 64  # global batch per D update, split over all devices
    c.num_discriminators = 1  # K > 1: GMAN (Durugkar et al. 2017)
    c.d_aggregation = "mean"  # G's loss over K Ds: "mean", "max", "softmax"
    c.d_temperature = 1.0  # softmax aggregation temperature
    # Stabilizers (jaxgan.train.Regularization documents each; all off).
    c.regularization = ml_collections.ConfigDict(dataclasses.asdict(Regularization()))
    c.ema_decay = 0.999  # EMA of G's params
    c.ema_warmup = True  # decay min(ema_decay, (1+step)/(10+step)) so the EMA forgets the init
    c.ema_half_life_images = 0.0  # > 0: StyleGAN2-ADA EMA (half-life in images), overrides ema_decay
    c.ema_rampup = 0.0  # with the half-life: h = min(h, images seen * ema_rampup) (ADA: 0.05); 0 = no ramp

    # Adam (Radford et al. 2016); name="rmsprop": RMSProp (WGAN), b2 its squared-gradient decay, b1 its momentum.
    c.g_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
    c.d_optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999))
    c.lr_decay_steps = 0  # > 0: both learning rates decay linearly to zero over the last N train steps (CycleGAN)

    # Durations. A step is n_critic D updates + n_gen G updates and shows D
    # batch_size * n_critic real images. Each duration can instead be given in
    # images (StyleGAN's kimg style): a *_images field > 0 overrides its *_steps
    # twin and is rounded up to whole steps (see `resolve_schedule`).
    c.train_steps = 1500  # G updates
    c.train_images = 0
    c.log_every_steps = 50
    c.sample_every_steps = 250  # PNG grids of G and EMA-G in WORKDIR/samples/
    c.sample_every_images = 0
    c.num_samples = 64  # images per grid
    c.checkpoint_every_steps = 500
    c.checkpoint_every_images = 0
    c.keep_checkpoints = 3
    c.eval_every_steps = 0  # 0 = off
    c.eval_every_images = 0
    # Evaluators (jaxgan.metrics.evaluator.EVALUATORS), comma-separated: "fcd" (digits
    # Frechet distance with its real-vs-real floor; digits data only), "fid", "kid",
    # "prdc", "inception" (all Inception metrics from one extraction), "msssim".
    c.eval_metrics = "fcd"
    c.eval_num_samples = 0  # generated samples per evaluation; 0 = each evaluator's default
    c.progress_bar = True  # a console progress bar (process 0 only)
    return c


def resolve_schedule(config: ml_collections.ConfigDict) -> Schedule:
    """Every duration in steps, in one place (images -> ceil(images / images per step)); a step shows D
    batch_size * n_critic real images."""
    return schedule_from_config(config, images_per_step=config.batch_size * config.n_critic)


def _check_labels(config: ml_collections.ConfigDict) -> None:
    """data.cluster_labels (k-means cluster conditioning) fits model.num_classes and model.fake_labels."""
    fake_labels = config.model.get("fake_labels", "uniform")  # its values: checked by the step
    clusters = config.data.get("cluster_labels", 0)
    if not isinstance(clusters, int) or clusters < 0:
        raise ValueError(f"config.data.cluster_labels={clusters!r} must be an int >= 0 (k-means clusters; 0 = off).")
    if clusters and config.model.num_classes != clusters:
        raise ValueError(
            f"config.data.cluster_labels={clusters} conditions the GAN on {clusters} clusters, but "
            f"config.model.num_classes={config.model.num_classes}; set model.num_classes={clusters}."
        )
    if clusters and fake_labels != "real":
        raise ValueError(
            f"config.data.cluster_labels={clusters}: k-means clusters differ in size, so G must draw "
            "the real batch's cluster ids; set config.model.fake_labels='real'."
        )


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ValueError naming the field, its value and the fix; runs before compilation.

    Each option is checked once: the fields only the config knows about here (`check_fields`), every
    other one by the builder that uses it, as `jaxgan.build.build_validated` builds the networks, the
    optimizers and the step (abstractly: nothing is initialized or compiled), its errors renamed after the
    config field. Callers that go on to train use `build_validated` itself, which returns what it built.
    """
    from jaxgan import build  # pylint: disable=g-import-not-at-top

    build.build_validated(config, num_devices)


def check_fields(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """The checks no builder makes: the data, labels, evaluators, schedule, and options only valid together.

    Network names, data shapes and the D options of one architecture are checked against
    `jaxgan.nets.registry`; the step's, the optimizers' and the networks' own options are left to them."""
    # pylint: disable=g-import-not-at-top
    from jaxgan.losses import LOSSES
    from jaxgan.nets import NETWORKS, check_image_size
    from jaxgan.train import Regularization

    if config.model.name not in NETWORKS:
        raise ValueError(f"config.model.name={config.model.name!r} is unknown; valid names: {sorted(NETWORKS)}.")
    if config.data.source not in DATA_SOURCES:
        raise ValueError(f"config.data.source={config.data.source!r}; valid: {DATA_SOURCES}.")
    _check_labels(config)
    if config.data.source == "mixture":
        from jaxgan.metrics.modes import MIXTURES  # numpy only

        if config.data.name not in MIXTURES:
            raise ValueError(f"config.data.name={config.data.name!r} is not a mixture; valid: {sorted(MIXTURES)}.")
        if config.model.name != "mlp":
            raise ValueError(f"2-D mixture data needs model.name='mlp'; {config.model.name!r} makes images.")
    else:
        if config.data.channels not in (1, 3):
            raise ValueError(
                f"config.data.channels={config.data.channels!r}: jaxgan trains on 1 (grayscale) or 3 (RGB) "
                "channels; set --config.data.channels=1 or 3."
            )
        check_image_size(config.model.name, config.data.image_size, channels=config.data.channels)
    if config.data.source == "stacked_digits" and config.data.channels != 3:
        raise ValueError(
            f"config.data.source='stacked_digits' stacks 3 digits as channels; set "
            f"config.data.channels=3 (got {config.data.channels})."
        )
    if config.data.source in ("mixture", "stacked_digits") and config.data.num_examples < 1:
        raise ValueError(f"config.data.num_examples={config.data.num_examples} must be >= 1.")
    if config.model.num_classes and config.data.source == "folder":
        raise ValueError(
            f"config.model.num_classes={config.model.num_classes} makes a conditional GAN, which needs labels, but "
            "a folder of images has none; use a labeled TFDS dataset or an .npz with 'labels', or num_classes=0."
        )
    if config.get("eval_every_steps", 0) or config.get("eval_every_images", 0):
        from jaxgan.metrics.evaluator import EVALUATORS  # light: numpy/jax only

        names = eval_metric_names(config)
        bad = [n for n in names if n not in EVALUATORS]
        if bad or not names:
            raise ValueError(
                f"config.eval_metrics={config.eval_metrics!r}: unknown {bad or 'empty'}; valid names: "
                f"{sorted(EVALUATORS)}."
            )
        if "fcd" in names and (
            config.data.name != "sklearn_digits" or config.data.channels != 1 or config.data.image_size != 32
        ):
            raise ValueError(
                "config.eval_metrics has 'fcd', the digits classifier's Frechet distance, which needs "
                "the 32x32x1 sklearn_digits data; use 'fid' or 'kid' for other data."
            )
    from jaxgan.common import check_reading_options
    from jaxgan.run_config import config_errors

    with config_errors(config, worker_count="data.worker_count", num_threads="data.read_threads"):
        check_reading_options(
            worker_count=config.data.get("worker_count", 0), num_threads=config.data.get("read_threads", 2)
        )
    valid = sorted(f.name for f in dataclasses.fields(Regularization))
    unknown = set(config.regularization) - set(valid)
    if unknown:
        raise ValueError(f"Unknown config.regularization fields {sorted(unknown)}; valid: {valid}.")
    if config.loss not in LOSSES:
        raise ValueError(f"config.loss={config.loss!r} is unknown; valid names: {sorted(LOSSES)}.")
    for name in ("g_optimizer", "d_optimizer"):  # the optimizers check their betas (jaxgan.optim)
        lr = config[name].learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"config.{name}.learning_rate={lr!r} must be a finite number > 0 (e.g. 2e-4).")
    check_schedule(config, num_devices)
    if config.get("lr_decay_steps", 0):  # its range: checked by jaxgan.optim.linear_decay_schedule
        if config.get("train_images", 0):
            raise ValueError(
                "config.lr_decay_steps counts train steps: give the run's length as config.train_steps, "
                "not config.train_images."
            )
        if config.regularization.r1_gamma and config.regularization.r1_every > 1:
            raise ValueError(
                "config.lr_decay_steps with lazy R1 (regularization.r1_every > 1) is not supported: "
                "the lazy R1 updates shift D's update count; set r1_every=1 or lr_decay_steps=0."
            )
        if config.regularization.path_length and config.regularization.path_length_every > 1:
            raise ValueError(
                "config.lr_decay_steps with lazy path length regularization (regularization.path_length_every "
                "> 1) is not supported: its updates shift G's update count; set path_length_every=1 or "
                "lr_decay_steps=0."
            )


def eval_metric_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The evaluators `config.eval_metrics` names, in order."""
    return tuple(n.strip() for n in str(config.get("eval_metrics", "")).split(",") if n.strip())


def data_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The shape of one training sample, known from the config alone (no data loaded)."""
    if config.data.source == "mixture":
        return (2,)
    return (config.data.image_size, config.data.image_size, config.data.channels)
