"""The pure GAN train step: n_critic D updates, one G update and the EMA of G.

`make_train_step(...)` binds the networks, the Optax transformations, the loss,
the stabilizers (`Regularization`) and static options once and returns a
`GANStep`, a pure per-device function `(state, batch) -> (state, metrics)`. It
is written against ONE axis name (`jaxgan.common.DATA_AXIS`) and must run where
that axis is bound: under `jax.shard_map` over a 1-D mesh (any number of
devices, one included) or under `jax.pmap`; `jaxgan.train.parallel` provides
both wrappers. Inside, gradients, BatchNorm statistics and metrics are averaged
over the axis, so the state leaves the step identical on every device.

The n_critic D updates run inside the compiled step either as a `lax.scan`
(compile time flat in n_critic) or unrolled (XLA CPU runs the G update that
follows a scan of conv updates ~15x slower); `critic_loop="auto"` picks by
backend, and both give the same result.

Batch layout: `batch["image"]` is `[n_critic, B, *sample_shape]`, float32 in
the generator's range; D update j uses sub-batch j. Class-conditional models
also read `batch["label"]`, int32 `[n_critic, B]`. The batch is sharded on its
B axis. (With n_critic == 1, `[B, *sample_shape]` is also accepted.)

Randomness: the step's key is fold_in(state.rng, state.step). D update j uses
key_j = split(fold_in(step key, 0), n_critic)[j], the G update g = fold_in(step
key, 1). From an update key u: latents come from fold_in(u, 0), fake labels
from fold_in(u, 1), and per-example randomness (augmentation, instance noise,
penalty points) from fold_in(u, 3) (D; G: fold_in(u, 2)); the replay buffer
draws from fold_in(u, 2) (D) and MSGAN's second latents from fold_in(u, 3) (G).
Example i of the GLOBAL batch then folds in i. No key is used twice, and the
result does not depend on how many devices share the batch.

InfoGAN (Chen et al. 2016): when G has latent codes (`jaxgan.latent`), D's Q head
(`info_outputs`) predicts each fake's codes, read back from its z, and both D
(with Q) and G add info_weight times `regularizers.info_loss`; real images
carry no codes and take no part in it.

Several discriminators (GMAN, Durugkar et al. 2017): with num_discriminators
K > 1, `state.d` holds K stacked networks (leading axis K on every leaf, own
params, BatchNorm stats and optimizer state), all updated on the same batch by
a `jax.vmap` of the single-D update; G's loss aggregates the K losses.

This module imports no I/O: no TensorFlow, TFDS, Orbax or CLU.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import augment, latent, regularizers
from jaxgan.common import DATA_AXIS, Metrics, Params, tree_l2_norm
from jaxgan.losses import AdversarialLoss
from jaxgan.state import GANTrainState, NetState, create_train_state, latent_dim_of, num_classes_of

EmaDecay = float | Callable[[jax.Array], jax.Array]

CRITIC_LOOPS = ("auto", "scan", "unroll")


def resolve_critic_loop(critic_loop: str) -> str:
    """"scan" or "unroll" for the n_critic D updates; "auto" picks by backend.

    Both run inside the one compiled step and give the same result. On XLA CPU a
    G update that follows a `lax.scan` over conv D updates ran ~15x slower
    (DCGAN 32x32, batch 64, 2 cores: 6.4 s vs 0.4 s per step; measured
    2026-11-23, jax 0.10.2), so "auto" unrolls on CPU and scans elsewhere, where
    the loop keeps compile time flat in n_critic.
    """
    if critic_loop not in CRITIC_LOOPS:
        raise ValueError(f"critic_loop must be one of {CRITIC_LOOPS}, got {critic_loop!r}.")
    if critic_loop == "auto":
        return "unroll" if jax.default_backend() == "cpu" else "scan"
    return critic_loop


@dataclasses.dataclass(frozen=True)
class Regularization:
    """Stabilizers and mode-collapse remedies; every one off by default.

    Weights multiply unweighted penalties from `jaxgan.regularizers` (see each
    function for its paper). All state they need (LeCam anchors, the replay
    buffer, historical averages) lives in `GANTrainState.extras`.
    """

    gradient_penalty: float = 0.0  # WGAN-GP lambda (Gulrajani et al. 2017: 10)
    gradient_penalty_one_sided: bool = False  # max(0, ||g|| - 1)^2 (Petzka et al. 2018)
    dragan: float = 0.0  # DRAGAN lambda (Kodali et al. 2017: 10)
    dragan_c: float = 0.5  # DRAGAN perturbation scale, in data stds
    r1_gamma: float = 0.0  # R1: adds gamma/2 E||grad D(x)||^2 on reals (Mescheder et al. 2018)
    r1_every: int = 1  # lazy R1: a separate D update every k steps, weight times k (StyleGAN2: 16)
    r2_gamma: float = 0.0  # R2: the same on fakes
    weight_clip: float = 0.0  # WGAN weight clipping bound c after each D update (Arjovsky et al. 2017: 0.01)
    lecam: float = 0.0  # LeCam lambda (Tseng et al. 2021)
    lecam_decay: float = 0.99
    bcr_real: float = 0.0  # balanced consistency regularization weights (Zhao et al. 2020: 10, 10)
    bcr_fake: float = 0.0
    bcr_policy: str = "translation"  # the augmentation T of bCR (DiffAugment ops)
    diff_augment: str = ""  # DiffAugment policy for every D input, e.g. "color,translation,cutout"
    instance_noise: float = 0.0  # initial sigma of instance noise on D's inputs (0 = off)
    instance_noise_anneal_steps: int = 1  # sigma decays linearly to 0 over these steps
    feature_matching: float = 0.0  # weight of feature matching in G's loss (Salimans et al. 2016)
    g_adversarial_weight: float = 1.0  # weight of the adversarial G loss (0 with feature matching = pure FM)
    mode_seeking: float = 0.0  # MSGAN lambda (Mao et al. 2019: 1)
    historical_averaging: float = 0.0  # lambda of ||theta - running mean||^2, G and D (Salimans et al. 2016)
    replay_capacity: int = 0  # replay buffer of past fakes for D (0 = off; CycleGAN: 50)
    acgan_weight: float = 1.0  # class cross-entropy weight when D has an auxiliary classifier
    info_weight: float = 1.0  # InfoGAN's lambda on the codes' loss when G has latent codes (Chen et al. 2016: 1)
    # Top-k G updates (Sinha et al. 2020): G's adversarial loss over the k fakes D scores best, k starting at the
    # batch and shrinking by top_k_decay every top_k_decay_steps steps (their epoch; gamma 0.99) to
    # top_k_fraction of it (their nu: 0.5). 1 = every fake (off).
    top_k_fraction: float = 1.0
    top_k_decay: float = 0.99
    top_k_decay_steps: int = 1000

    def validate(self, *, loss: AdversarialLoss, pack: int, sample_ndim: int) -> None:
        """Raises ValueError naming conflicting or out-of-range options."""
        for name in ("gradient_penalty", "dragan", "dragan_c", "r1_gamma", "r2_gamma", "weight_clip", "lecam",
                     "bcr_real", "bcr_fake", "instance_noise", "feature_matching", "g_adversarial_weight",
                     "mode_seeking", "historical_averaging", "acgan_weight", "info_weight"):
            if not float(getattr(self, name)) >= 0.0:
                raise ValueError(f"regularization.{name} must be >= 0, got {getattr(self, name)!r}.")
        for name in ("top_k_fraction", "top_k_decay"):
            if not 0.0 < float(getattr(self, name)) <= 1.0:
                raise ValueError(f"regularization.{name} must lie in (0, 1] (Sinha et al.: fraction 0.5, decay "
                                 f"0.99; fraction 1 turns top-k off), got {getattr(self, name)!r}.")
        for name in ("r1_every", "instance_noise_anneal_steps", "top_k_decay_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"regularization.{name} must be an int >= 1, got {getattr(self, name)!r}.")
        if not isinstance(self.replay_capacity, int) or self.replay_capacity < 0:
            raise ValueError(f"regularization.replay_capacity must be an int >= 0, got {self.replay_capacity!r}.")
        if not 0.0 <= self.lecam_decay <= 1.0:
            raise ValueError(f"regularization.lecam_decay must lie in [0, 1], got {self.lecam_decay!r}.")
        if self.weight_clip and loss.name != "wasserstein":
            raise ValueError(
                f"Weight clipping enforces the Lipschitz constraint of the WGAN critic; it does not go with "
                f"loss {loss.name!r}. Use loss='wasserstein', or drop weight_clip.")
        if pack > 1 and (self.gradient_penalty or self.dragan or self.bcr_real or self.bcr_fake):
            raise ValueError(
                f"A packed D (pack={pack}) gives one logit per {pack} samples, so WGAN-GP's and DRAGAN's "
                "per-sample interpolates and bCR's per-sample consistency are undefined; use pack=1, drop the "
                "penalty, or use R1 / R2 (taken per packed tuple).")
        policies = {"diff_augment": self.diff_augment}
        if self.bcr_real or self.bcr_fake:
            policies["bcr_policy"] = self.bcr_policy
        for name, policy in policies.items():
            if augment.parse_policy(policy) and sample_ndim != 3:
                raise ValueError(f"regularization.{name}={policy!r} augments images [H, W, C]; the samples "
                                 f"have {sample_ndim} dims. Drop it for non-image data.")
        if self.g_adversarial_weight == 0 and not (self.feature_matching or self.mode_seeking):
            raise ValueError("g_adversarial_weight=0 leaves G without a loss; add feature_matching.")

    @property
    def r1_lazy(self) -> bool:
        return bool(self.r1_gamma) and self.r1_every > 1


def sample_latents(key: jax.Array, example_indices: jax.Array, latent_dim: int) -> jax.Array:
    """z ~ N(0, I) per example, keyed by the example's index in the global batch."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (latent_dim,)))(example_indices)


