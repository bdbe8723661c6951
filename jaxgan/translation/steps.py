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
from typing import Any, Callable, ClassVar, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import losses, regularizers
from jaxgan.common import DATA_AXIS, Metrics, Params
from jaxgan.losses import AdversarialLoss
from jaxgan.optim import linear_decay_schedule  # noqa: F401 (re-exported: jaxgan.translation.linear_decay_schedule)
from jaxgan.state import NetState
from jaxgan.train import parallel
from jaxgan.train.keys import example_keys, global_example_indices

# compile_init and INIT_COMPILER_OPTIONS live in jaxgan.train.kit; re-exported here for the loops and tests.
from jaxgan.train.kit import INIT_COMPILER_OPTIONS, compile_init, update_net  # noqa: F401
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
# Losses, per the papers: jaxgan.losses' element-wise objectives averaged over
# every patch logit, scaled as each paper writes them. Each returns a scalar mean
# over the local batch (and patches); the step pmeans gradients, which gives the
# global mean.


class PatchObjective(NamedTuple):
    """An adversarial loss of `jaxgan.losses` on PatchGAN logits, with a paper's scales.

    `d(real, fake) = d_scale * mean(loss.d(real, fake))` and `g(fake) = g_scale *
    mean(loss.g(fake))`, means over every example and patch. Losses whose G term
    reads the real logits (the relativistic ones) are not supported here.
    """

    loss: AdversarialLoss
    d_scale: float = 1.0
    g_scale: float = 1.0

    def d(self, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
        return self.d_scale * jnp.mean(self.loss.d(real_logits, fake_logits))

    def g(self, fake_logits: jax.Array) -> jax.Array:
        return self.g_scale * jnp.mean(self.loss.g(fake_logits))


# CycleGAN (Zhu et al. 2017, sec. 4 "Training details"): least squares (Mao et al. 2017,
# eq. 2). D: 0.5 E[(D(y) - 1)^2] + 0.5 E[D(G(x))^2], the objective halved "to slow down
# the rate at which D learns", which is jaxgan.losses.least_squares_d as it stands. G:
# E[(D(G(x)) - 1)^2], twice the 0.5-scaled least_squares_g, so that the cycle weight
# lambda = 10 means what it means in the paper.
CYCLEGAN_LSGAN = PatchObjective(losses.LOSSES["least_squares"], d_scale=1.0, g_scale=2.0)
# pix2pix (Isola et al. 2017, sec. 3.3): D: 0.5 (E[-log D(x, y)] + E[-log(1 - D(x, G(x)))]),
# halved as in the paper (jaxgan.losses.non_saturating_d, Goodfellow et al. 2014, eq. 1);
# G: the non-saturating E[-log D(x, G(x))] (Goodfellow et al. 2014, sec. 3).
PIX2PIX_BCE = PatchObjective(losses.LOSSES["non_saturating"], d_scale=0.5, g_scale=1.0)


def l1_loss(x: jax.Array, y: jax.Array) -> jax.Array:
    """mean |x - y| over every pixel and channel: the cycle and identity terms of CycleGAN
    (Zhu et al. 2017, eq. 2 and sec. 5.2) and pix2pix's L1 term (Isola et al. 2017, eq. 3)."""
    if x.shape != y.shape:
        raise ValueError(f"L1 between different shapes {x.shape} and {y.shape}.")
    return jnp.mean(jnp.abs(x - y))


def _check_objective(objective: PatchObjective) -> None:
    if objective.loss.g_needs_real:
        raise ValueError(
            f"The {objective.loss.name!r} loss reads real logits in G's loss; the translation steps "
            "take losses whose G term reads only the fakes (e.g. least_squares, non_saturating, hinge)."
        )


# ----------------------------------------------------------------------------
# Shared pieces. Each update is `jaxgan.train.kit.update_net` (local gradients, pmean, Optax), as the GAN
# step's D and G updates.


def adam(
    learning_rate: float, *, total_steps: int, decay_steps: int, b1: float = 0.5, b2: float = 0.999
) -> optax.GradientTransformation:
    """Adam(lr, beta1 0.5, beta2 0.999) with `linear_decay_schedule`: both papers' optimizer."""
    return optax.adam(
        linear_decay_schedule(learning_rate, total_steps=total_steps, decay_steps=decay_steps), b1=b1, b2=b2
    )


def _check_batch(
    batch: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], num_devices: int, paired: bool
) -> None:
    """Global batch layout, dtype and divisibility, checked in Python before compilation."""
    for key, shape in shapes.items():
        if key not in batch:
            raise ValueError(f"The batch needs entries {sorted(shapes)}; it has {sorted(batch)}.")
        x = batch[key]
        if tuple(x.shape[1:]) != tuple(shape) or len(x.shape) != 4:
            raise ValueError(
                f"batch[{key!r}] has shape {tuple(x.shape)}, expected [B, {', '.join(map(str, shape))}]"
                " (the configured crop size and channels)."
            )
        if np.dtype(x.dtype) != np.float32:
            raise ValueError(
                f"batch[{key!r}] has dtype {x.dtype}, expected float32 in [-1, 1] "
                "(jaxgan.common.to_model_range converts uint8)."
            )
        if x.shape[0] % num_devices:
            raise ValueError(
                f"The batch size {x.shape[0]} is not divisible by the device count {num_devices}; "
                f"use a multiple of {num_devices}."
            )
    if paired and batch["a"].shape[0] != batch["b"].shape[0]:
        raise ValueError(f"Paired batch: {batch['a'].shape[0]} inputs but {batch['b'].shape[0]} targets.")


