"""Experiment configuration: the one place (with the loop) that reads a ConfigDict.

`base_config()` lists every field with a comment; experiment files in
`experiments/configs/` start from it. `validate()` raises clear errors before
anything compiles. `build_*` turn the config into the explicit keyword
arguments the library takes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Iterator

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan import latent, optim
from jaxgan.losses import LOSSES, get_loss
from jaxgan.nets import NETWORKS, check_image_size, d_capacity_kwargs, get_network_classes
from jaxgan.train.steps import (CRITIC_LOOPS, FAKE_LABELS, GANStep, Regularization, ema_decay_from_half_life,
                                ema_decay_with_warmup, make_train_step)


DATA_SOURCES = ("tfds", "npz", "folder", "mixture", "stacked_digits")


def base_config() -> ml_collections.ConfigDict:
    """Every field a jaxgan experiment has; the default is DCGAN on the offline digits."""
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

    c.g_optimizer = ml_collections.ConfigDict(dict(learning_rate=2e-4, b1=0.5, b2=0.999))  # Adam (Radford et al. 2016)
    c.d_optimizer = ml_collections.ConfigDict(dict(learning_rate=2e-4, b1=0.5, b2=0.999))
    c.lr_decay_steps = 0  # > 0: both learning rates decay linearly to zero over the last N train steps (CycleGAN)

    # Durations. A step is n_critic D updates + 1 G update and shows D
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


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Every duration of a run, in train steps (0 = never)."""

    train_steps: int
    log_every: int
    sample_every: int
    checkpoint_every: int
    eval_every: int
    images_per_step: int

    def due(self, every: int, step: int) -> bool:
        """Whether a periodic action with period `every` runs after step `step` (always at the end)."""
        return step == self.train_steps or (every > 0 and step % every == 0)

    def call_sizes(self, start: int, steps_per_call: int, *, with_eval: bool = True) -> Iterator[int]:
        """How many steps each compiled call runs, from `start` to the end: `steps_per_call`
        where no periodic action falls inside the call, single steps up to the next one otherwise."""
        periods = [p for p in (self.log_every, self.sample_every, self.checkpoint_every,
                               self.eval_every if with_eval else 0) if p > 0]
        step = start
        while step < self.train_steps:
            next_event = min([self.train_steps] + [(step // p + 1) * p for p in periods])
            while step + steps_per_call <= next_event and steps_per_call > 1:
                yield steps_per_call
                step += steps_per_call
            while step < next_event:
                yield 1
                step += 1


def _steps(config: ml_collections.ConfigDict, name: str, images_per_step: int) -> int:
    images = config.get(f"{name}_images", 0)
    if images:
        return max(1, math.ceil(images / images_per_step))
    return int(config[f"{name}_steps"])


def resolve_schedule(config: ml_collections.ConfigDict) -> Schedule:
    """Converts every duration to steps, in one place (images -> ceil(images / images per step))."""
    per_step = config.batch_size * config.n_critic
    return Schedule(
        train_steps=_steps(config, "train", per_step),
        log_every=int(config.log_every_steps),
        sample_every=_steps(config, "sample_every", per_step),
        checkpoint_every=_steps(config, "checkpoint_every", per_step),
        eval_every=_steps(config, "eval_every", per_step),
        images_per_step=per_step,
    )


def _validate_labels(config: ml_collections.ConfigDict) -> None:
    """model.fake_labels and data.cluster_labels (k-means cluster conditioning) fit model.num_classes."""
    fake_labels = config.model.get("fake_labels", "uniform")
    if fake_labels not in FAKE_LABELS:
        raise ValueError(f"config.model.fake_labels={fake_labels!r}; valid: {FAKE_LABELS}.")
    clusters = config.data.get("cluster_labels", 0)
    if not isinstance(clusters, int) or clusters < 0:
        raise ValueError(f"config.data.cluster_labels={clusters!r} must be an int >= 0 (k-means clusters; 0 = off).")
    if clusters and config.model.num_classes != clusters:
        raise ValueError(f"config.data.cluster_labels={clusters} conditions the GAN on {clusters} clusters, but "
                         f"config.model.num_classes={config.model.num_classes}; set model.num_classes={clusters}.")
    if clusters and fake_labels != "real":
        raise ValueError(f"config.data.cluster_labels={clusters}: k-means clusters differ in size, so G must draw "
                         "the real batch's cluster ids; set config.model.fake_labels='real'.")


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ValueError naming the field, its value and the fix; runs before compilation."""
    if config.model.name not in NETWORKS:
        raise ValueError(f"config.model.name={config.model.name!r} is unknown; valid names: {sorted(NETWORKS)}.")
    if config.data.source not in DATA_SOURCES:
        raise ValueError(f"config.data.source={config.data.source!r}; valid: {DATA_SOURCES}.")
    _validate_labels(config)
    if config.data.source == "mixture":
        from jaxgan.metrics.modes import MIXTURES  # numpy only
        if config.data.name not in MIXTURES:
            raise ValueError(f"config.data.name={config.data.name!r} is not a mixture; valid: {sorted(MIXTURES)}.")
        if config.model.name != "mlp":
            raise ValueError(f"2-D mixture data needs model.name='mlp'; {config.model.name!r} makes images.")
    else:
        if config.data.channels not in (1, 3):
            raise ValueError(f"config.data.channels={config.data.channels!r}: jaxgan trains on 1 (grayscale) or 3 (RGB) "
                             "channels; set --config.data.channels=1 or 3.")
        check_image_size(config.model.name, config.data.image_size, channels=config.data.channels)
    if config.data.source == "stacked_digits" and config.data.channels != 3:
        raise ValueError(f"config.data.source='stacked_digits' stacks 3 digits as channels; set "
                         f"config.data.channels=3 (got {config.data.channels}).")
    if config.data.source in ("mixture", "stacked_digits") and config.data.num_examples < 1:
        raise ValueError(f"config.data.num_examples={config.data.num_examples} must be >= 1.")
    latent_codes(config)  # fails on malformed codes
    if config.model.num_classes and config.data.source == "folder":
        raise ValueError(
            f"config.model.num_classes={config.model.num_classes} makes a conditional GAN, which needs labels, but "
            "a folder of images has none; use a labeled TFDS dataset or an .npz with 'labels', or num_classes=0.")
    if config.get("eval_every_steps", 0) or config.get("eval_every_images", 0):
        from jaxgan.metrics.evaluator import EVALUATORS  # light: numpy/jax only
        names = eval_metric_names(config)
        bad = [n for n in names if n not in EVALUATORS]
        if bad or not names:
            raise ValueError(f"config.eval_metrics={config.eval_metrics!r}: unknown {bad or 'empty'}; valid names: "
                             f"{sorted(EVALUATORS)}.")
        if "fcd" in names and (config.data.name != "sklearn_digits" or config.data.channels != 1
                               or config.data.image_size != 32):
            raise ValueError("config.eval_metrics has 'fcd', the digits classifier's Frechet distance, which needs "
                             "the 32x32x1 sklearn_digits data; use 'fid' or 'kid' for other data.")
    unknown = set(config.regularization) - {f.name for f in dataclasses.fields(Regularization)}
    if unknown:
        raise ValueError(f"Unknown config.regularization fields {sorted(unknown)}; valid: "
                         f"{sorted(f.name for f in dataclasses.fields(Regularization))}.")
    if config.loss not in LOSSES:
        raise ValueError(f"config.loss={config.loss!r} is unknown; valid names: {sorted(LOSSES)}.")
    compute_dtype(config.model.get("dtype", "float32"))
    if config.model.name == "dcgan":
        from jaxgan.nets.dcgan import DOWNSAMPLE_FORMS, UPSAMPLE_FORMS
        if config.model.upsample not in UPSAMPLE_FORMS:
            raise ValueError(f"config.model.upsample={config.model.upsample!r}; valid: {UPSAMPLE_FORMS}.")
        if config.model.get("downsample", "conv") not in DOWNSAMPLE_FORMS:
            raise ValueError(f"config.model.downsample={config.model.downsample!r}; valid: {DOWNSAMPLE_FORMS}.")
    for field, lowest in (("extra_layers", 0), ("g_extra_layers", -1), ("d_extra_layers", -1)):
        value = config.model.get(field, lowest)
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            raise ValueError(f"config.model.{field}={value!r} must be an int >= {lowest}"
                             + (" (-1: as model.extra_layers)." if lowest else "."))
        if config.model.name != "dcgan" and value > 0:
            raise ValueError(f"config.model.{field}={value} is a DCGAN option; model.name is "
                             f"{config.model.name!r}. Set it to {lowest} or use model.name='dcgan'.")
    if config.model.get("g_conditional_bn", False):
        if config.model.name != "dcgan":
            raise ValueError(f"config.model.g_conditional_bn=True is a DCGAN G option; model.name is "
                             f"{config.model.name!r} (the ResNet G's BatchNorm is class-conditional already).")
        if not config.model.num_classes:
            raise ValueError("config.model.g_conditional_bn=True gives G per-class BatchNorm scales and shifts, so "
                             "it needs model.num_classes > 0 (or data.cluster_labels); set it to False otherwise.")
    for name in ("g_optimizer", "d_optimizer"):
        opt = config[name]
        lr = opt.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"config.{name}.learning_rate={lr!r} must be a finite number > 0 (e.g. 2e-4).")
        for beta in ("b1", "b2"):
            b = opt.get(beta, 0.0)
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1:
                raise ValueError(f"config.{name}.{beta}={b!r} must lie in [0, 1) (Adam's decay rate).")
    if config.critic_loop not in CRITIC_LOOPS:
        raise ValueError(f"config.critic_loop={config.critic_loop!r}; valid: {CRITIC_LOOPS}.")
    if not isinstance(config.n_critic, int) or config.n_critic < 1:
        raise ValueError(f"config.n_critic={config.n_critic!r} must be an int >= 1 (D updates per G update).")
    if not isinstance(config.get("steps_per_call", 1), int) or config.get("steps_per_call", 1) < 1:
        raise ValueError(f"config.steps_per_call={config.get('steps_per_call')!r} must be an int >= 1 (train steps "
                         "per compiled call).")
    if config.get("step_loop", "auto") not in CRITIC_LOOPS:
        raise ValueError(f"config.step_loop={config.get('step_loop')!r}; valid: {CRITIC_LOOPS}.")
    if config.batch_size < 1 or config.batch_size % num_devices:
        raise ValueError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} devices; "
            f"use a positive multiple of {num_devices}."
        )
    for name in ("train_steps", "log_every_steps", "sample_every_steps", "checkpoint_every_steps"):
        if getattr(config, name) < 1:
            raise ValueError(f"config.{name}={getattr(config, name)} must be >= 1.")
    for name in ("eval_every_steps", "train_images", "sample_every_images", "checkpoint_every_images",
                 "eval_every_images"):
        if config.get(name, 0) < 0:
            raise ValueError(f"config.{name}={config.get(name)} must be >= 0 (0 = off / use the *_steps field).")
    decay = config.get("lr_decay_steps", 0)
    if decay:
        if not 0 < decay <= config.train_steps:
            raise ValueError(f"config.lr_decay_steps={decay} must be in [0, config.train_steps={config.train_steps}] "
                             "(the learning rates reach zero at the end of training).")
        if config.get("train_images", 0):
            raise ValueError("config.lr_decay_steps counts train steps: give the run's length as config.train_steps, "
                             "not config.train_images.")
        if config.regularization.r1_gamma and config.regularization.r1_every > 1:
            raise ValueError("config.lr_decay_steps with lazy R1 (regularization.r1_every > 1) is not supported: "
                             "the lazy R1 updates shift D's update count; set r1_every=1 or lr_decay_steps=0.")


def eval_metric_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The evaluators `config.eval_metrics` names, in order."""
    return tuple(n.strip() for n in str(config.get("eval_metrics", "")).split(",") if n.strip())


def data_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The shape of one training sample, known from the config alone (no data loaded)."""
    if config.data.source == "mixture":
        return (2,)
    return (config.data.image_size, config.data.image_size, config.data.channels)


def latent_codes(config: ml_collections.ConfigDict) -> latent.LatentCodes:
    """config.model.info_categorical / info_continuous -> validated InfoGAN codes (empty by default)."""
    m = config.model
    text = str(m.get("info_categorical", "")).strip()
    try:
        sizes = tuple(int(k) for k in text.split(",")) if text else ()
    except ValueError:
        raise ValueError(f"config.model.info_categorical={text!r}: give comma-separated code sizes, e.g. '10' or "
                         "'10,10,10' ('' = none).") from None
    try:
        return latent.make_codes(sizes, int(m.get("info_continuous", 0)), latent_dim=int(m.latent_dim))
    except ValueError as e:
        raise ValueError(f"config.model.info_categorical / info_continuous: {e}") from None


def _d_options(config: ml_collections.ConfigDict, codes: latent.LatentCodes) -> dict:
    """Discriminator keyword arguments shared by the architectures (Q head sized for G's `codes`)."""
    m = config.model
    kwargs = dict(num_classes=m.num_classes, conditioning=m.conditioning, aux_classifier=m.aux_classifier,
                  projection_dim=m.get("projection_dim", 0), embed_spectral_norm=m.get("projection_embed_sn", True),
                  minibatch_std=m.minibatch_std, minibatch_discrimination=m.minibatch_discrimination, pack=m.pack,
                  info_outputs=codes.q_outputs)
    kwargs["spectral_norm"] = m.spectral_norm
    kwargs.update(d_capacity_kwargs(m.d_capacity, m.name))
    return kwargs


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> Any:
    """config.model.dtype -> the jnp dtype the networks compute in."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"config.model.dtype={name!r}; valid: {sorted(COMPUTE_DTYPES)} (float16 would need loss "
                         "scaling; bfloat16 has float32's exponent range and does not).")
    return COMPUTE_DTYPES[name]


def extra_layers(model: ml_collections.ConfigDict, net: str) -> int:
    """DCGAN extra 3x3 conv layers of G (`net`="g") or D ("d"): model.g_/d_extra_layers, or model.extra_layers
    where that is -1."""
    own = model.get(f"{net}_extra_layers", -1)
    return model.get("extra_layers", 0) if own == -1 else own


def build_networks(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator named by `config.model` for the data shape."""
    g_cls, d_cls = get_network_classes(config.model.name)
    m, data = config.model, config.data
    codes = latent_codes(config)
    d_kwargs = _d_options(config, codes)
    dtype = compute_dtype(m.get("dtype", "float32"))
    g_cls = functools.partial(g_cls, dtype=dtype, latent_codes=codes)
    d_cls = functools.partial(d_cls, dtype=dtype)
    if m.name == "dcgan":
        return (g_cls(latent_dim=m.latent_dim, image_size=data.image_size, channels=data.channels,
                      ngf=m.g_width, upsample=m.upsample, num_classes=m.num_classes,
                      label_embed_dim=m.label_embed_dim, extra_layers=extra_layers(m, "g"),
                      conditional_batch_norm=m.get("g_conditional_bn", False)),
                d_cls(image_size=data.image_size, ndf=m.d_width, batch_norm=m.d_batch_norm,
                      downsample=m.get("downsample", "conv"), extra_layers=extra_layers(m, "d"), **d_kwargs))
    if m.name == "mlp":
        shape = data_shape(config)
        d_kwargs.setdefault("depth", m.get("d_depth", 0) or m.depth)
        return (g_cls(latent_dim=m.latent_dim, out_shape=shape, hidden=m.g_width, depth=m.depth,
                      tanh_output=len(shape) == 3, num_classes=m.num_classes, label_embed_dim=m.label_embed_dim,
                      batch_norm=m.get("g_batch_norm", False)),
                d_cls(hidden=m.d_width, maxout_pieces=m.get("d_maxout_pieces", 0), **d_kwargs))
    if m.name == "resnet":
        return (g_cls(latent_dim=m.latent_dim, image_size=data.image_size, channels=data.channels,
                      ngf=m.g_width, num_classes=m.num_classes),
                d_cls(image_size=data.image_size, ndf=m.d_width, **d_kwargs))
    raise ValueError(f"No config mapping for network {config.model.name!r}.")


def build_optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, ...]:
    """(g_tx, d_tx): Adam with separate learning rates and betas (two time-scale updates,
    Heusel et al. 2017); D's Adam gets StyleGAN2's correction under lazy R1."""
    reg = config.regularization
    lazy = reg.r1_every if reg.r1_gamma and reg.r1_every > 1 else 0
    g, d = config.g_optimizer, config.d_optimizer
    g_lr, d_lr = g.learning_rate, d.learning_rate
    if config.get("lr_decay_steps", 0):  # schedules count optimizer updates: D makes n_critic per step
        steps, decay, k = config.train_steps, config.lr_decay_steps, config.n_critic
        g_lr = optim.linear_decay_schedule(g_lr, total_steps=steps, decay_steps=decay)
        d_lr = optim.linear_decay_schedule(d_lr, total_steps=steps * k, decay_steps=decay * k)
    return (optim.adam(g_lr, b1=g.b1, b2=g.b2),
            optim.adam(d_lr, b1=d.b1, b2=d.b2, lazy_every=lazy))


def build_step(config: ml_collections.ConfigDict, generator: nn.Module, discriminator: nn.Module,
               g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation) -> GANStep:
    """The pure train step with the config's loss and static options."""
    if config.ema_half_life_images:
        ema_decay = ema_decay_from_half_life(half_life_images=config.ema_half_life_images,
                                             batch_size=config.batch_size, rampup=config.ema_rampup or None)
    elif config.ema_warmup:
        ema_decay = ema_decay_with_warmup(config.ema_decay)
    else:
        ema_decay = config.ema_decay
    return make_train_step(generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
                           loss=get_loss(config.loss, real_label=config.real_label), n_critic=config.n_critic,
                           ema_decay=ema_decay, critic_loop=config.critic_loop,
                           regularization=Regularization(**config.regularization.to_dict()),
                           num_discriminators=config.num_discriminators, d_aggregation=config.d_aggregation,
                           d_temperature=config.d_temperature,
                           fake_labels=config.model.get("fake_labels", "uniform"))