FAKE_LABELS = ("uniform", "real")  # how a conditional G's class ids are drawn (GANStep._fake_labels)


def sample_labels(key: jax.Array, example_indices: jax.Array, num_classes: int) -> jax.Array:
    """Uniform class ids for G's samples, keyed by the global example index."""
    return jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0, num_classes))(
        example_indices).astype(jnp.int32)


def example_keys(key: jax.Array, example_indices: jax.Array) -> jax.Array:
    """One key per example of the global batch: fold_in(key, i)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(example_indices)


def fold_each(keys: jax.Array, data: int) -> jax.Array:
    """fold_in(key, data) for each of a batch of keys: the next level of per-example keys."""
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def per_example(fn: Callable[[jax.Array, jax.Array], jax.Array], keys: jax.Array, x: jax.Array) -> jax.Array:
    """Applies a batched random op `fn(key, x[B, ...])` to each example with its own key."""
    return jax.vmap(lambda k, xi: fn(k, xi[None])[0])(keys, x)


def global_example_indices(local_batch_size: int, axis_name: str) -> jax.Array:
    """Indices in the global batch of this device's examples (contiguous shards)."""
    return jax.lax.axis_index(axis_name) * local_batch_size + jnp.arange(local_batch_size)


def ema_update(ema_params: Params, params: Params, decay: jax.Array | float) -> Params:
    """ema <- decay * ema + (1 - decay) * params, leaf by leaf."""
    return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def ema_decay_with_warmup(decay: float) -> Callable[[jax.Array], jax.Array]:
    """min(decay, (1 + step) / (10 + step)): the EMA follows G closely early on,
    so it does not average in the random init (the `num_updates` rule of
    tf.train.ExponentialMovingAverage)."""
    return lambda step: jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_decay_from_half_life(*, half_life_images: float, batch_size: int,
                             rampup: float | None = None) -> Callable[[jax.Array], jax.Array]:
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


