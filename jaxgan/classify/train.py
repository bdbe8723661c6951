"""Training and evaluating the small classifier: a pure Optax step, K steps of S seeds per call.

The training pool is a fixed-size array of candidate images (real first, then
GAN samples, then padding) with a per-row `is_real` flag; `pool_size` rows of
it are in use. Each step draws `batch_size` rows uniformly with replacement, so
a pool of n real and r * n synthetic images gives batches that are r / (1 + r)
synthetic on average. Classic augmentation, when on, is applied to the real
rows of the batch only. Because the pool size is an argument, not a shape, every
setting of one experiment (real only, real + GAN at any ratio, ...) runs the
same compiled function.

Randomness: each step's key is fold_in(state.rng, step), split into the batch
draw and the augmentation draw, so a run is a pure function of its initial
state and pool.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan.common import Params

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, images [B, H, W, C]) -> images


class ClassifierState(struct.PyTreeNode):
    """Everything a classifier run evolves: step, params, optimizer state and the base key."""

    step: jax.Array
    params: Params
    opt_state: optax.OptState
    rng: jax.Array


def create_state(
    model: nn.Module, tx: optax.GradientTransformation, key: jax.Array, example_images: jax.Array
) -> ClassifierState:
    """A fresh state: params from split(key)[0], the step keys from split(key)[1]."""
    init_key, rng = jax.random.split(key)
    params = model.init(init_key, example_images)["params"]
    return ClassifierState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(
    state: ClassifierState, batch: Mapping[str, jax.Array], *, model: nn.Module, tx: optax.GradientTransformation
) -> tuple[ClassifierState, dict[str, jax.Array]]:
    """One Optax update on batch {"image": [B, H, W, C], "label": [B]}; returns (state, {loss, accuracy})."""

    def loss_fn(params):
        logits = model.apply({"params": params}, batch["image"])
        return cross_entropy(logits, batch["label"]), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def draw_batch(
    key: jax.Array,
    pool: Mapping[str, jax.Array],
    pool_size: jax.Array,
    *,
    batch_size: int,
    augment: Augment | None = None,
) -> dict[str, jax.Array]:
    """`batch_size` rows drawn uniformly from the first `pool_size` rows; real rows augmented if `augment`."""
    k_rows, k_aug = jax.random.split(key)
    rows = jax.random.randint(k_rows, (batch_size,), 0, pool_size)
    images, labels = pool["image"][rows], pool["label"][rows]
    if augment is not None:
        is_real = pool["is_real"][rows].reshape((-1,) + (1,) * (images.ndim - 1))
        images = jnp.where(is_real, augment(k_aug, images), images)
    return {"image": images, "label": labels}


def fit(
    state: ClassifierState,
    pool: Mapping[str, jax.Array],
    pool_size: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    augment: Augment | None = None,
) -> tuple[ClassifierState, jax.Array]:
    """`num_steps` train steps on batches drawn from the pool (a `lax.scan`); returns (state, losses [K])."""

    def body(state, _):
        batch = draw_batch(
            jax.random.fold_in(state.rng, state.step), pool, pool_size, batch_size=batch_size, augment=augment
        )
        state, metrics = train_step(state, batch, model=model, tx=tx)
        return state, metrics["loss"]

    return jax.lax.scan(body, state, None, length=num_steps)


def _over_seeds(fn: Callable, seed_loop: str) -> Callable:
    """fn mapped over a leading seed axis of every argument: vmap, or lax.map (one seed after the other)."""
    if seed_loop == "auto":
        seed_loop = "map" if jax.default_backend() == "cpu" else "vmap"
    if seed_loop == "vmap":
        return jax.vmap(fn)
    if seed_loop == "map":
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    raise ValueError(f"seed_loop={seed_loop!r}; valid: 'auto', 'vmap', 'map'.")


def make_fit_seeds(
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    augment: Augment | None = None,
    seed_loop: str = "auto",
) -> Callable:
    """The jitted `(states, pools, pool_sizes) -> (states, losses [S, K])` that trains S seeds at once.

    Every argument has a leading seed axis S. seed_loop "map" (the default on
    CPU, where a vmapped conv runs slower per seed than one seed at a time) or
    "vmap" gives the same results.
    """
    if num_steps < 1 or batch_size < 1:
        raise ValueError(f"num_steps ({num_steps}) and batch_size ({batch_size}) must be >= 1.")
    one = functools.partial(fit, model=model, tx=tx, num_steps=num_steps, batch_size=batch_size, augment=augment)
    return jax.jit(_over_seeds(one, seed_loop))


def predict_logits(model: nn.Module, params: Params, images: jax.Array, *, chunk: int = 256) -> jax.Array:
    """Logits [N, num_classes] of `images` [N, H, W, C], in chunks of `chunk` (zero-padded at the end)."""
    n = images.shape[0]
    chunks = -(-n // chunk)
    padded = jnp.pad(images, ((0, chunks * chunk - n),) + ((0, 0),) * (images.ndim - 1))
    logits = jax.lax.map(
        lambda x: model.apply({"params": params}, x), padded.reshape((chunks, chunk) + images.shape[1:])
    )
    return logits.reshape((chunks * chunk, -1))[:n]


def accuracy(model: nn.Module, params: Params, images: jax.Array, labels: jax.Array, *, chunk: int = 256) -> jax.Array:
    """Fraction of `images` whose argmax logit is their label."""
    return jnp.mean(jnp.argmax(predict_logits(model, params, images, chunk=chunk), -1) == labels)
