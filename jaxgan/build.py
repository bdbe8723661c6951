"""The GAN zoo's builders: the networks, optimizers and train step a config describes.

Networks are built by name: `config.model.name` picks an architecture of `jaxgan.nets.registry`, whose
`from_config` maps `config.model`'s fields onto its constructors (the one place per architecture that names
them). Each builder checks the options it uses; `config_errors` renames its errors after the config field,
so `jaxgan.config` checks none of them again. `build_validated` is what the orchestrator, the dry run and
`jaxgan.config.validate` call: the config's own checks, then every builder. Nothing here compiles.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan import config as config_lib
from jaxgan import latent, optim
from jaxgan.losses import get_loss
from jaxgan.nets.registry import extra_layers, get_architecture  # noqa: F401 (extra_layers: an old config name)
from jaxgan.run_config import config_errors
from jaxgan.train import (
    GANStep,
    Regularization,
    ema_decay_from_half_life,
    ema_decay_with_warmup,
    make_train_step,
    multi_step,
)

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# make_train_step's arguments that come straight from a config field, named as the field.
STEP_FIELDS = dict(
    n_critic="n_critic",
    n_gen="n_gen",
    critic_loop="critic_loop",
    fake_labels="model.fake_labels",
    ema_decay="ema_decay",
    num_discriminators="num_discriminators",
    d_aggregation="d_aggregation",
    d_temperature="d_temperature",
    regularization="regularization",
    real_label="real_label",
)


@dataclasses.dataclass(frozen=True)
class Built:
    """What a config builds: both networks, their optimizers and the pure train step (nothing compiled)."""

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    step: GANStep


def compute_dtype(name: str) -> Any:
    """config.model.dtype -> the jnp dtype the networks compute in."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(
            f"config.model.dtype={name!r}; valid: {sorted(COMPUTE_DTYPES)} (float16 would need loss "
            "scaling; bfloat16 has float32's exponent range and does not)."
        )
    return COMPUTE_DTYPES[name]


def latent_codes(config: ml_collections.ConfigDict) -> latent.LatentCodes:
    """config.model.info_categorical / info_continuous -> validated InfoGAN codes (empty by default)."""
    m = config.model
    text = str(m.get("info_categorical", "")).strip()
    try:
        sizes = tuple(int(k) for k in text.split(",")) if text else ()
    except ValueError:
        raise ValueError(
            f"config.model.info_categorical={text!r}: give comma-separated code sizes, e.g. '10' or "
            "'10,10,10' ('' = none)."
        ) from None
    try:
        return latent.make_codes(sizes, int(m.get("info_continuous", 0)), latent_dim=int(m.latent_dim))
    except ValueError as e:
        raise ValueError(f"config.model.info_categorical / info_continuous: {e}") from None


def build_networks(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator `config.model` names, for the data's sample shape."""
    return get_architecture(config.model.name).from_config(
        config.model,
        config_lib.data_shape(config),
        latent_codes=latent_codes(config),
        dtype=compute_dtype(config.model.get("dtype", "float32")),
    )


def build_optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, ...]:
    """(g_tx, d_tx): Adam or RMSProp (`*_optimizer.name`) with separate learning rates and betas (two
    time-scale updates, Heusel et al. 2017); D's gets StyleGAN2's correction under lazy R1, G's under lazy
    path length regularization."""
    reg = config.regularization
    lazy = reg.r1_every if reg.r1_gamma and reg.r1_every > 1 else 0
    g_lazy = reg.path_length_every if reg.get("path_length", 0) and reg.path_length_every > 1 else 0
    g, d = config.g_optimizer, config.d_optimizer
    g_lr, d_lr = g.learning_rate, d.learning_rate
    if config.get("lr_decay_steps", 0):  # schedules count optimizer updates: n_critic of D, n_gen of G per step
        steps, decay, k, m = config.train_steps, config.lr_decay_steps, config.n_critic, config.get("n_gen", 1)
        with config_errors(config, decay_steps="lr_decay_steps"):
            g_lr = optim.linear_decay_schedule(g_lr, total_steps=steps * m, decay_steps=decay * m)
            d_lr = optim.linear_decay_schedule(d_lr, total_steps=steps * k, decay_steps=decay * k)
    with config_errors(config, b1="g_optimizer.b1", b2="g_optimizer.b2", name="g_optimizer.name"):
        g_tx = optim.from_config(g.get("name", "adam"), g_lr, b1=g.b1, b2=g.b2, lazy_every=g_lazy)
    with config_errors(config, b1="d_optimizer.b1", b2="d_optimizer.b2", name="d_optimizer.name"):
        d_tx = optim.from_config(d.get("name", "adam"), d_lr, b1=d.b1, b2=d.b2, lazy_every=lazy)
    return g_tx, d_tx


def ema_decay(config: ml_collections.ConfigDict) -> float | Callable[[Any], Any]:
    """The EMA decay of G's params: StyleGAN2-ADA's half-life in images, the warm-up rule, or a constant."""
    if config.ema_half_life_images:
        return ema_decay_from_half_life(
            half_life_images=config.ema_half_life_images, batch_size=config.batch_size, rampup=config.ema_rampup or None
        )
    if config.ema_warmup:
        return ema_decay_with_warmup(config.ema_decay)
    return config.ema_decay


def build_step(
    config: ml_collections.ConfigDict,
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
) -> GANStep:
    """The pure train step with the config's loss and static options (checked by `make_train_step`)."""
    with config_errors(config, **STEP_FIELDS):
        return make_train_step(
            generator=generator,
            discriminator=discriminator,
            g_tx=g_tx,
            d_tx=d_tx,
            loss=get_loss(config.loss, real_label=config.real_label),
            n_critic=config.n_critic,
            n_gen=config.get("n_gen", 1),
            ema_decay=ema_decay(config),
            critic_loop=config.critic_loop,
            regularization=Regularization(**config.regularization.to_dict()),
            num_discriminators=config.num_discriminators,
            d_aggregation=config.d_aggregation,
            d_temperature=config.d_temperature,
            fake_labels=config.model.get("fake_labels", "uniform"),
        )


def build(config: ml_collections.ConfigDict) -> Built:
    """The networks, optimizers and step `config` describes, each checking its own options (errors named
    after the config field). No config-level checks: `build_validated` adds those; a workdir's config.json,
    validated when its run started, is rebuilt with this alone."""
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    with config_errors(config, num_steps="steps_per_call", critic_loop="step_loop"):  # checks both; builds nothing
        multi_step(step, config.get("steps_per_call", 1), step_loop=config.get("step_loop", "auto"))
    return Built(generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx, step=step)


def build_validated(config: ml_collections.ConfigDict, num_devices: int) -> Built:
    """`jaxgan.config.check_fields`, then `build`: every option checked once, before anything compiles."""
    config_lib.check_fields(config, num_devices)
    return build(config)
