"""The TrainState: everything training needs and a resume must restore, as ONE pytree.

Forked from `flax.training.train_state.TrainState`, whose docstring advises a
fork for several optimizers. It holds arrays only (no functions), so it can be
donated, sharded, checkpointed and compared leaf by leaf; the networks and the
Optax transformations are bound into the step instead.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan.common import Params


class NetState(struct.PyTreeNode):
    """One network's trainable state."""

    params: Params
    batch_stats: Params  # BatchNorm running statistics; {} for nets without BatchNorm
    opt_state: optax.OptState


class GANTrainState(struct.PyTreeNode):
    """G, D, the EMA of G, the step count and the base PRNG key.

    `step` counts completed train steps (each = n_critic D updates + 1 G update).
    `rng` never changes: every draw of step s comes from fold_in(rng, s), so a
    resumed run draws exactly what a straight run would have.
    """

    step: jax.Array  # int32 scalar
    rng: jax.Array  # uint32[2], a raw PRNGKey
    g: NetState
    d: NetState  # with K > 1 discriminators, every leaf has a leading axis K
    g_ema_params: Params
    # State of the enabled stabilizers (LeCam anchors, replay buffer, historical
    # averages), keyed by name; {} when none keep any. See GANStep.init_state.
    extras: dict = struct.field(default_factory=dict)


def latent_dim_of(generator: nn.Module) -> int:
    """The generator's latent size; every jaxgan generator declares `latent_dim`."""
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(
            f"{type(generator).__name__} must declare a positive int attribute `latent_dim` "
            f"(got {latent_dim!r}): the step draws z ~ N(0, I) of that size."
        )
    return latent_dim


def num_classes_of(module: nn.Module) -> int:
    """Classes a conditional network takes (0 = unconditional)."""
    return int(getattr(module, "num_classes", 0) or 0)


# XLA options for compiling the (run-once) initialization on CPU.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def _init_net(module: nn.Module, key: jax.Array, example: jax.Array, tx: optax.GradientTransformation) -> NetState:
    # Initialize in inference mode: BatchNorm then creates its statistics without
    # a cross-device collective, so init runs outside any mesh.
    args = (example,)
    if num_classes_of(module):
        args = (example, jnp.zeros((example.shape[0],), jnp.int32))
    variables = module.init(key, *args, train=False)
    params = variables["params"]
    return NetState(params=params, batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def create_train_state(
    rng: jax.Array | int,
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    example_images: jax.Array,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    num_discriminators: int = 1,
) -> GANTrainState:
    """Initializes G and D, their Optax states and the EMA copy of G.

    Args:
      rng: a PRNGKey or an int seed.
      generator: a Flax module `(z, *, train) -> samples` with a `latent_dim` attribute.
      discriminator: a Flax module `(samples, *, train) -> logits [B]`.
      example_images: real samples `[B, ...]` (any B >= 1); only the shape is used.
      g_tx, d_tx: the Optax transformations of G and D.
      num_discriminators: K > 1 stacks K independently initialized discriminators
        (each leaf of `d` gets a leading axis K).
    """
    if isinstance(rng, int):
        rng = jax.random.PRNGKey(rng)
    g_key, d_key, train_key = jax.random.split(rng, 3)
    z = jnp.zeros((1, latent_dim_of(generator)), jnp.float32)
    example = jnp.asarray(example_images[:1], jnp.float32)
    g_args = (z, jnp.zeros((1,), jnp.int32)) if num_classes_of(generator) else (z,)
    fake_shape = jax.eval_shape(lambda: generator.init_with_output(g_key, *g_args, train=False)[0]).shape
    if tuple(fake_shape[1:]) != tuple(example.shape[1:]):
        raise ValueError(
            f"The generator produces samples of shape {tuple(fake_shape[1:])} but the data has "
            f"shape {tuple(example.shape[1:])}; make the generator's output size/channels match the data."
        )
    # A packed D (PacGAN) judges `pack` samples at once: initialize it on that many.
    d_example = jnp.repeat(example, int(getattr(discriminator, "pack", 1)), axis=0)

    def build(g_key: jax.Array, d_key: jax.Array, train_key: jax.Array) -> GANTrainState:
        g = _init_net(generator, g_key, z, g_tx)
        if num_discriminators == 1:
            d = _init_net(discriminator, d_key, d_example, d_tx)
        else:
            d = jax.vmap(lambda k: _init_net(discriminator, k, d_example, d_tx))(
                jax.random.split(d_key, num_discriminators)
            )
        return GANTrainState(
            step=jnp.zeros((), jnp.int32),
            rng=train_key,
            g=g,
            d=d,
            g_ema_params=jax.tree_util.tree_map(jnp.copy, g.params),
        )

    # One compiled initialization, with LLVM's optimizations off: it runs once, so its
    # compile time is what counts, and that is far shorter than optimized or eager
    # (Flax's eager init compiles every op on its own); timings:
    # experiments/results/init_compile_time/README.md.
    if isinstance(g_key, jax.core.Tracer):  # inside a trace (eval_shape, jit): options belong to the outer jit
        return build(g_key, d_key, train_key)
    options = INIT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    return jax.jit(build, compiler_options=options)(g_key, d_key, train_key)


def abstract_train_state(**kwargs: Any) -> GANTrainState:
    """The state's shapes and dtypes without allocating it (for restores, dry runs)."""
    return jax.eval_shape(lambda: create_train_state(**kwargs))
