"""Pure, data-parallel train steps for CycleGAN and pix2pix: `(state, batch) -> (state, metrics)`.

Like `jaxgan.train.GANStep`, each step is written against ONE axis name
(`jaxgan.common.DATA_AXIS`) and runs under `jax.shard_map` over a 1-D mesh
(`shard_map_translation_step`, any number of devices, one included): the batch
is split on its B axis, gradients and metrics are `pmean`'d inside, so the
state leaves the step identical on every device. Every random draw comes from
fold_in(state.rng, state.step); per-example draws (the history buffers' coins,
pix2pix's dropout) fold in the example's index in the GLOBAL batch, so results
do not depend on the device count.

Batch: {"a": float32 [B, H, W, Ca], "b": float32 [B, H, W, Cb]} in [-1, 1];
unpaired for CycleGAN, paired (input a, target b) for pix2pix.

This module imports no I/O: no TensorFlow, TFDS, Orbax or CLU.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan import losses, regularizers
from jaxgan.common import DATA_AXIS, Metrics, Params
from jaxgan.state import NetState
from jaxgan.translation.nets import check_image_size, size_multiple


class TranslationState(struct.PyTreeNode):
    """Everything a translation run evolves, as ONE pytree (checkpointed whole).

    `g.params` is {"g_ab": ..., "g_ba": ...} for CycleGAN (one Adam over both, as
    the reference code) and {"g": ...} for pix2pix; `d.params` likewise
    {"d_a": ..., "d_b": ...} or {"d": ...}. `pools` holds CycleGAN's two 50-image
    history buffers ({} for pix2pix). `rng` never changes; step s draws from
    fold_in(rng, s).
    """

    step: jax.Array
    rng: jax.Array
    g: NetState
    d: NetState
    pools: dict = struct.field(default_factory=dict)


# ----------------------------------------------------------------------------
# Losses, per the papers. Each returns a scalar mean over the local batch (and
# patches); the step pmeans gradients, which gives the global mean.


def lsgan_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """0.5 E[(D(y) - 1)^2] + 0.5 E[D(G(x))^2] over every patch logit.

    CycleGAN's least-squares D objective (Zhu et al. 2017, sec. 4 "Training
    details", after Mao et al. 2017), halved "to slow down the rate at which D
    learns"; jaxgan.losses.least_squares_d is exactly this per element.
    """
    return jnp.mean(losses.least_squares_d(real_logits, fake_logits))


def lsgan_g_loss(fake_logits: jax.Array) -> jax.Array:
    """E[(D(G(x)) - 1)^2] (Zhu et al. 2017, sec. 4): twice jaxgan's 0.5-scaled least_squares_g,
    so the cycle weight lambda = 10 means what it means in the paper."""
    return jnp.mean(2.0 * losses.least_squares_g(fake_logits))


def l1_loss(x: jax.Array, y: jax.Array) -> jax.Array:
    """mean |x - y| over every pixel and channel (cycle, identity and pix2pix L1 terms)."""
    if x.shape != y.shape:
        raise ValueError(f"L1 between different shapes {x.shape} and {y.shape}.")
    return jnp.mean(jnp.abs(x - y))


def bce_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """0.5 (E[-log D(x, y)] + E[-log(1 - D(x, G(x)))]): pix2pix's D objective, halved as in
    Isola et al. 2017, sec. 3.3; jaxgan.losses.non_saturating_d per patch logit."""
    return 0.5 * jnp.mean(losses.non_saturating_d(real_logits, fake_logits))


def bce_g_loss(fake_logits: jax.Array) -> jax.Array:
    """E[-log D(x, G(x))]: the non-saturating G objective pix2pix uses (sec. 3.3)."""
    return jnp.mean(losses.non_saturating_g(fake_logits))


# ----------------------------------------------------------------------------
# Shared pieces.


def _apply_grads(net: NetState, grads: Params, tx: optax.GradientTransformation) -> NetState:
    """Averages gradients over devices and takes one Optax step."""
    grads = jax.lax.pmean(grads, DATA_AXIS)
    updates, opt_state = tx.update(grads, net.opt_state, net.params)
    return net.replace(params=optax.apply_updates(net.params, updates), opt_state=opt_state)


def _local(params: Params) -> Params:
    """Params marked device-varying, so their gradient is each device's LOCAL one.

    Under shard_map the gradient of a per-device loss with respect to a replicated
    (invariant) value is implicitly summed over devices; `_apply_grads` then
    averages the local gradients explicitly (as jaxgan.train.steps does).
    """
    return jax.lax.pcast(params, DATA_AXIS, to="varying")


# XLA's optimizing backend spends seconds per threefry normal draw (measured 3.3 s vs
# 0.6 s unoptimized for one 4x4x64x128 kernel on 2 busy CPU cores, jax 0.10.2):
# initialization runs once, so it is compiled without the expensive passes.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compile_init(init: Callable[[jax.Array], Any]) -> Callable[[int | jax.Array], Any]:
    """`init` compiled once, cheaply; the returned function takes a seed or a PRNGKey."""
    compiled = jax.jit(init).lower(jax.random.PRNGKey(0)).compile(INIT_COMPILER_OPTIONS)
    return lambda seed: compiled(jax.random.PRNGKey(seed) if isinstance(seed, int) else seed)


def _global_indices(local_batch: int) -> jax.Array:
    return jax.lax.axis_index(DATA_AXIS) * local_batch + jnp.arange(local_batch)


def _mean_metrics(metrics: Mapping[str, jax.Array]) -> Metrics:
    return jax.lax.pmean({k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}, DATA_AXIS)


def linear_decay_schedule(learning_rate: float, *, total_steps: int, decay_steps: int) -> optax.Schedule:
    """Constant `learning_rate`, then linear decay to zero over the last `decay_steps` steps.

    CycleGAN (Zhu et al. 2017, sec. 4): 2e-4 for the first 100 epochs, then
    linearly to zero over the next 100 (the reference decays per epoch; this is
    the same ramp per step).
    """
    if not 0 <= decay_steps <= total_steps:
        raise ValueError(f"decay_steps must be in [0, total_steps={total_steps}], got {decay_steps}.")
    return optax.linear_schedule(learning_rate, 0.0, transition_steps=max(decay_steps, 1),
                                 transition_begin=total_steps - decay_steps)


def adam(learning_rate: float, *, total_steps: int, decay_steps: int, b1: float = 0.5,
         b2: float = 0.999) -> optax.GradientTransformation:
    """Adam(lr, beta1 0.5, beta2 0.999) with `linear_decay_schedule`: both papers' optimizer."""
    return optax.adam(linear_decay_schedule(learning_rate, total_steps=total_steps, decay_steps=decay_steps),
                      b1=b1, b2=b2)


