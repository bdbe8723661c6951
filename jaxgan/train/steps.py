"""The pure GAN train step: n_critic D updates, one G update and the EMA of G.

`make_train_step(...)` binds the networks, the Optax transformations, the loss,
the stabilizers (`Regularization`) and static options once and returns a
`GANStep`, a pure per-device function `(state, batch) -> (state, metrics)`. It
is written against ONE axis name (`jaxgan.common.DATA_AXIS`) and must run where
that axis is bound: under `jax.shard_map` over a 1-D mesh (any number of
devices, one included) or under `jax.pmap`; `jaxgan.train.parallel` provides
both wrappers. Inside, gradients, BatchNorm statistics and metrics are averaged
over the axis, so the state leaves the step identical on every device.

Each loss is its adversarial part plus weighted terms (`jaxgan.train.terms`:
the penalties of `Regularization`, ACGAN's and InfoGAN's losses). The n_critic D
updates run inside the compiled step as a `lax.scan` or unrolled
(`critic_loop`, see `jaxgan.train.checks.resolve_critic_loop`); both give the same result.

Batch layout: `batch["image"]` is `[n_critic, B, *sample_shape]`, float32 in
the generator's range; D update j uses sub-batch j. Class-conditional models
also read `batch["label"]`, int32 `[n_critic, B]`. The batch is sharded on its
B axis. (With n_critic == 1, `[B, *sample_shape]` is also accepted.)

Randomness: every draw of a step comes from fold_in(state.rng, state.step),
through the named keys of `jaxgan.train.keys` (one per D update, one for the G
update; per example, the example's index in the GLOBAL batch), so no key is used
twice and the result does not depend on how many devices share the batch.

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
import optax

from jaxgan import ada, augment, latent, regularizers
from jaxgan.common import DATA_AXIS, Metrics, Params
from jaxgan.losses import AdversarialLoss
from jaxgan.state import GANTrainState, NetState, create_train_state, latent_dim_of, num_classes_of
from jaxgan.train import terms

# Re-exported: the step's pieces live in their own modules; these names stay importable from here.
from jaxgan.train.checks import (
    CRITIC_LOOPS,
    FAKE_LABELS,
    check_batch,
    check_latent_codes,  # noqa: F401
    check_step_options,
    resolve_critic_loop,
)
from jaxgan.train.ema import EmaDecay, ema_decay_from_half_life, ema_decay_with_warmup, ema_update  # noqa: F401
from jaxgan.train.keys import (
    CriticExampleKeys,
    CriticKeys,
    GeneratorExampleKeys,
    GeneratorKeys,  # noqa: F401
    InputKeys,
    PathLengthKeys,
    StepKeys,
    example_keys,
    fold_each,
    global_example_indices,
    per_example,
    sample_labels,
    sample_latents,
)
from jaxgan.train.kit import apply_gradients, as_varying, call_args, train_forward, update_net  # noqa: F401
from jaxgan.train.multi import multi_step, resolve_step_loop  # noqa: F401
from jaxgan.train.terms import DContext, DOutput, GContext, GeneratorPass, Regularization  # noqa: F401


class _DAux(NamedTuple):
    stats: Params
    real_logits: jax.Array
    fake_logits: jax.Array
    adversarial: jax.Array
    terms: dict[str, jax.Array]


class _GAux(NamedTuple):
    adversarial: jax.Array
    g_stats: Params
    d_stats: Params
    terms: dict[str, jax.Array]


def _last(labels: jax.Array | None) -> jax.Array | None:
    return None if labels is None else labels[-1]


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
    n_gen: int = 1

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

    @functools.cached_property
    def d_terms(self) -> tuple[terms.Term, ...]:
        """The terms of D's loss that this step's options turn on (`jaxgan.train.terms`)."""
        return terms.build_terms(terms.D_TERMS, self.regularization, self)

    @functools.cached_property
    def g_terms(self) -> tuple[terms.Term, ...]:
        """The terms of G's loss that this step's options turn on."""
        return terms.build_terms(terms.G_TERMS, self.regularization, self)

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

    # --- state -----------------------------------------------------------------------------------

    def init_state(self, rng: jax.Array | int, example_images: Any) -> GANTrainState:
        """The initial state for this step: networks, optimizers, EMA and every extra
        the enabled stabilizers keep (`extras`)."""
        state = create_train_state(
            rng,
            generator=self.generator,
            discriminator=self.discriminator,
            example_images=example_images,
            g_tx=self.g_tx,
            d_tx=self.d_tx,
            num_discriminators=self.num_discriminators,
        )
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
        if reg.path_length:
            extras["pl_mean"] = jnp.zeros((), jnp.float32)
        if reg.ada_pipeline:  # p and the running sum of E[sign(D(real))] over the steps since the last adjustment
            # Separate arrays: one array in two leaves would be donated twice by the compiled step.
            extras["ada"] = {
                "p": jnp.asarray(reg.ada_p, jnp.float32),
                "sign_sum": jnp.zeros((), jnp.float32),
                "steps": jnp.zeros((), jnp.float32),
            }
        return extras

    def _check_extras(self, state: GANTrainState) -> None:
        # The keys come from init_extras itself, evaluated abstractly (no arrays built).
        missing = set(jax.eval_shape(self.init_extras, state)) - set(state.extras)
        if missing:
            raise ValueError(
                f"The state lacks {sorted(missing)} that the enabled stabilizers keep; create it with "
                "step.init_state(rng, example_images) instead of create_train_state."
            )

    # --- the step ----------------------------------------------------------------------------------

    def __call__(self, state: GANTrainState, batch: Mapping[str, jax.Array]) -> tuple[GANTrainState, Metrics]:
        self._check_extras(state)
        images = batch["image"]
        labels = batch.get("label") if self.num_classes else None
        if images.ndim == len(self.sample_shape) + 1:  # [B, ...] with n_critic == 1
            images = images[None]
            labels = None if labels is None else labels[None]
        indices = global_example_indices(images.shape[1], self.axis_name)
        keys = StepKeys.of(state.rng, state.step, self.n_critic, self.n_gen)

        (d, g_stats, extras), d_metrics = self._critic_updates(state, images, labels, keys.critic, indices)
        d_metrics = {k: jnp.mean(v) for k, v in d_metrics.items()}  # mean over the n_critic updates
        if self.regularization.r1_lazy:
            r1_keys = example_keys(CriticKeys.of(keys.critic[-1]).r1, indices)
            d, r1_metrics = self._lazy_r1_update(d, state, images[-1], _last(labels), r1_keys)
            d_metrics.update(r1_metrics)
        if self.regularization.ada_pipeline:
            extras, ada_metrics = self._ada_adjust(extras, d_metrics, state.step, images.shape[1])
            d_metrics.update(ada_metrics)
        g = state.g.replace(batch_stats=g_stats)
        g_metrics = []
        for key in keys.generators:  # n_gen G updates, each with fresh latents
            g, d, metrics = self._g_update(g, d, extras, key, indices, (images[-1], _last(labels)), state.step)
            g_metrics.append(metrics)
        g_metrics = (
            g_metrics[0] if self.n_gen == 1 else jax.tree_util.tree_map(lambda *v: jnp.mean(jnp.stack(v)), *g_metrics)
        )
        if self.regularization.path_length:
            g, extras, pl_metrics = self._lazy_path_length_update(
                g, extras, state.step, keys.generator, images.shape[1]
            )
            g_metrics.update(pl_metrics)
        extras = self._update_averages(extras, g, d, state.step)
        decay = self.ema_decay(state.step) if callable(self.ema_decay) else self.ema_decay
        new_state = state.replace(
            step=state.step + 1,
            g=g,
            d=d,
            g_ema_params=ema_update(state.g_ema_params, g.params, decay),
            extras=extras,
        )
        return new_state, {**d_metrics, **g_metrics}

    def _update_averages(
        self, extras: Mapping[str, Any], g: NetState, d: NetState, step: jax.Array
    ) -> Mapping[str, Any]:
        """Historical averaging's running means of G's and D's params (Salimans et al. 2016), after the updates."""
        if not self.regularization.historical_averaging:
            return extras
        extras = dict(extras)
        extras["g_average"] = regularizers.historical_average_update(extras["g_average"], g.params, step + 1)
        extras["d_average"] = regularizers.historical_average_update(extras["d_average"], d.params, step + 1)
        return extras

    # --- D ------------------------------------------------------------------------------------------

    def _d_forward(
        self, params: Params, stats: Params, x: jax.Array, labels: jax.Array | None, capture: bool
    ) -> tuple[DOutput, Params]:
        """One training-mode pass of D with the intermediates the losses need."""
        variables = {"params": params, **({"batch_stats": stats} if stats else {})}
        mutable = (["batch_stats"] if stats else []) + (["intermediates"] if capture else [])
        if not mutable:
            return DOutput(self.discriminator.apply(variables, *call_args(x, labels), train=True)), stats
        logits, mutated = self.discriminator.apply(variables, *call_args(x, labels), train=True, mutable=mutable)
        inter = mutated.get("intermediates", {})
        get = lambda name: inter[name][-1] if name in inter else None
        return (
            DOutput(logits, get("features"), get("class_logits"), get("info_outputs")),
            mutated.get("batch_stats", stats),
        )

    def _d_logit_fn(self, params: Params, stats: Params, labels: jax.Array | None) -> Callable[[jax.Array], jax.Array]:
        """x -> D's logits, for gradient penalties (statistics updates discarded)."""
        return lambda x: self._d_forward(params, stats, x, labels, capture=False)[0].logits

    def _penalized(
        self, params: Params, stats: Params, labels: jax.Array | None, x: jax.Array
    ) -> tuple[Callable[[jax.Array], jax.Array], jax.Array]:
        """(d_fn, samples) for R1: a packed D's sample is its tuple of `pack` inputs."""
        return regularizers.packed_samples(self._d_logit_fn(params, stats, labels), x, self.pack)

    def _ada_p(self, extras: Mapping[str, Any]) -> jax.Array | None:
        return extras["ada"]["p"] if self.regularization.ada_pipeline else None

    def _ada(self, x: jax.Array, keys: InputKeys, p: jax.Array | None) -> jax.Array:
        """ADA's augmentations (Karras et al. 2020, arXiv:2006.06676; `jaxgan.ada`) with probability p, per example."""
        if p is None:
            return x
        pipe = self.regularization.ada_pipeline
        return per_example(lambda k, xi: ada.augment(k, xi, p, pipe), keys.ada, x)

    def _d_inputs(self, x: jax.Array, keys: jax.Array, step: jax.Array, ada_p: jax.Array | None = None) -> jax.Array:
        """What D sees of a batch: ADA's augmentations (p = `ada_p`), DiffAugment (Zhao et al. 2020) and instance
        noise (Sonderby et al. 2017), per example."""
        reg, keys = self.regularization, InputKeys.of(keys)
        x = self._ada(x, keys, ada_p)
        if augment.parse_policy(reg.diff_augment):
            x = per_example(functools.partial(augment.diff_augment, policy=reg.diff_augment), keys.diff_augment, x)
        if reg.instance_noise:
            sigma = regularizers.instance_noise_sigma(
                step, initial_sigma=reg.instance_noise, anneal_steps=reg.instance_noise_anneal_steps
            )
            x = per_example(lambda k, xi: regularizers.add_instance_noise(k, xi, sigma), keys.instance_noise, x)
        return x

    def _critic_updates(
        self, state: GANTrainState, images: jax.Array, labels: jax.Array | None, keys: jax.Array, indices: jax.Array
    ):
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
        """One D update (of each of K discriminators) on fresh fakes."""
        d, g_stats, extras = carry
        real, real_labels, key = xs
        real_labels = real_labels if self.num_classes else None
        keys = CriticKeys.of(key)
        z = sample_latents(keys.latents, indices, self.latent_dim)
        fake_labels = self._fake_labels(keys.labels, indices, real_labels)
        fake, g_stats = train_forward(self.generator, g_params, g_stats, z, fake_labels)
        fake = jax.lax.stop_gradient(fake)
        extras = dict(extras)
        if self.regularization.replay_capacity:  # unconditional only (make_train_step checks)
            fake, extras["replay"] = regularizers.replay_buffer_query(
                extras["replay"], fake, keys.replay, axis_name=self.axis_name
            )
        one_d = functools.partial(
            self._single_d_update,
            real=real,
            fake=fake,
            real_labels=real_labels,
            fake_labels=fake_labels,
            keys=CriticExampleKeys.of(keys.examples, indices),
            step=step,
            z=z,
            ada_p=self._ada_p(extras),
        )
        own = {name: extras[name] for name in ("lecam", "d_average") if name in extras}  # per discriminator
        if self.num_discriminators == 1:
            d, anchors, metrics = one_d(d, own)
        else:
            d, anchors, metrics = jax.vmap(one_d)(d, own)
            metrics = {k: jnp.mean(v) for k, v in metrics.items()}
        if anchors is not None:
            extras["lecam"] = anchors
        return (d, g_stats, extras), metrics

    def _single_d_update(
        self,
        d: NetState,
        extras: Mapping[str, Any],
        *,
        real,
        fake,
        real_labels,
        fake_labels,
        keys: CriticExampleKeys,
        step,
        z,
        ada_p,
    ):
        """One discriminator's update on its adversarial loss and terms; then weight clipping (WGAN, Arjovsky
        et al. 2017) and LeCam's anchors (Tseng et al. 2021)."""
        reg = self.regularization
        real_in = self._d_inputs(real, keys.real_inputs, step, ada_p)
        fake_in = self._d_inputs(fake, keys.fake_inputs, step, ada_p)

        def loss_fn(params):
            real_out, stats = self._d_forward(params, d.batch_stats, real_in, real_labels, self._capture)
            fake_out, stats = self._d_forward(params, stats, fake_in, fake_labels, self._capture)
            adversarial = jnp.mean(self.loss.d(real_out.logits, fake_out.logits, axis_name=self.axis_name))
            ctx = DContext(
                self,
                params,
                functools.partial(self._d_logit_fn, params, stats),
                real_in,
                fake_in,
                real_labels,
                fake_labels,
                real_out,
                fake_out,
                z,
                keys,
                extras,
            )
            values = terms.evaluate(self.d_terms, ctx)
            total = adversarial + terms.weighted_sum(self.d_terms, values)
            return total, _DAux(stats, real_out.logits, fake_out.logits, adversarial, values)

        d, (_, aux), grads = update_net(
            d, self.d_tx, loss_fn, axis_name=self.axis_name, batch_stats=lambda aux: aux.stats
        )
        if reg.weight_clip:
            d = d.replace(params=regularizers.clip_weights(d.params, reg.weight_clip))
        anchors = extras.get("lecam")
        if anchors is not None:
            anchors = regularizers.lecam_update(
                anchors, aux.real_logits, aux.fake_logits, decay=reg.lecam_decay, axis_name=self.axis_name
            )
        metrics = jax.lax.pmean(
            {
                "d_loss": aux.adversarial,
                "d_real_logit": jnp.mean(aux.real_logits),
                "d_fake_logit": jnp.mean(aux.fake_logits),
                **({"d_real_sign": jnp.mean(jnp.sign(aux.real_logits))} if reg.ada_pipeline else {}),
                **aux.terms,
            },
            self.axis_name,
        )
        metrics["d_grad_norm"] = optax.tree.norm(grads)
        return d, anchors, metrics

    def _lazy_r1_update(
        self, d: NetState, state: GANTrainState, real: jax.Array, labels: jax.Array | None, keys: jax.Array
    ):
        """StyleGAN2's lazy R1: every r1_every steps, a separate D update on gamma/2 * k * R1 alone.

        The D optimizer should then use `jaxgan.optim.adam(..., lazy_every=k)`
        (Karras et al. 2020, arXiv:1912.04958, appendix B). With ADA, D's view of the reals is augmented and
        R1 is the gradient with respect to the un-augmented reals, through the augmentation (as the
        reference's loss); `keys` are the per-example keys of that view.
        """
        reg, step = self.regularization, state.step
        ada_p = self._ada_p(state.extras)

        def one_d(d: NetState) -> tuple[NetState, jax.Array]:
            def loss_fn(params):
                d_fn, x = self._penalized(params, d.batch_stats, labels, real)
                if ada_p is not None:
                    inputs, plain = InputKeys.of(keys), d_fn
                    d_fn = lambda x: plain(self._ada(x, inputs, ada_p))
                return regularizers.r1_penalty(d_fn, x), None

            d, (r1, _), _ = update_net(
                d, self.d_tx, loss_fn, axis_name=self.axis_name, grad_scale=reg.r1_gamma / 2 * reg.r1_every
            )
            return d, jax.lax.pmean(r1, self.axis_name)

        def r1_update(d: NetState) -> tuple[NetState, jax.Array]:
            if self.num_discriminators == 1:
                return one_d(d)
            d, r1 = jax.vmap(one_d)(d)
            return d, jnp.mean(r1)

        skip = lambda d: (d, jnp.zeros((), jnp.float32))
        d, r1 = jax.lax.cond(step % reg.r1_every == 0, r1_update, skip, d)
        return d, {"d_r1_lazy": r1}  # 0 on the steps without the R1 update

    def _ada_adjust(
        self, extras: Mapping[str, Any], d_metrics: Mapping[str, jax.Array], step: jax.Array, local_batch: int
    ) -> tuple[Mapping[str, Any], Metrics]:
        """ADA's controller (Karras et al. 2020, arXiv:2006.06676, sec. 3): r_t = E[sign(D(real))] over the last
        ada_interval steps; then p <- max(0, p + sign(r_t - target) * N / (ada_kimg * 1000)), N the real images
        D saw in those steps (the reference's batch_size * ada_interval). ada_target = 0: p stays fixed."""
        reg, state = self.regularization, dict(extras["ada"])
        if not reg.ada_target:
            return extras, {"ada_p": state["p"]}
        state["sign_sum"] = state["sign_sum"] + d_metrics["d_real_sign"]  # this step's mean over its real images
        state["steps"] = state["steps"] + 1
        r_t = state["sign_sum"] / state["steps"]
        global_batch = local_batch * jax.lax.psum(1, self.axis_name)
        images = self.n_critic * global_batch * reg.ada_interval
        adjust = (step + 1) % reg.ada_interval == 0
        moved = jnp.maximum(state["p"] + jnp.sign(r_t - reg.ada_target) * images / (reg.ada_kimg * 1000.0), 0.0)
        zero = jnp.zeros((), jnp.float32)
        new = {
            "p": jnp.where(adjust, moved, state["p"]).astype(jnp.float32),
            "sign_sum": jnp.where(adjust, zero, state["sign_sum"]),
            "steps": jnp.where(adjust, zero, state["steps"]),
        }
        return {**extras, "ada": new}, {"ada_p": new["p"], "ada_rt": r_t}

    # --- G ------------------------------------------------------------------------------------------

    def _d_on(self, params: Params, stats: Params, x: jax.Array, labels: jax.Array | None) -> tuple[DOutput, Params]:
        """D's outputs (stacked over K discriminators) and its new BatchNorm stats."""
        forward = lambda p, s: self._d_forward(p, s, x, labels, self._capture)
        if self.num_discriminators == 1:
            return forward(params, stats)
        return jax.vmap(forward)(params, stats)

    def _g_adversarial(self, fake_out: DOutput, real_out: DOutput | None, top_k: jax.Array | None) -> jax.Array:
        """G's adversarial loss: over the top-k fakes when on (Sinha et al. 2020); K discriminators' losses
        aggregated (GMAN, Durugkar et al. 2017)."""

        def one_d(fake_logits, real_logits):
            per_example_loss = self.loss.g(fake_logits, real_logits, axis_name=self.axis_name)
            if top_k is None:
                return jnp.mean(per_example_loss)
            return regularizers.top_k_mean(per_example_loss, fake_logits, top_k, axis_name=self.axis_name)

        real_logits = None if real_out is None else real_out.logits
        if self.num_discriminators == 1:
            return one_d(fake_out.logits, real_logits)
        per_d = jax.vmap(one_d)(fake_out.logits, real_logits)
        return regularizers.aggregate_losses(per_d, mode=self.d_aggregation, temperature=self.d_temperature)

    def _g_update(
        self,
        g: NetState,
        d: NetState,
        extras: Mapping[str, Any],
        key: jax.Array,
        indices: jax.Array,
        real_last: tuple[jax.Array, jax.Array | None],
        step: jax.Array,
    ):
        """The G update against the updated D(s), on the last real sub-batch when the loss reads reals."""
        reg = self.regularization
        keys = GeneratorKeys.of(key)
        z = sample_latents(keys.latents, indices, self.latent_dim)
        real, real_labels = real_last
        fake_labels = self._fake_labels(keys.labels, indices, real_labels)
        inputs = GeneratorExampleKeys.of(keys.examples, indices)
        needs_real = self.loss.g_needs_real or bool(reg.feature_matching)
        ada_p = self._ada_p(extras)
        real_in = self._d_inputs(real, inputs.real_inputs, step, ada_p) if needs_real else None
        top_k = (
            None
            if reg.top_k_fraction == 1.0
            else regularizers.top_k_fraction(
                step, min_fraction=reg.top_k_fraction, decay=reg.top_k_decay, decay_steps=reg.top_k_decay_steps
            )
        )

        def loss_fn(g_params):
            generate = GeneratorPass(functools.partial(train_forward, self.generator, g_params), g.batch_stats)
            fake = generate(z, fake_labels)
            fake_out, d_stats = self._d_on(
                d.params, d.batch_stats, self._d_inputs(fake, inputs.fake_inputs, step, ada_p), fake_labels
            )
            real_out = None
            if needs_real:
                real_out = jax.tree_util.tree_map(
                    jax.lax.stop_gradient, self._d_on(d.params, d_stats, real_in, real_labels)[0]
                )
            adversarial = self._g_adversarial(fake_out, real_out, top_k)
            ctx = GContext(self, g_params, generate, fake, z, fake_labels, real_out, fake_out, keys, indices, extras)
            values = terms.evaluate(self.g_terms, ctx, self.num_discriminators)
            total = reg.g_adversarial_weight * adversarial + terms.weighted_sum(self.g_terms, values)
            return total, _GAux(adversarial, generate.stats, d_stats, values)

        g, (_, aux), grads = update_net(
            g, self.g_tx, loss_fn, axis_name=self.axis_name, batch_stats=lambda aux: aux.g_stats
        )
        d = d.replace(batch_stats=aux.d_stats)
        metrics = jax.lax.pmean({"g_loss": aux.adversarial, **aux.terms}, self.axis_name)
        metrics["g_grad_norm"] = optax.tree.norm(grads)
        if top_k is not None:
            metrics["g_top_k_fraction"] = top_k
        return g, d, metrics

    def _lazy_path_length_update(
        self, g: NetState, extras: Mapping[str, Any], step: jax.Array, key: jax.Array, local_batch: int
    ) -> tuple[NetState, Mapping[str, Any], Metrics]:
        """StyleGAN2's lazy path length regularization: every path_length_every steps, a separate G update on
        weight * k * E(||J_w^T y|| - a)^2 (Karras et al. 2020, sec. 3.2 and app. B; `regularizers.path_lengths`).

        It runs on local_batch / path_length_batch_shrink fresh latents per device, indexed 0 .. B/shrink - 1
        across the devices, so its draws do not depend on the device count; a (pl_mean) is in the state.
        """
        reg = self.regularization
        n = local_batch // reg.path_length_batch_shrink
        if n < 1 or local_batch % reg.path_length_batch_shrink:
            raise ValueError(
                f"regularization.path_length_batch_shrink={reg.path_length_batch_shrink} must divide the per-device "
                f"batch size {local_batch}; use 1 or 2, or a batch size that is a multiple of it per device."
            )
        keys = PathLengthKeys.of(GeneratorKeys.of(key).path_length)
        indices = global_example_indices(n, self.axis_name)
        z = sample_latents(keys.latents, indices, self.latent_dim)
        labels = sample_labels(keys.labels, indices, self.num_classes) if self.num_classes else None
        shape = self.sample_shape
        y = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(keys.noise, i), shape))(indices)
        y = y / jnp.sqrt(float(shape[0] * shape[1]))  # N(0, 1) / sqrt(H W), as the reference

        def update(args):
            g, pl_mean = args

            def loss_fn(params):
                variables = {"params": params, **({"batch_stats": g.batch_stats} if g.batch_stats else {})}
                gen = self.generator
                ws = gen.apply(variables, *call_args(z, labels), train=True, method=gen.styles)
                lengths = regularizers.path_lengths(
                    lambda ws: gen.apply(variables, ws, z, train=True, method=gen.synthesize), ws, y
                )
                penalty, new_mean = regularizers.path_length_penalty(
                    lengths, pl_mean, decay=reg.path_length_decay, axis_name=self.axis_name
                )
                return penalty, new_mean

            g, (penalty, new_mean), _ = update_net(
                g, self.g_tx, loss_fn, axis_name=self.axis_name, grad_scale=reg.path_length * reg.path_length_every
            )
            return g, new_mean, jax.lax.pmean(penalty, self.axis_name)

        skip = lambda args: (*args, jnp.zeros((), jnp.float32))
        g, pl_mean, penalty = jax.lax.cond(step % reg.path_length_every == 0, update, skip, (g, extras["pl_mean"]))
        return g, {**extras, "pl_mean": pl_mean}, {"g_path_length": penalty, "g_pl_mean": pl_mean}

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        """Fails with a message naming the value and the fix, before any compilation."""
        check_batch(
            batch,
            sample_shape=self.sample_shape,
            n_critic=self.n_critic,
            num_devices=num_devices,
            num_classes=self.num_classes,
            pack=self.pack,
        )


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
    n_gen: int = 1,
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
      n_gen: G updates per step, after the n_critic D updates, each with fresh latents (the other
        direction of n_critic: a D that is too strong for G); G's EMA is taken once per step.
    """
    check_step_options(
        generator=generator,
        discriminator=discriminator,
        loss=loss,
        n_critic=n_critic,
        ema_decay=ema_decay,
        critic_loop=critic_loop,
        num_discriminators=num_discriminators,
        d_aggregation=d_aggregation,
        d_temperature=d_temperature,
        fake_labels=fake_labels,
        regularization=regularization,
        n_gen=n_gen,
    )
    latent_dim = latent_dim_of(generator)
    check_latent_codes(generator, discriminator, regularization)
    z = jax.ShapeDtypeStruct((1, latent_dim), jnp.float32)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if num_classes_of(generator) else None
    out = jax.eval_shape(
        lambda z, y: generator.init_with_output(jax.random.PRNGKey(0), *call_args(z, y), train=False)[0], z, y
    )
    pack = int(getattr(discriminator, "pack", 1))
    if regularization.path_length and not (hasattr(generator, "styles") and hasattr(generator, "synthesize")):
        raise ValueError(
            f"regularization.path_length={regularization.path_length} differentiates G's images with respect to "
            f"its intermediate latents w; {type(generator).__name__} has none (no `styles` / `synthesize`). Use "
            "model.name='stylegan2' or path_length=0."
        )
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
        n_gen=int(n_gen),
    )