class _TranslationStep:
    """What CycleGAN's and pix2pix's steps share: the state's creation, the step's
    frame (key, step count, device-averaged metrics) and the batch check.

    A subclass defines `paired`, `shape_a`, `shape_b`, `_init(rng) -> state` and
    `_updates(state, a, b, key) -> (state, metrics)`, the updates of one step.
    """

    paired: ClassVar[bool]

    def init_state(self, seed: int | jax.Array) -> TranslationState:
        """Fresh params (N(0, 0.02)), Adam states, empty history buffers, step 0 (one compiled call)."""
        return compile_init(self._init)(seed)

    def abstract_state(self) -> TranslationState:
        """The state's shapes and dtypes, allocating nothing (restore targets)."""
        return jax.eval_shape(self._init, jax.random.PRNGKey(0))

    def uses_convolution(self) -> bool:
        """Whether the networks convolve (read from the traced init): picks the CPU compiler options
        of `jaxgan.train.shard_map_step`."""
        return "conv_general_dilated" in str(jax.make_jaxpr(self._init)(jax.random.PRNGKey(0)))

    def __call__(self, state: TranslationState, batch: Mapping[str, jax.Array]) -> tuple[TranslationState, Metrics]:
        key = jax.random.fold_in(state.rng, state.step)
        state, metrics = self._updates(state, batch["a"], batch["b"], key)
        return state.replace(step=state.step + 1), jax.lax.pmean(metrics, DATA_AXIS)

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        _check_batch(batch, {"a": self.shape_a, "b": self.shape_b}, num_devices, paired=self.paired)


# ----------------------------------------------------------------------------
# CycleGAN.