def _check_batch(batch: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], num_devices: int,
                 paired: bool) -> None:
    """Global batch layout, dtype and divisibility, checked in Python before compilation."""
    for key, shape in shapes.items():
        if key not in batch:
            raise ValueError(f"The batch needs entries {sorted(shapes)}; it has {sorted(batch)}.")
        x = batch[key]
        if tuple(x.shape[1:]) != tuple(shape) or len(x.shape) != 4:
            raise ValueError(f"batch[{key!r}] has shape {tuple(x.shape)}, expected [B, {', '.join(map(str, shape))}]"
                             " (the configured crop size and channels).")
        if np.dtype(x.dtype) != np.float32:
            raise ValueError(f"batch[{key!r}] has dtype {x.dtype}, expected float32 in [-1, 1] "
                             "(jaxgan.common.to_model_range converts uint8).")
        if x.shape[0] % num_devices:
            raise ValueError(f"The batch size {x.shape[0]} is not divisible by the device count {num_devices}; "
                             f"use a multiple of {num_devices}.")
    if paired and batch["a"].shape[0] != batch["b"].shape[0]:
        raise ValueError(f"Paired batch: {batch['a'].shape[0]} inputs but {batch['b'].shape[0]} targets.")


# ----------------------------------------------------------------------------
# CycleGAN.