def apply_gradients(net: NetState, grads: Params, tx: optax.GradientTransformation, batch_stats: Params) -> NetState:
    """One Optax update of a network; the single place both D and G updates go through."""
    updates, opt_state = tx.update(grads, net.opt_state, net.params)
    return NetState(params=optax.apply_updates(net.params, updates), batch_stats=batch_stats, opt_state=opt_state)


def as_varying(tree: Any, axis_name: str) -> Any:
    """`tree` (the params to differentiate) marked device-varying over `axis_name`.

    Under shard_map, the gradient of a per-device loss with respect to a
    replicated (invariant) value is implicitly summed over devices. Marking the
    params device-varying first gives each device its LOCAL gradient, which the
    caller then averages explicitly with pmean: the same code is then correct
    under shard_map and pmap alike.
    """
    return jax.lax.pcast(tree, axis_name, to="varying")


def _call_args(x: jax.Array, labels: jax.Array | None) -> tuple[jax.Array, ...]:
    return (x,) if labels is None else (x, labels)


def _apply(module: nn.Module, params: Params, batch_stats: Params, x: jax.Array,
           labels: jax.Array | None = None) -> tuple[jax.Array, Params]:
    """Training-mode forward pass returning the output and the new BatchNorm stats."""
    if not batch_stats:
        return module.apply({"params": params}, *_call_args(x, labels), train=True), batch_stats
    out, mutated = module.apply({"params": params, "batch_stats": batch_stats}, *_call_args(x, labels),
                                train=True, mutable=["batch_stats"])
    return out, mutated["batch_stats"]


class DOutput(NamedTuple):
    """D's logits and the intermediates the losses read (None when not captured)."""

    logits: jax.Array
    features: jax.Array | None = None
    class_logits: jax.Array | None = None
    info_outputs: jax.Array | None = None


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels: ACGAN's class loss (Odena et al. 2017, eq. 2)."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _diff_augment(key: jax.Array, images: jax.Array, *, policy: str) -> jax.Array:
    return augment.diff_augment(key, images, policy)