@dataclasses.dataclass(frozen=True)
class CycleGANStep(_TranslationStep):
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
    objective: PatchObjective = CYCLEGAN_LSGAN
    paired: ClassVar[bool] = False

    def __post_init__(self):
        for shape, net, what in ((self.shape_a, self.g_ab, "domain A"), (self.shape_b, self.g_ba, "domain B")):
            check_image_size(shape[0], shape[1], multiple=size_multiple(net), what=f"CycleGAN {what} crop")
        if self.identity_weight and self.shape_a[2] != self.shape_b[2]:
            raise ValueError(
                f"The identity loss needs the same channel count in both domains (A has "
                f"{self.shape_a[2]}, B {self.shape_b[2]}); set identity_weight=0."
            )
        if self.cycle_weight < 0 or self.identity_weight < 0:
            raise ValueError("cycle_weight and identity_weight must be >= 0.")
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise ValueError(f"pool_size must be an int >= 0 (paper: 50; 0 = no history), got {self.pool_size!r}.")
        _check_objective(self.objective)

    def _init(self, rng: jax.Array) -> TranslationState:
        k_gab, k_gba, k_da, k_db, train_key = jax.random.split(rng, 5)
        a = jnp.zeros((1, *self.shape_a), jnp.float32)
        b = jnp.zeros((1, *self.shape_b), jnp.float32)
        g_params = {"g_ab": self.g_ab.init(k_gab, a)["params"], "g_ba": self.g_ba.init(k_gba, b)["params"]}
        d_params = {"d_a": self.d_a.init(k_da, a)["params"], "d_b": self.d_b.init(k_db, b)["params"]}
        pools = {}
        if self.pool_size:
            pools = {
                "a": regularizers.replay_buffer_init(self.pool_size, self.shape_a),
                "b": regularizers.replay_buffer_init(self.pool_size, self.shape_b),
            }
        return TranslationState(
            step=jnp.zeros((), jnp.int32),
            rng=train_key,
            g=NetState(params=g_params, batch_stats={}, opt_state=self.g_tx.init(g_params)),
            d=NetState(params=d_params, batch_stats={}, opt_state=self.d_tx.init(d_params)),
            pools=pools,
        )

    def generator_losses(self, g_params: Params, d_params: Params, a: jax.Array, b: jax.Array):
        """G's total loss and its parts, plus the fakes (for D) and reconstructions."""
        fake_b = self.g_ab.apply({"params": g_params["g_ab"]}, a)
        fake_a = self.g_ba.apply({"params": g_params["g_ba"]}, b)
        rec_a = self.g_ba.apply({"params": g_params["g_ba"]}, fake_b)
        rec_b = self.g_ab.apply({"params": g_params["g_ab"]}, fake_a)
        parts = {
            "g_adv_ab": self.objective.g(self.d_b.apply({"params": d_params["d_b"]}, fake_b)),
            "g_adv_ba": self.objective.g(self.d_a.apply({"params": d_params["d_a"]}, fake_a)),
            "cycle_a": l1_loss(rec_a, a),
            "cycle_b": l1_loss(rec_b, b),
        }
        total = parts["g_adv_ab"] + parts["g_adv_ba"] + self.cycle_weight * (parts["cycle_a"] + parts["cycle_b"])
        if self.identity_weight:
            parts["identity_a"] = l1_loss(self.g_ba.apply({"params": g_params["g_ba"]}, a), a)
            parts["identity_b"] = l1_loss(self.g_ab.apply({"params": g_params["g_ab"]}, b), b)
            total += self.identity_weight * self.cycle_weight * (parts["identity_a"] + parts["identity_b"])
        return total, (parts, fake_a, fake_b)

    def discriminator_losses(
        self, d_params: Params, a: jax.Array, b: jax.Array, fake_a: jax.Array, fake_b: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """D_a's and D_b's losses, real images against (history) fakes, and their sum."""
        d_a = self.objective.d(
            self.d_a.apply({"params": d_params["d_a"]}, a), self.d_a.apply({"params": d_params["d_a"]}, fake_a)
        )
        d_b = self.objective.d(
            self.d_b.apply({"params": d_params["d_b"]}, b), self.d_b.apply({"params": d_params["d_b"]}, fake_b)
        )
        return d_a + d_b, (d_a, d_b)

    def _updates(
        self, state: TranslationState, a: jax.Array, b: jax.Array, key: jax.Array
    ) -> tuple[TranslationState, Metrics]:
        g, (g_loss, (parts, fake_a, fake_b)), _ = update_net(
            state.g, self.g_tx, lambda p: self.generator_losses(p, state.d.params, a, b)
        )
        pools = state.pools
        if self.pool_size:
            fake_a, pool_a = regularizers.replay_buffer_query(
                pools["a"], fake_a, jax.random.fold_in(key, 0), axis_name=DATA_AXIS
            )
            fake_b, pool_b = regularizers.replay_buffer_query(
                pools["b"], fake_b, jax.random.fold_in(key, 1), axis_name=DATA_AXIS
            )
            pools = {"a": pool_a, "b": pool_b}
        fake_a, fake_b = jax.lax.stop_gradient(fake_a), jax.lax.stop_gradient(fake_b)
        d, (_, (d_a_loss, d_b_loss)), _ = update_net(
            state.d, self.d_tx, lambda p: self.discriminator_losses(p, a, b, fake_a, fake_b)
        )
        metrics = {"g_loss": g_loss, "d_a_loss": d_a_loss, "d_b_loss": d_b_loss, **parts}
        return state.replace(g=g, d=d, pools=pools), metrics

    def translate(self, g_params: Params, x: jax.Array, direction: str = "AtoB") -> jax.Array:
        """G_ab(x) or G_ba(x) (inference: no randomness)."""
        name, net = {"AtoB": ("g_ab", self.g_ab), "BtoA": ("g_ba", self.g_ba)}[direction]
        return net.apply({"params": g_params[name]}, x)


# ----------------------------------------------------------------------------
# pix2pix.


@dataclasses.dataclass(frozen=True)
class Pix2PixStep(_TranslationStep):
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
    objective: PatchObjective = PIX2PIX_BCE
    paired: ClassVar[bool] = True

    def __post_init__(self):
        check_image_size(self.shape_a[0], self.shape_a[1], multiple=size_multiple(self.generator), what="pix2pix crop")
        if self.shape_a[:2] != self.shape_b[:2]:
            raise ValueError(f"pix2pix needs inputs and targets of one size, got {self.shape_a} and {self.shape_b}.")
        if self.l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0 (paper: 100), got {self.l1_weight}.")
        _check_objective(self.objective)

    def _init(self, rng: jax.Array) -> TranslationState:
        k_g, k_d, train_key = jax.random.split(rng, 3)
        a = jnp.zeros((1, *self.shape_a), jnp.float32)
        ab = jnp.zeros((1, *self.shape_a[:2], self.shape_a[2] + self.shape_b[2]), jnp.float32)
        g_params = {"g": self.generator.init(k_g, a)["params"]}
        d_params = {"d": self.discriminator.init(k_d, ab)["params"]}
        return TranslationState(
            step=jnp.zeros((), jnp.int32),
            rng=train_key,
            g=NetState(params=g_params, batch_stats={}, opt_state=self.g_tx.init(g_params)),
            d=NetState(params=d_params, batch_stats={}, opt_state=self.d_tx.init(d_params)),
        )

    def generate(self, g_params: Params, a: jax.Array, keys: jax.Array) -> jax.Array:
        """G(a) in training mode, example i with dropout key keys[i]."""

        def one(x, k):
            return self.generator.apply({"params": g_params["g"]}, x[None], train=True, rngs={"dropout": k})[0]

        return jax.vmap(one)(a, keys)

    def _d(self, d_params: Params, a: jax.Array, b: jax.Array) -> jax.Array:
        return self.discriminator.apply({"params": d_params["d"]}, jnp.concatenate([a, b], axis=-1))

    def discriminator_loss(self, d_params: Params, a: jax.Array, b: jax.Array, fake: jax.Array) -> jax.Array:
        """D(a, b) against D(a, G(a)): the conditional D's loss."""
        return self.objective.d(self._d(d_params, a, b), self._d(d_params, a, fake))

    def generator_losses(
        self, g_params: Params, d_params: Params, a: jax.Array, b: jax.Array, keys: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """G's total loss, adversarial + l1_weight * L1, and its two parts."""
        out = self.generate(g_params, a, keys)
        adv, l1 = self.objective.g(self._d(d_params, a, out)), l1_loss(out, b)
        return adv + self.l1_weight * l1, (adv, l1)

    def _updates(
        self, state: TranslationState, a: jax.Array, b: jax.Array, key: jax.Array
    ) -> tuple[TranslationState, Metrics]:
        keys = example_keys(key, global_example_indices(a.shape[0], DATA_AXIS))
        fake = jax.lax.stop_gradient(self.generate(state.g.params, a, keys))
        d, (d_loss, _), _ = update_net(state.d, self.d_tx, lambda p: (self.discriminator_loss(p, a, b, fake), None))
        g, (g_loss, (g_adv, l1)), _ = update_net(
            state.g, self.g_tx, lambda p: self.generator_losses(p, d.params, a, b, keys)
        )
        return state.replace(g=g, d=d), {"g_loss": g_loss, "g_adv": g_adv, "l1": l1, "d_loss": d_loss}

    def translate(self, g_params: Params, x: jax.Array, direction: str = "AtoB") -> jax.Array:
        """G(x) in inference mode (dropout off, so a translation is deterministic)."""
        if direction != "AtoB":
            raise ValueError(f"pix2pix has one generator (AtoB); got direction={direction!r}.")
        return self.generator.apply({"params": g_params["g"]}, x)


TranslationStep = CycleGANStep | Pix2PixStep
# Batch leaves are [B, H, W, C], sharded on B (the GAN step's are [n_critic, B, ...]).
BATCH_SPEC = P(DATA_AXIS)


def translation_batch(local_batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows ([B_local, ...] numpy) as global arrays sharded on B."""
    return parallel.global_batch(local_batch, mesh, BATCH_SPEC)


def shard_map_translation_step(
    step: TranslationStep, mesh: Mesh, *, compiler_options: Mapping[str, Any] | str | None = "auto"
) -> Callable:
    """`jaxgan.train.shard_map_step` with the translation batch layout (`BATCH_SPEC`).

    The step under `jax.shard_map` + `jax.jit` over `mesh`, compiled once, state
    replicated and donated, the same per-backend compiler options as the GAN step.
    Takes this process's rows of the batch as numpy (checked before compilation)
    or global arrays; returns the new state and scalar metrics.
    """
    return parallel.shard_map_step(step, mesh, batch_spec=BATCH_SPEC, compiler_options=compiler_options)