@dataclasses.dataclass(frozen=True)
class CycleGANStep:
    """CycleGAN's update (Zhu et al. 2017, eq. 3 and sec. 4; the reference code's order).

    G update on L = L_lsgan(G_ab, D_b) + L_lsgan(G_ba, D_a) + lambda (|G_ba(G_ab(a)) - a|_1
    + |G_ab(G_ba(b)) - b|_1) + identity * lambda (|G_ab(b) - b|_1 + |G_ba(a) - a|_1),
    then D update of D_a, D_b on real images against fakes drawn from the
    50-image history buffers (Shrivastava et al. 2017) that the fakes of this
    step entered. Gs share one Adam, Ds another (as the reference code).

    Randomness: the buffers draw from fold_in(fold_in(rng, step), 0 for A / 1 for B),
    then per example from its global index (regularizers.replay_buffer_query).
    """

    g_ab: nn.Module
    g_ba: nn.Module
    d_a: nn.Module
    d_b: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    shape_a: tuple[int, int, int]
    shape_b: tuple[int, int, int]
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # times cycle_weight (paper: 0.5 lambda)
    pool_size: int = 50

    def __post_init__(self):
        for shape, net, what in ((self.shape_a, self.g_ab, "domain A"), (self.shape_b, self.g_ba, "domain B")):
            check_image_size(shape[0], shape[1], multiple=size_multiple(net), what=f"CycleGAN {what} crop")
        if self.identity_weight and self.shape_a[2] != self.shape_b[2]:
            raise ValueError(f"The identity loss needs the same channel count in both domains (A has "
                             f"{self.shape_a[2]}, B {self.shape_b[2]}); set identity_weight=0.")
        if self.cycle_weight < 0 or self.identity_weight < 0:
            raise ValueError("cycle_weight and identity_weight must be >= 0.")
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise ValueError(f"pool_size must be an int >= 0 (paper: 50; 0 = no history), got {self.pool_size!r}.")

    def init_state(self, seed: int | jax.Array) -> TranslationState:
        """Fresh params (N(0, 0.02)), Adam states, empty history buffers, step 0 (one compiled call)."""
        return compile_init(self._init)(seed)

    def abstract_state(self) -> TranslationState:
        """The state's shapes and dtypes, allocating nothing (restore targets)."""
        return jax.eval_shape(self._init, jax.random.PRNGKey(0))

    def _init(self, rng: jax.Array) -> TranslationState:
        k_gab, k_gba, k_da, k_db, train_key = jax.random.split(rng, 5)
        a = jnp.zeros((1, *self.shape_a), jnp.float32)
        b = jnp.zeros((1, *self.shape_b), jnp.float32)
        g_params = {"g_ab": self.g_ab.init(k_gab, a)["params"], "g_ba": self.g_ba.init(k_gba, b)["params"]}
        d_params = {"d_a": self.d_a.init(k_da, a)["params"], "d_b": self.d_b.init(k_db, b)["params"]}
        pools = {}
        if self.pool_size:
            pools = {"a": regularizers.replay_buffer_init(self.pool_size, self.shape_a),
                     "b": regularizers.replay_buffer_init(self.pool_size, self.shape_b)}
        return TranslationState(
            step=jnp.zeros((), jnp.int32), rng=train_key,
            g=NetState(params=g_params, batch_stats={}, opt_state=self.g_tx.init(g_params)),
            d=NetState(params=d_params, batch_stats={}, opt_state=self.d_tx.init(d_params)),
            pools=pools)

    def generator_losses(self, g_params: Params, d_params: Params, a: jax.Array, b: jax.Array):
        """G's total loss and its parts, plus the fakes (for D) and reconstructions."""
        fake_b = self.g_ab.apply({"params": g_params["g_ab"]}, a)
        fake_a = self.g_ba.apply({"params": g_params["g_ba"]}, b)
        rec_a = self.g_ba.apply({"params": g_params["g_ba"]}, fake_b)
        rec_b = self.g_ab.apply({"params": g_params["g_ab"]}, fake_a)
        parts = {
            "g_adv_ab": lsgan_g_loss(self.d_b.apply({"params": d_params["d_b"]}, fake_b)),
            "g_adv_ba": lsgan_g_loss(self.d_a.apply({"params": d_params["d_a"]}, fake_a)),
            "cycle_a": l1_loss(rec_a, a),
            "cycle_b": l1_loss(rec_b, b),
        }
        total = parts["g_adv_ab"] + parts["g_adv_ba"] + self.cycle_weight * (parts["cycle_a"] + parts["cycle_b"])
        if self.identity_weight:
            parts["identity_a"] = l1_loss(self.g_ba.apply({"params": g_params["g_ba"]}, a), a)
            parts["identity_b"] = l1_loss(self.g_ab.apply({"params": g_params["g_ab"]}, b), b)
            total += self.identity_weight * self.cycle_weight * (parts["identity_a"] + parts["identity_b"])
        return total, (parts, fake_a, fake_b)

    def __call__(self, state: TranslationState, batch: Mapping[str, jax.Array]) -> tuple[TranslationState, Metrics]:
        a, b = batch["a"], batch["b"]
        key = jax.random.fold_in(state.rng, state.step)
        (g_loss, (parts, fake_a, fake_b)), g_grads = jax.value_and_grad(self.generator_losses, has_aux=True)(
            _local(state.g.params), state.d.params, a, b)
        g = _apply_grads(state.g, g_grads, self.g_tx)

        pools = state.pools
        if self.pool_size:
            fake_a, pool_a = regularizers.replay_buffer_query(pools["a"], fake_a, jax.random.fold_in(key, 0),
                                                              axis_name=DATA_AXIS)
            fake_b, pool_b = regularizers.replay_buffer_query(pools["b"], fake_b, jax.random.fold_in(key, 1),
                                                              axis_name=DATA_AXIS)
            pools = {"a": pool_a, "b": pool_b}
        fake_a, fake_b = jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b)

        def d_loss_fn(d_params):
            d_a = lsgan_d_loss(self.d_a.apply({"params": d_params["d_a"]}, a),
                               self.d_a.apply({"params": d_params["d_a"]}, fake_a))
            d_b = lsgan_d_loss(self.d_b.apply({"params": d_params["d_b"]}, b),
                               self.d_b.apply({"params": d_params["d_b"]}, fake_b))
            return d_a + d_b, (d_a, d_b)

        (_, (d_a_loss, d_b_loss)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(_local(state.d.params))
        d = _apply_grads(state.d, d_grads, self.d_tx)
        metrics = _mean_metrics({"g_loss": g_loss, "d_a_loss": d_a_loss, "d_b_loss": d_b_loss, **parts})
        return state.replace(step=state.step + 1, g=g, d=d, pools=pools), metrics

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        _check_batch(batch, {"a": self.shape_a, "b": self.shape_b}, num_devices, paired=False)

    def translate(self, g_params: Params, x: jax.Array, direction: str = "AtoB") -> jax.Array:
        """G_ab(x) or G_ba(x) (inference: no randomness)."""
        name, net = {"AtoB": ("g_ab", self.g_ab), "BtoA": ("g_ba", self.g_ba)}[direction]
        return net.apply({"params": g_params[name]}, x)


# ----------------------------------------------------------------------------
# pix2pix.


@dataclasses.dataclass(frozen=True)
class Pix2PixStep:
    """pix2pix's update (Isola et al. 2017, eq. 4 and sec. 3.3; the reference code's order).

    G(x) with dropout, then one D update of D(x, y) vs D(x, G(x)) (conditional:
    input concatenated on channels), then one G update on
    L = E[-log D(x, G(x))] + l1_weight |y - G(x)|_1 against the updated D, with
    the same dropout masks. Example i's dropout key is fold_in(fold_in(rng, step), i),
    i its index in the global batch.
    """

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    shape_a: tuple[int, int, int]
    shape_b: tuple[int, int, int]
    l1_weight: float = 100.0

    def __post_init__(self):
        check_image_size(self.shape_a[0], self.shape_a[1], multiple=size_multiple(self.generator),
                         what="pix2pix crop")
        if self.shape_a[:2] != self.shape_b[:2]:
            raise ValueError(f"pix2pix needs inputs and targets of one size, got {self.shape_a} and {self.shape_b}.")
        if self.l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0 (paper: 100), got {self.l1_weight}.")

    def init_state(self, seed: int | jax.Array) -> TranslationState:
        """Fresh params (N(0, 0.02)) and Adam states, step 0 (one compiled call)."""
        return compile_init(self._init)(seed)

    def abstract_state(self) -> TranslationState:
        """The state's shapes and dtypes, allocating nothing (restore targets)."""
        return jax.eval_shape(self._init, jax.random.PRNGKey(0))

    def _init(self, rng: jax.Array) -> TranslationState:
        k_g, k_d, train_key = jax.random.split(rng, 3)
        a = jnp.zeros((1, *self.shape_a), jnp.float32)
        ab = jnp.zeros((1, *self.shape_a[:2], self.shape_a[2] + self.shape_b[2]), jnp.float32)
        g_params = {"g": self.generator.init(k_g, a)["params"]}
        d_params = {"d": self.discriminator.init(k_d, ab)["params"]}
        return TranslationState(
            step=jnp.zeros((), jnp.int32), rng=train_key,
            g=NetState(params=g_params, batch_stats={}, opt_state=self.g_tx.init(g_params)),
            d=NetState(params=d_params, batch_stats={}, opt_state=self.d_tx.init(d_params)))

    def generate(self, g_params: Params, a: jax.Array, keys: jax.Array) -> jax.Array:
        """G(a) in training mode, example i with dropout key keys[i]."""
        def one(x, k):
            return self.generator.apply({"params": g_params["g"]}, x[None], train=True, rngs={"dropout": k})[0]
        return jax.vmap(one)(a, keys)

    def _d(self, d_params: Params, a: jax.Array, b: jax.Array) -> jax.Array:
        return self.discriminator.apply({"params": d_params["d"]}, jnp.concatenate([a, b], axis=-1))

    def __call__(self, state: TranslationState, batch: Mapping[str, jax.Array]) -> tuple[TranslationState, Metrics]:
        a, b = batch["a"], batch["b"]
        key = jax.random.fold_in(state.rng, state.step)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(_global_indices(a.shape[0]))
        fake = jax.lax.stop_gradient(self.generate(state.g.params, a, keys))

        def d_loss_fn(d_params):
            return bce_d_loss(self._d(d_params, a, b), self._d(d_params, a, fake))

        d_loss, d_grads = jax.value_and_grad(d_loss_fn)(_local(state.d.params))
        d = _apply_grads(state.d, d_grads, self.d_tx)

        def g_loss_fn(g_params):
            out = self.generate(g_params, a, keys)
            adv, l1 = bce_g_loss(self._d(d.params, a, out)), l1_loss(out, b)
            return adv + self.l1_weight * l1, (adv, l1)

        (g_loss, (g_adv, l1)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(_local(state.g.params))
        g = _apply_grads(state.g, g_grads, self.g_tx)
        metrics = _mean_metrics({"g_loss": g_loss, "g_adv": g_adv, "l1": l1, "d_loss": d_loss})
        return state.replace(step=state.step + 1, g=g, d=d), metrics

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        _check_batch(batch, {"a": self.shape_a, "b": self.shape_b}, num_devices, paired=True)

    def translate(self, g_params: Params, x: jax.Array, direction: str = "AtoB") -> jax.Array:
        """G(x) in inference mode (dropout off, so a translation is deterministic)."""
        if direction != "AtoB":
            raise ValueError(f"pix2pix has one generator (AtoB); got direction={direction!r}.")
        return self.generator.apply({"params": g_params["g"]}, x)


TranslationStep = CycleGANStep | Pix2PixStep
BATCH_SPEC = P(DATA_AXIS)


def translation_batch(local_batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows ([B_local, ...] numpy) as global arrays sharded on B."""
    sharding = NamedSharding(mesh, BATCH_SPEC)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def shard_map_translation_step(step: TranslationStep, mesh: Mesh) -> Callable:
    """The step under `jax.shard_map` + `jax.jit` over `mesh`, state replicated and donated.

    Takes this process's rows of the batch as numpy (checked before compilation)
    or global arrays; returns the new state and scalar metrics.
    """
    if mesh.axis_names != (DATA_AXIS,):
        raise ValueError(f"The mesh must be 1-D with axis {DATA_AXIS!r} (jaxgan.make_mesh()), got {mesh.axis_names}.")
    compiled = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), BATCH_SPEC), out_specs=(P(), P())),
                       donate_argnums=0)

    def run(state: TranslationState, batch: Mapping[str, Any]) -> tuple[TranslationState, Metrics]:
        if all(isinstance(v, jax.Array) for v in batch.values()):
            step.check_batch(batch, mesh.size)
            return compiled(state, dict(batch))
        step.check_batch(batch, len(mesh.local_devices))
        return compiled(state, translation_batch(batch, mesh))

    run.compiled = compiled
    return run