@dataclasses.dataclass(frozen=True)
class GANStep:
    """A pure per-device GAN train step; see the module docstring."""

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    loss: AdversarialLoss
    n_critic: int
    ema_decay: EmaDecay
    sample_shape: tuple[int, ...]
    critic_loop: str = "auto"
    axis_name: str = DATA_AXIS
    regularization: Regularization = Regularization()
    num_discriminators: int = 1
    d_aggregation: str = "mean"
    d_temperature: float = 1.0
    fake_labels: str = "uniform"

    # --- static facts -----------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        return latent_dim_of(self.generator)

    @property
    def num_classes(self) -> int:
        return num_classes_of(self.generator)

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """The batch entries the step reads (the loop sends only these to the devices)."""
        return ("image", "label") if self.num_classes else ("image",)

    @property
    def pack(self) -> int:
        return int(getattr(self.discriminator, "pack", 1))

    @property
    def acgan(self) -> bool:
        return bool(getattr(self.discriminator, "aux_classifier", False))

    @property
    def latent_codes(self) -> latent.LatentCodes:
        """G's InfoGAN codes (Chen et al. 2016); empty for a plain latent."""
        return getattr(self.generator, "latent_codes", latent.LatentCodes())

    @property
    def _capture(self) -> bool:
        return self.acgan or bool(self.latent_codes) or bool(self.regularization.feature_matching)

    def _fake_labels(self, key: jax.Array, indices: jax.Array, real_labels: jax.Array | None) -> jax.Array | None:
        """G's class ids: uniform, or (fake_labels="real") the real batch's, so that they follow the data's
        class frequencies (unbalanced classes, k-means clusters; as Liu et al. 2020's self-conditioned GAN)."""
        if not self.num_classes:
            return None
        if self.fake_labels == "real":
            return real_labels
        return sample_labels(key, indices, self.num_classes)

    def _info_loss(self, q: jax.Array, z: jax.Array) -> jax.Array:
        """InfoGAN's loss on Q's outputs for the codes G read from `z` (`regularizers.info_loss`)."""
        categorical, continuous = latent.codes_from_latent(z, self.latent_codes)
        return regularizers.info_loss(q, categorical, continuous, self.latent_codes.categorical)

    # --- state -----------------------------------------------------------------------------------

    def init_state(self, rng: jax.Array | int, example_images: Any) -> GANTrainState:
        """The initial state for this step: networks, optimizers, EMA and every extra
        the enabled stabilizers keep (`extras`)."""
        state = create_train_state(rng, generator=self.generator, discriminator=self.discriminator,
                                   example_images=example_images, g_tx=self.g_tx, d_tx=self.d_tx,
                                   num_discriminators=self.num_discriminators)
        return state.replace(extras=self.init_extras(state))

    def init_extras(self, state: GANTrainState) -> dict[str, Any]:
        reg, extras = self.regularization, {}
        if reg.lecam:
            anchors = regularizers.lecam_init()
            if self.num_discriminators > 1:
                anchors = jax.tree_util.tree_map(lambda a: jnp.zeros((self.num_discriminators,), a.dtype), anchors)
            extras["lecam"] = anchors
        if reg.replay_capacity:
            extras["replay"] = regularizers.replay_buffer_init(reg.replay_capacity, self.sample_shape)
        if reg.historical_averaging:
            extras["g_average"] = jax.tree_util.tree_map(jnp.copy, state.g.params)
            extras["d_average"] = jax.tree_util.tree_map(jnp.copy, state.d.params)
        return extras

    def _check_extras(self, state: GANTrainState) -> None:
        # The keys come from init_extras itself, evaluated abstractly (no arrays built).
        missing = set(jax.eval_shape(self.init_extras, state)) - set(state.extras)
        if missing:
            raise ValueError(f"The state lacks {sorted(missing)} that the enabled stabilizers keep; create it with "
                             "step.init_state(rng, example_images) instead of create_train_state.")

    # --- the step ----------------------------------------------------------------------------------

    def __call__(self, state: GANTrainState, batch: Mapping[str, jax.Array]) -> tuple[GANTrainState, Metrics]:
        self._check_extras(state)
        images = batch["image"]
        labels = batch.get("label") if self.num_classes else None
        if images.ndim == len(self.sample_shape) + 1:  # [B, ...] with n_critic == 1
            images = images[None]
            labels = None if labels is None else labels[None]
        indices = global_example_indices(images.shape[1], self.axis_name)
        step_key = jax.random.fold_in(state.rng, state.step)
        d_keys = jax.random.split(jax.random.fold_in(step_key, 0), self.n_critic)
        g_key = jax.random.fold_in(step_key, 1)

        (d, g_stats, extras), d_metrics = self._critic_updates(state, images, labels, d_keys, indices)
        d_metrics = {k: jnp.mean(v) for k, v in d_metrics.items()}  # mean over the n_critic updates
        if self.regularization.r1_lazy:
            d, r1_metrics = self._lazy_r1_update(d, state.step, images[-1], None if labels is None else labels[-1])
            d_metrics.update(r1_metrics)
        g = state.g.replace(batch_stats=g_stats)
        real_last = images[-1], None if labels is None else labels[-1]
        g, d, g_metrics = self._g_update(g, d, extras, g_key, indices, real_last, state.step)
        if self.regularization.historical_averaging:
            extras = dict(extras)
            extras["g_average"] = regularizers.historical_average_update(extras["g_average"], g.params, state.step + 1)
            extras["d_average"] = regularizers.historical_average_update(extras["d_average"], d.params, state.step + 1)
        decay = self.ema_decay(state.step) if callable(self.ema_decay) else self.ema_decay
        new_state = state.replace(
            step=state.step + 1,
            g=g,
            d=d,
            g_ema_params=ema_update(state.g_ema_params, g.params, decay),
            extras=extras,
        )
        metrics = dict(d_metrics)
        metrics.update(g_metrics)
        return new_state, metrics

    # --- D ------------------------------------------------------------------------------------------

    def _d_forward(self, params: Params, stats: Params, x: jax.Array, labels: jax.Array | None,
                   capture: bool) -> tuple[DOutput, Params]:
        """One training-mode pass of D with the intermediates the losses need."""
        variables = {"params": params, **({"batch_stats": stats} if stats else {})}
        mutable = (["batch_stats"] if stats else []) + (["intermediates"] if capture else [])
        if not mutable:
            return DOutput(self.discriminator.apply(variables, *_call_args(x, labels), train=True)), stats
        logits, mutated = self.discriminator.apply(variables, *_call_args(x, labels), train=True, mutable=mutable)
        inter = mutated.get("intermediates", {})
        get = lambda name: inter[name][-1] if name in inter else None
        return (DOutput(logits, get("features"), get("class_logits"), get("info_outputs")),
                mutated.get("batch_stats", stats))

    def _d_logit_fn(self, params: Params, stats: Params, labels: jax.Array | None) -> Callable[[jax.Array], jax.Array]:
        """x -> D's logits, for gradient penalties (statistics updates discarded)."""
        return lambda x: self._d_forward(params, stats, x, labels, capture=False)[0].logits

    def _penalized(self, params: Params, stats: Params, labels: jax.Array | None,
                   x: jax.Array) -> tuple[Callable[[jax.Array], jax.Array], jax.Array]:
        """(d_fn, samples) for R1 / R2: a packed D's sample is its tuple of `pack` inputs."""
        return regularizers.packed_samples(self._d_logit_fn(params, stats, labels), x, self.pack)

    def _d_inputs(self, x: jax.Array, keys: jax.Array, step: jax.Array) -> jax.Array:
        """What D sees of a batch: DiffAugment and instance noise, per example."""
        reg = self.regularization
        if augment.parse_policy(reg.diff_augment):
            x = per_example(functools.partial(_diff_augment, policy=reg.diff_augment),
                            fold_each(keys, 0), x)
        if reg.instance_noise:
            sigma = regularizers.instance_noise_sigma(step, initial_sigma=reg.instance_noise,
                                                      anneal_steps=reg.instance_noise_anneal_steps)
            x = per_example(lambda k, xi: regularizers.add_instance_noise(k, xi, sigma),
                            fold_each(keys, 1), x)
        return x

    def _critic_updates(self, state: GANTrainState, images: jax.Array, labels: jax.Array | None,
                        keys: jax.Array, indices: jax.Array):
        """The n_critic D updates, sub-batch j for update j; metrics stacked on a leading axis."""
        carry = (state.d, state.g.batch_stats, state.extras)
        update = lambda carry, xs: self._d_update(state.g.params, state.step, carry, xs, indices)
        label_xs = labels if labels is not None else jnp.zeros((self.n_critic,), jnp.int32)
        if resolve_critic_loop(self.critic_loop) == "scan":
            return jax.lax.scan(update, carry, (images, label_xs, keys))
        per_update = []
        for j in range(self.n_critic):
            carry, metrics = update(carry, (images[j], label_xs[j], keys[j]))
            per_update.append(metrics)
        return carry, jax.tree_util.tree_map(lambda *m: jnp.stack(m), *per_update)

    def _d_update(self, g_params: Params, step: jax.Array, carry, xs, indices):
        d, g_stats, extras = carry
        real, real_labels, key = xs
        real_labels = real_labels if self.num_classes else None
        latent_key, label_key, replay_key, example_key = (jax.random.fold_in(key, i) for i in range(4))
        z = sample_latents(latent_key, indices, self.latent_dim)
        fake_labels = self._fake_labels(label_key, indices, real_labels)
        fake, g_stats = _apply(self.generator, g_params, g_stats, z, fake_labels)
        fake = jax.lax.stop_gradient(fake)
        extras = dict(extras)
        if self.regularization.replay_capacity:  # unconditional only (make_train_step checks)
            fake, extras["replay"] = regularizers.replay_buffer_query(extras["replay"], fake, replay_key,
                                                                     axis_name=self.axis_name)
        keys = example_keys(example_key, indices)
        single = functools.partial(self._single_d_update, real=real, fake=fake, real_labels=real_labels,
                                   fake_labels=fake_labels, keys=keys, step=step, z=z)
        anchors, average = extras.get("lecam"), extras.get("d_average")
        if self.num_discriminators == 1:
            d, anchors, metrics = single(d, anchors, average)
        else:
            d, anchors, metrics = jax.vmap(single)(d, anchors, average)
            metrics = {k: jnp.mean(v) for k, v in metrics.items()}
        if anchors is not None:
            extras["lecam"] = anchors
        return (d, g_stats, extras), metrics

    def _single_d_update(self, d: NetState, anchors, average, *, real, fake, real_labels, fake_labels, keys, step,
                         z):
        reg = self.regularization
        d_keys = fold_each(keys, 0)
        penalty_keys = fold_each(keys, 1)
        real_in = self._d_inputs(real, fold_each(d_keys, 0), step)
        fake_in = self._d_inputs(fake, fold_each(d_keys, 1), step)

        def loss_fn(params):
            real_out, stats = self._d_forward(params, d.batch_stats, real_in, real_labels, self._capture)
            fake_out, stats = self._d_forward(params, stats, fake_in, fake_labels, self._capture)
            adversarial = jnp.mean(self.loss.d(real_out.logits, fake_out.logits, axis_name=self.axis_name))
            terms = {}
            if self.acgan:
                terms["d_class_loss"] = (self.regularization.acgan_weight,
                                         _cross_entropy(real_out.class_logits, real_labels)
                                         + _cross_entropy(fake_out.class_logits, fake_labels))
            if self.latent_codes:  # Q shares D's body and is trained on the fakes' codes (Chen et al. 2016)
                terms["d_info_loss"] = (reg.info_weight, self._info_loss(fake_out.info_outputs, z))
            if reg.gradient_penalty:
                x_hat = per_example(lambda k, x: regularizers.wgan_gp_interpolates(k, x[:, 0], x[:, 1]),
                                    fold_each(penalty_keys, 0),
                                    jnp.stack([real_in, fake_in], axis=1))
                terms["d_gradient_penalty"] = (reg.gradient_penalty, regularizers.unit_gradient_penalty(
                    self._d_logit_fn(params, stats, real_labels), x_hat, one_sided=reg.gradient_penalty_one_sided))
            if reg.dragan:
                scale = reg.dragan_c * regularizers.batch_std(real_in, self.axis_name)
                x_hat = per_example(lambda k, x: regularizers.dragan_perturb(k, x, scale),
                                    fold_each(penalty_keys, 1), real_in)
                terms["d_dragan"] = (reg.dragan, regularizers.unit_gradient_penalty(
                    self._d_logit_fn(params, stats, real_labels), x_hat))
            if reg.r1_gamma and not reg.r1_lazy:
                terms["d_r1"] = (reg.r1_gamma / 2, regularizers.r1_penalty(
                    *self._penalized(params, stats, real_labels, real_in)))
            if reg.r2_gamma:
                terms["d_r2"] = (reg.r2_gamma / 2, regularizers.r2_penalty(
                    *self._penalized(params, stats, fake_labels, fake_in)))
            if reg.lecam:
                terms["d_lecam"] = (reg.lecam, regularizers.lecam_penalty(real_out.logits, fake_out.logits, anchors))
            if reg.bcr_real or reg.bcr_fake:
                bcr = lambda x, ks: per_example(functools.partial(_diff_augment, policy=reg.bcr_policy), ks, x)
                real_aug = self._d_logit_fn(params, stats, real_labels)(
                    bcr(real_in, fold_each(penalty_keys, 2)))
                fake_aug = self._d_logit_fn(params, stats, fake_labels)(
                    bcr(fake_in, fold_each(penalty_keys, 3)))
                terms["d_bcr"] = (1.0, regularizers.bcr_penalty(real_out.logits, real_aug, fake_out.logits, fake_aug,
                                                                lambda_real=reg.bcr_real, lambda_fake=reg.bcr_fake))
            if reg.historical_averaging:
                terms["d_historical_average"] = (reg.historical_averaging,
                                                 regularizers.historical_average_penalty(params, average))
            total = adversarial + sum(w * v for w, v in terms.values())
            aux = (stats, real_out.logits, fake_out.logits, {k: v for k, (w, v) in terms.items()})
            return total, (adversarial, aux)

        (_, (adversarial, (stats, real_logits, fake_logits, terms))), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(as_varying(d.params, self.axis_name))
        grads = jax.lax.pmean(grads, self.axis_name)
        d = apply_gradients(d, grads, self.d_tx, stats)
        if reg.weight_clip:
            d = d.replace(params=regularizers.clip_weights(d.params, reg.weight_clip))
        if anchors is not None:
            anchors = regularizers.lecam_update(anchors, real_logits, fake_logits, decay=reg.lecam_decay,
                                                axis_name=self.axis_name)
        metrics = jax.lax.pmean({"d_loss": adversarial, "d_real_logit": jnp.mean(real_logits),
                                 "d_fake_logit": jnp.mean(fake_logits), **terms}, self.axis_name)
        metrics["d_grad_norm"] = tree_l2_norm(grads)
        return d, anchors, metrics

    def _lazy_r1_update(self, d: NetState, step: jax.Array, real: jax.Array, labels: jax.Array | None):
        """StyleGAN2's lazy R1: every r1_every steps, a separate D update on gamma/2 * k * R1 alone.

        The D optimizer should then use `jaxgan.optim.adam(..., lazy_every=k)`
        (Karras et al. 2020, arXiv:1912.04958, appendix B).
        """
        reg = self.regularization

        def r1_update(d: NetState) -> tuple[NetState, jax.Array]:
            def single(d):
                def loss_fn(params):
                    return regularizers.r1_penalty(*self._penalized(params, d.batch_stats, labels, real))
                r1, grads = jax.value_and_grad(loss_fn)(as_varying(d.params, self.axis_name))
                grads = jax.tree_util.tree_map(lambda g: g * (reg.r1_gamma / 2 * reg.r1_every), grads)
                grads = jax.lax.pmean(grads, self.axis_name)
                return apply_gradients(d, grads, self.d_tx, d.batch_stats), jax.lax.pmean(r1, self.axis_name)
            if self.num_discriminators == 1:
                return single(d)
            d, r1 = jax.vmap(single)(d)
            return d, jnp.mean(r1)

        skip = lambda d: (d, jnp.zeros((), jnp.float32))
        d, r1 = jax.lax.cond(step % reg.r1_every == 0, r1_update, skip, d)
        return d, {"d_r1_lazy": r1}  # 0 on the steps without the R1 update

    # --- G ------------------------------------------------------------------------------------------

    def _g_update(self, g: NetState, d: NetState, extras: Mapping[str, Any], key: jax.Array, indices: jax.Array,
                  real_last: tuple[jax.Array, jax.Array | None], step: jax.Array):
        reg = self.regularization
        latent_key, label_key, example_key, latent2_key = (jax.random.fold_in(key, i) for i in range(4))
        z = sample_latents(latent_key, indices, self.latent_dim)
        real, real_labels = real_last
        fake_labels = self._fake_labels(label_key, indices, real_labels)
        keys = example_keys(example_key, indices)
        needs_real = self.loss.g_needs_real or bool(reg.feature_matching)
        real_in = self._d_inputs(real, fold_each(keys, 0), step) if needs_real else None
        g_average = extras.get("g_average")
        top_k = None if reg.top_k_fraction == 1.0 else regularizers.top_k_fraction(
            step, min_fraction=reg.top_k_fraction, decay=reg.top_k_decay, decay_steps=reg.top_k_decay_steps)

        def d_on(params, stats, x, labels, capture):
            """D's outputs (stacked over K discriminators) and its new BatchNorm stats."""
            forward = lambda p, s: self._d_forward(p, s, x, labels, capture)
            if self.num_discriminators == 1:
                return forward(params, stats)
            return jax.vmap(forward)(params, stats)

        def loss_fn(g_params):
            fake, g_stats = _apply(self.generator, g_params, g.batch_stats, z, fake_labels)
            fake_in = self._d_inputs(fake, fold_each(keys, 1), step)
            fake_out, d_stats = d_on(d.params, d.batch_stats, fake_in, fake_labels, self._capture)
            real_out = None
            if needs_real:
                real_out, _ = d_on(d.params, d_stats, real_in, real_labels, self._capture)
                real_out = jax.tree_util.tree_map(jax.lax.stop_gradient, real_out)
            def g_adv(fake_logits, real_logits):
                per_example = self.loss.g(fake_logits, real_logits, axis_name=self.axis_name)
                if top_k is None:
                    return jnp.mean(per_example)
                return regularizers.top_k_mean(per_example, fake_logits, top_k, axis_name=self.axis_name)

            if self.num_discriminators == 1:
                adversarial = g_adv(fake_out.logits, None if real_out is None else real_out.logits)
            else:
                per_d = jax.vmap(g_adv)(fake_out.logits, None if real_out is None else real_out.logits)
                adversarial = regularizers.aggregate_losses(per_d, mode=self.d_aggregation,
                                                            temperature=self.d_temperature)
            terms = {}
            if self.acgan:
                class_logits = fake_out.class_logits
                ce = (_cross_entropy(class_logits, fake_labels) if self.num_discriminators == 1 else
                      jnp.mean(jax.vmap(lambda c: _cross_entropy(c, fake_labels))(class_logits)))
                terms["g_class_loss"] = (reg.acgan_weight, ce)
            if self.latent_codes:
                q = fake_out.info_outputs
                info = (self._info_loss(q, z) if self.num_discriminators == 1 else
                        jnp.mean(jax.vmap(lambda qk: self._info_loss(qk, z))(q)))
                terms["g_info_loss"] = (reg.info_weight, info)
            if reg.feature_matching:
                fm = lambda r, f: regularizers.feature_matching_loss(r, f, axis_name=self.axis_name)
                value = (fm(real_out.features, fake_out.features) if self.num_discriminators == 1 else
                         jnp.mean(jax.vmap(fm)(real_out.features, fake_out.features)))
                terms["g_feature_matching"] = (reg.feature_matching, value)
            if reg.mode_seeking:
                z2 = sample_latents(latent2_key, indices, self.latent_dim)
                fake2, g_stats = _apply(self.generator, g_params, g_stats, z2, fake_labels)
                terms["g_mode_seeking"] = (reg.mode_seeking, regularizers.mode_seeking_loss(
                    fake, fake2, z, z2, axis_name=self.axis_name))
            if reg.historical_averaging:
                terms["g_historical_average"] = (reg.historical_averaging,
                                                 regularizers.historical_average_penalty(g_params, g_average))
            total = reg.g_adversarial_weight * adversarial + sum(w * v for w, v in terms.values())
            return total, (adversarial, g_stats, d_stats, {k: v for k, (w, v) in terms.items()})

        (_, (adversarial, g_stats, d_stats, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            as_varying(g.params, self.axis_name))
        grads = jax.lax.pmean(grads, self.axis_name)
        g = apply_gradients(g, grads, self.g_tx, g_stats)
        d = d.replace(batch_stats=d_stats)
        metrics = jax.lax.pmean({"g_loss": adversarial, **terms}, self.axis_name)
        metrics["g_grad_norm"] = tree_l2_norm(grads)
        if top_k is not None:
            metrics["g_top_k_fraction"] = top_k
        return g, d, metrics

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        """Fails with a message naming the value and the fix, before any compilation."""
        check_batch(batch, sample_shape=self.sample_shape, n_critic=self.n_critic, num_devices=num_devices,
                    num_classes=self.num_classes, pack=self.pack)


def check_batch(batch: Mapping[str, Any], *, sample_shape: tuple[int, ...], n_critic: int, num_devices: int,
                num_classes: int = 0, pack: int = 1) -> None:
    """Validates a GLOBAL batch's layout, dtype and divisibility (see module docstring)."""
    if "image" not in batch:
        raise ValueError(f"The batch needs an 'image' entry; it has {sorted(batch)}.")
    images = batch["image"]
    shape, dtype = tuple(images.shape), np.dtype(images.dtype)
    expected = f"[n_critic={n_critic}, B, {', '.join(map(str, sample_shape))}]"
    if len(shape) == len(sample_shape) + 1 and n_critic == 1:
        shape = (1, *shape)
    if len(shape) != len(sample_shape) + 2 or shape[2:] != tuple(sample_shape) or shape[0] != n_critic:
        raise ValueError(
            f"batch['image'] has shape {tuple(images.shape)}, expected {expected}: one sub-batch per D "
            f"update, each sample shaped like the generator's output {tuple(sample_shape)}. Resize the data "
            "to the configured image size/channels, or reshape with images.reshape(n_critic, B, ...)."
        )
    if dtype != np.float32:
        raise ValueError(
            f"batch['image'] has dtype {dtype}, expected float32 in the generator's range [-1, 1]; "
            "convert uint8 images with jaxgan.common.to_model_range."
        )
    if shape[1] % num_devices:
        raise ValueError(
            f"The per-update batch size {shape[1]} is not divisible by the device count {num_devices}; "
            f"use a batch size that is a multiple of {num_devices}."
        )
    if (shape[1] // num_devices) % pack:
        raise ValueError(
            f"The per-device batch {shape[1] // num_devices} is not divisible by D's pack={pack} (PacGAN packs "
            f"consecutive samples on each device); use a batch size that is a multiple of {num_devices * pack}."
        )
    if num_classes:
        if "label" not in batch:
            raise ValueError(
                f"The generator is class-conditional (num_classes={num_classes}) but the batch has no 'label' "
                "entry; use a labeled dataset, or an unconditional model (num_classes=0).")
        labels = batch["label"]
        label_shape = tuple(labels.shape)
        if len(label_shape) == 1 and n_critic == 1:
            label_shape = (1, *label_shape)
        if label_shape != shape[:2] or not np.issubdtype(np.dtype(labels.dtype), np.integer):
            raise ValueError(
                f"batch['label'] has {np.dtype(labels.dtype)} shape {tuple(labels.shape)}; expected integer class "
                f"ids of shape {list(shape[:2])}, one per image.")


def make_train_step(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    loss: AdversarialLoss,
    n_critic: int = 1,
    ema_decay: EmaDecay = 0.999,
    critic_loop: str = "auto",
    axis_name: str = DATA_AXIS,
    regularization: Regularization = Regularization(),
    num_discriminators: int = 1,
    d_aggregation: str = "mean",
    d_temperature: float = 1.0,
    fake_labels: str = "uniform",
) -> GANStep:
    """Builds the pure per-device train step; wrap it with `jaxgan.train.parallel`.

    Args:
      generator, discriminator: Flax modules as in `create_train_state`.
      g_tx, d_tx: the same Optax transformations the state was created with.
      loss: an `AdversarialLoss` (see `jaxgan.losses.get_loss`).
      n_critic: D updates per G update (WGAN's n_critic; Arjovsky et al. 2017), >= 1.
      ema_decay: the EMA decay of G's params, a float or a function of the step.
      critic_loop: "scan", "unroll" or "auto" (see `resolve_critic_loop`).
      axis_name: the data-parallel axis; keep the default.
      regularization: the stabilizers (`Regularization`), all off by default.
      num_discriminators: K >= 1 discriminators (GMAN, Durugkar et al. 2017).
      d_aggregation, d_temperature: how G's K losses combine ("mean", "max",
        "softmax"; see `jaxgan.regularizers.aggregate_losses`).
      fake_labels: a conditional G's class ids, "uniform" or "real" (those of the real batch the
        update reads, so they follow the data's class frequencies; for unbalanced classes and
        k-means cluster labels, as the self-conditioned GAN of Liu et al. 2020, arXiv:2006.10728).
    """
    if not isinstance(n_critic, (int, np.integer)) or isinstance(n_critic, bool) or n_critic < 1:
        raise ValueError(f"n_critic must be an int >= 1 (D updates per G update), got {n_critic!r}.")
    if not callable(ema_decay) and not 0.0 <= float(ema_decay) <= 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1], got {ema_decay!r}.")
    resolve_critic_loop(critic_loop)
    if not isinstance(loss, AdversarialLoss):
        raise TypeError(f"loss must be an AdversarialLoss (jaxgan.losses.get_loss(name)), got {type(loss).__name__}.")
    if not isinstance(num_discriminators, int) or num_discriminators < 1:
        raise ValueError(f"num_discriminators must be an int >= 1, got {num_discriminators!r}.")
    if d_aggregation not in regularizers.AGGREGATIONS:
        raise ValueError(f"d_aggregation={d_aggregation!r} is unknown; valid: {regularizers.AGGREGATIONS}.")
    if not d_temperature > 0:
        raise ValueError(f"d_temperature must be > 0, got {d_temperature!r}.")
    if fake_labels not in FAKE_LABELS:
        raise ValueError(f"fake_labels={fake_labels!r} is unknown; valid: {FAKE_LABELS}.")
    g_classes = num_classes_of(generator)
    d_classes = int(getattr(discriminator, "num_classes", 0))
    if g_classes != d_classes:
        raise ValueError(
            f"The generator has num_classes={g_classes} but the discriminator {d_classes}; a conditional GAN needs "
            "both conditional on the same classes (or both unconditional).")
    if regularization.replay_capacity and g_classes:
        raise ValueError("The replay buffer stores past fakes without their class labels, so it cannot feed a "
                         "conditional D; use replay_capacity=0 with num_classes > 0.")
    latent_dim = latent_dim_of(generator)
    check_latent_codes(generator, discriminator, regularization)
    z = jax.ShapeDtypeStruct((1, latent_dim), jnp.float32)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if g_classes else None
    out = jax.eval_shape(
        lambda z, y: generator.init_with_output(jax.random.PRNGKey(0), *_call_args(z, y), train=False)[0], z, y)
    pack = int(getattr(discriminator, "pack", 1))
    regularization.validate(loss=loss, pack=pack, sample_ndim=len(out.shape) - 1)
    return GANStep(
        generator=generator,
        discriminator=discriminator,
        g_tx=g_tx,
        d_tx=d_tx,
        loss=loss,
        n_critic=int(n_critic),
        ema_decay=ema_decay,
        sample_shape=tuple(out.shape[1:]),
        critic_loop=critic_loop,
        axis_name=axis_name,
        regularization=regularization,
        num_discriminators=num_discriminators,
        d_aggregation=d_aggregation,
        d_temperature=float(d_temperature),
        fake_labels=fake_labels,
    )


def check_latent_codes(generator: nn.Module, discriminator: nn.Module, regularization: Regularization) -> None:
    """G's InfoGAN codes and D's Q head must match (Q predicts every code of each sample)."""
    codes = getattr(generator, "latent_codes", latent.LatentCodes())
    q_outputs = int(getattr(discriminator, "info_outputs", 0))
    if codes.q_outputs != q_outputs:
        want = (f"info_outputs={codes.q_outputs} (the codes' LatentCodes.q_outputs)" if codes else
                "info_outputs=0 (G has no latent codes)")
        raise ValueError(
            f"G's InfoGAN codes {tuple(codes)} need a D whose Q head has {want}; the D has info_outputs={q_outputs}. "
            "Build both from the same codes (config.model.info_categorical / info_continuous).")
    if codes and regularization.replay_capacity:
        raise ValueError("The replay buffer stores past fakes without their InfoGAN codes, so Q could not be "
                         "trained on them; use replay_capacity=0 with latent codes.")


def resolve_step_loop(step_loop: str) -> str:
    """"scan" or "unroll" for K train steps in one call (`multi_step`); "auto" picks by backend.

    Both give the result of K single steps. On XLA CPU a `lax.scan` over whole
    conv train steps ran ~10x slower than the same steps unrolled (DCGAN 32x32,
    2 cores), so "auto" unrolls on CPU and scans on accelerators. A scan over
    MLP steps is fast on CPU too: ask for "scan" there (compile time stays flat in K).
    """
    return resolve_critic_loop(step_loop)


def multi_step(step: Callable[[GANTrainState, Mapping[str, jax.Array]], tuple[GANTrainState, Metrics]],
               num_steps: int, *, step_loop: str = "auto") -> Callable:
    """K = `num_steps` train steps in one pure call: `(state, batches) -> (state, metrics)`.

    Every batch leaf gains a leading K axis (`[K, n_critic, B, ...]`); step k
    reads `batches[k]`. Metrics come back stacked, `[K]` per name. The state
    after the call equals K single calls of `step` (same keys: each step folds
    its own `state.step`), so the option changes speed, never results. One call
    per K steps removes K-1 dispatches and host round trips: what pays for small
    models (the MLP GAN, 2-D mixtures) where the step is shorter than its launch.
    """
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps (steps per call) must be an int >= 1, got {num_steps!r}.")
    loop = resolve_step_loop(step_loop)
    num_steps = int(num_steps)

    def run(state: GANTrainState, batches: Mapping[str, jax.Array]) -> tuple[GANTrainState, Metrics]:
        if loop == "scan":
            return jax.lax.scan(step, state, batches)
        per_step = []
        for k in range(num_steps):
            state, metrics = step(state, {name: leaf[k] for name, leaf in batches.items()})
            per_step.append(metrics)
        return state, jax.tree_util.tree_map(lambda *m: jnp.stack(m), *per_step)

    return run
