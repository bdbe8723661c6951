"""The EMA of G's params (what samples and evaluations use) and its decay schedules."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxgan.common import Params

EmaDecay = float | Callable[[jax.Array], jax.Array]


def ema_update(ema_params: Params, params: Params, decay: jax.Array | float) -> Params:
    """ema <- decay * ema + (1 - decay) * params, leaf by leaf: Polyak averaging (`optax.incremental_update`).

    optax weighs the old average by 1 - (1 - decay), which is `decay` exactly for decay >= 0.5 and one
    rounding off below; XLA may also fuse its products into FMAs in another order than the former
    hand-written form. An update can therefore differ from that form by one rounding; the tree is unchanged,
    so checkpoints restore as before.
    """
    return optax.incremental_update(params, ema_params, 1.0 - decay)


def ema_decay_with_warmup(decay: float) -> Callable[[jax.Array], jax.Array]:
    """min(decay, (1 + step) / (10 + step)): the EMA follows G closely early on,
    so it does not average in the random init (the `num_updates` rule of
    tf.train.ExponentialMovingAverage)."""
    return lambda step: jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_decay_from_half_life(
    *, half_life_images: float, batch_size: int, rampup: float | None = None
) -> Callable[[jax.Array], jax.Array]:
    """StyleGAN2-ADA's EMA: the weight of G's past halves every `half_life_images` images.

    decay = 0.5 ** (batch_size / h) per step, where h = half_life_images, or with
    a ramp-up h = min(half_life_images, images_seen * rampup), so early on the EMA
    tracks G (Karras et al. 2020, arXiv:2006.06676, training_loop.py `ema_kimg`,
    `ema_rampup` = 0.05). images_seen counts the images before this step's update.
    """
    if half_life_images <= 0 or batch_size < 1:
        raise ValueError(f"Need half_life_images > 0 and batch_size >= 1, got {half_life_images}, {batch_size}.")

    def decay(step: jax.Array) -> jax.Array:
        h = jnp.asarray(half_life_images, jnp.float32)
        if rampup is not None:
            h = jnp.minimum(h, step.astype(jnp.float32) * batch_size * rampup)
        return jnp.where(h > 0, 0.5 ** (batch_size / jnp.maximum(h, 1e-8)), 0.0)

    return decay
