"""The terms of D's and G's losses: each a name, a weight and a function of a small context.

A loss is its adversarial part plus the weighted sum of the enabled terms, in
registration order; each term's unweighted value is reported as the metric `name`:

    loss = adversarial + sum(term.weight * term.fn(context) for term in terms)

`GANStep` builds its terms once from `Regularization` (`build_terms`). A new
regularizer is one function of the context and one registration:

    @d_term("d_my_penalty", weight=lambda reg: reg.my_penalty)   # on when the weight is nonzero
    def my_penalty(ctx: DContext) -> jax.Array:
        \"\"\"What it penalizes (Author et al. year).\"\"\"
        return regularizers.my_penalty(ctx.logits_fn(ctx.real_labels), ctx.real)

plus the `my_penalty: float = 0.0` field of `Regularization` (and its range in
`jaxgan.train.checks.check_regularization`). A D term sees one D update of one
discriminator (the step vmaps the whole update over K discriminators); a G term
registered with `per_discriminator=True` sees one discriminator's outputs and the
step averages it over the K of them.

The order of registration is the order of summation: moving a term changes the
loss in its last bits, so new terms go at the end.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxgan import augment, latent, regularizers
from jaxgan.common import Params
from jaxgan.losses import AdversarialLoss
from jaxgan.train.checks import check_regularization
from jaxgan.train.keys import CriticExampleKeys, GeneratorKeys, per_example, sample_latents


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
    # Entropy regularization of G: -entropy * H(G's samples) in G's loss, H the Kozachenko-Leonenko
    # nearest-neighbour estimate over the global batch (k-th neighbour), reported as metric g_entropy.
    entropy: float = 0.0
    entropy_k: int = 1
    orthogonal: float = 0.0  # BigGAN's orthogonal regularization of G's kernels, beta (Brock et al. 2019: 1e-4)
    # StyleGAN2's path length regularization (Karras et al. 2020, sec. 3.2): weight (their 2), applied lazily as
    # its own G update every path_length_every steps (weight times k; G's Adam then takes lazy_every=k), on
    # 1/path_length_batch_shrink of the batch; pl_mean, the lengths' running mean (rate path_length_decay),
    # lives in the state. Needs a generator with `styles` and `synthesize` (StyleGAN2Generator).
    path_length: float = 0.0
    path_length_every: int = 4
    path_length_decay: float = 0.01
    path_length_batch_shrink: int = 2
    # ADA (Karras et al. 2020, arXiv:2006.06676): the augmentation pipeline `jaxgan.ada` ("bgc", "bg", "b", "g",
    # "c"; "" = off) on every image D sees, each op per example with probability p. p starts at ada_p and,
    # with ada_target > 0, moves every ada_interval steps by sign(r_t - ada_target) * images / (ada_kimg * 1000),
    # r_t = E[sign(D(real))] over those steps (paper: target 0.6, 500 kimg for p to go 0 -> 1); ada_target = 0
    # keeps p fixed at ada_p. p and r_t's running sums live in the state.
    ada_pipeline: str = ""
    ada_p: float = 0.0
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0

    def validate(self, *, loss: AdversarialLoss, pack: int, sample_ndim: int) -> None:
        """Raises ValueError naming conflicting or out-of-range options."""
        check_regularization(self, loss=loss, pack=pack, sample_ndim=sample_ndim)

    @property
    def r1_lazy(self) -> bool:
        return bool(self.r1_gamma) and self.r1_every > 1

    @property
    def g_lazy_every(self) -> int:
        """G's lazy regularization interval for its optimizer (`jaxgan.optim.adam(lazy_every=...)`); 0 = none."""
        return self.path_length_every if self.path_length and self.path_length_every > 1 else 0


class DOutput(NamedTuple):
    """D's logits and the intermediates the losses read (None when not captured)."""

    logits: jax.Array
    features: jax.Array | None = None
    class_logits: jax.Array | None = None
    info_outputs: jax.Array | None = None


class DContext(NamedTuple):
    """What a D term reads: one D update of one discriminator, inside its loss function."""

    step: Any  # the GANStep: its static facts (regularization, axis_name, pack, latent_codes)
    params: Params  # D's params, the ones differentiated
    logits_fn: Callable[[jax.Array | None], Callable[[jax.Array], jax.Array]]  # labels -> (x -> D's logits), at
    # `params` and the batch's BatchNorm statistics (updates discarded): for gradient penalties
    real: jax.Array  # D's inputs: the reals and fakes after DiffAugment and instance noise
    fake: jax.Array
    real_labels: jax.Array | None
    fake_labels: jax.Array | None
    real_out: DOutput
    fake_out: DOutput
    z: jax.Array  # the fakes' latents
    keys: CriticExampleKeys
    extras: Mapping[str, Any]  # this discriminator's stabilizer state ("lecam", "d_average")

    @property
    def reg(self) -> Regularization:
        return self.step.regularization


class GeneratorPass:
    """G's training-mode forward pass at fixed params; each call continues from the BatchNorm statistics
    the previous call left, as successive training passes do (`stats` holds the latest)."""

    def __init__(self, apply: Callable[[Params, jax.Array, jax.Array | None], tuple[jax.Array, Params]], stats: Params):
        self._apply, self.stats = apply, stats

    def __call__(self, z: jax.Array, labels: jax.Array | None) -> jax.Array:
        out, self.stats = self._apply(self.stats, z, labels)
        return out


class GContext(NamedTuple):
    """What a G term reads, inside G's loss function."""

    step: Any  # the GANStep
    params: Params  # G's params, the ones differentiated
    generate: GeneratorPass  # more samples of G at `params` (MSGAN's second batch)
    fake: jax.Array
    z: jax.Array
    fake_labels: jax.Array | None
    real_out: DOutput | None  # D's outputs on D's view of the reals (None unless a term or the loss reads them)
    fake_out: DOutput  # and of the fakes: stacked over K discriminators, one of them for a per-D term
    keys: GeneratorKeys
    indices: jax.Array  # the examples' indices in the global batch
    extras: Mapping[str, Any]  # the stabilizer state ("g_average")

    @property
    def reg(self) -> Regularization:
        return self.step.regularization


class Term(NamedTuple):
    """One weighted part of a loss: `weight * fn(context)`, reported unweighted as metric `name`."""

    name: str
    weight: float
    fn: Callable[[Any], jax.Array]
    per_discriminator: bool = False


class TermSpec(NamedTuple):
    """A registered term: its weight and whether it is on, both read from `Regularization` (and the step)."""

    name: str
    weight: Callable[[Regularization], float]
    fn: Callable[[Any], jax.Array]
    when: Callable[[Regularization, Any], bool] | None  # None: on when the weight is nonzero
    per_discriminator: bool = False


D_TERMS: list[TermSpec] = []
G_TERMS: list[TermSpec] = []


def d_term(
    name: str, *, weight: Callable[[Regularization], float], when: Callable[[Regularization, Any], bool] | None = None
) -> Callable:
    """Registers `fn(DContext) -> scalar` as a term of D's loss (decorator)."""

    def register(fn):
        D_TERMS.append(TermSpec(name, weight, fn, when))
        return fn

    return register


def g_term(
    name: str,
    *,
    weight: Callable[[Regularization], float],
    when: Callable[[Regularization, Any], bool] | None = None,
    per_discriminator: bool = False,
) -> Callable:
    """Registers `fn(GContext) -> scalar` as a term of G's loss (decorator); `per_discriminator`: it reads
    one discriminator's outputs and is averaged over K discriminators."""

    def register(fn):
        G_TERMS.append(TermSpec(name, weight, fn, when, per_discriminator))
        return fn

    return register


def build_terms(specs: list[TermSpec], reg: Regularization, step: Any) -> tuple[Term, ...]:
    """The enabled terms of `specs`, in registration order."""
    terms = []
    for spec in specs:
        weight = spec.weight(reg)
        if spec.when(reg, step) if spec.when is not None else bool(weight):
            terms.append(Term(spec.name, weight, spec.fn, spec.per_discriminator))
    return tuple(terms)


def evaluate(terms: tuple[Term, ...], ctx: Any, num_discriminators: int = 1) -> dict[str, jax.Array]:
    """{name: unweighted value}; a per-discriminator term is vmapped over K stacked D outputs and averaged."""
    values = {}
    for term in terms:
        if term.per_discriminator and num_discriminators > 1:
            one_d = functools.partial(lambda fn, r, f: fn(ctx._replace(real_out=r, fake_out=f)), term.fn)
            values[term.name] = jnp.mean(jax.vmap(one_d)(ctx.real_out, ctx.fake_out))
        else:
            values[term.name] = term.fn(ctx)
    return values


def weighted_sum(terms: tuple[Term, ...], values: Mapping[str, jax.Array]) -> jax.Array | int:
    """sum(weight * value) over `terms`, in their order (0 when there are none)."""
    return sum(term.weight * values[term.name] for term in terms)


# ----------------------------------------------------------------------------
# Shared by D's and G's terms.


def class_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels: ACGAN's class loss (Odena et al. 2017, eq. 2)."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def info_loss(codes: latent.LatentCodes, q: jax.Array, z: jax.Array) -> jax.Array:
    """InfoGAN's loss on Q's outputs for the codes G read from `z` (Chen et al. 2016; `regularizers.info_loss`)."""
    categorical, continuous = latent.codes_from_latent(z, codes)
    return regularizers.info_loss(q, categorical, continuous, codes.categorical)


def _packed(ctx: DContext, labels: jax.Array | None, x: jax.Array):
    """(d_fn, samples) for R1 / R2: a packed D's sample is its tuple of `pack` inputs."""
    return regularizers.packed_samples(ctx.logits_fn(labels), x, ctx.step.pack)


# ----------------------------------------------------------------------------
# D's terms, in the order they are summed.


@d_term("d_class_loss", weight=lambda reg: reg.acgan_weight, when=lambda reg, step: step.acgan)
def acgan_d(ctx: DContext) -> jax.Array:
    """ACGAN: D's auxiliary classifier learns the reals' and the fakes' classes (Odena et al. 2017, eq. 2)."""
    return class_cross_entropy(ctx.real_out.class_logits, ctx.real_labels) + class_cross_entropy(
        ctx.fake_out.class_logits, ctx.fake_labels
    )


@d_term("d_info_loss", weight=lambda reg: reg.info_weight, when=lambda reg, step: bool(step.latent_codes))
def info_d(ctx: DContext) -> jax.Array:
    """InfoGAN: Q shares D's body and learns the fakes' codes (Chen et al. 2016)."""
    return info_loss(ctx.step.latent_codes, ctx.fake_out.info_outputs, ctx.z)


@d_term("d_gradient_penalty", weight=lambda reg: reg.gradient_penalty)
def gradient_penalty(ctx: DContext) -> jax.Array:
    """WGAN-GP: (||grad D|| - 1)^2 on random interpolates of reals and fakes (Gulrajani et al. 2017);
    one-sided max(0, ||grad D|| - 1)^2 (Petzka et al. 2018)."""
    x_hat = per_example(
        lambda k, x: regularizers.wgan_gp_interpolates(k, x[:, 0], x[:, 1]),
        ctx.keys.gradient_penalty,
        jnp.stack([ctx.real, ctx.fake], axis=1),
    )
    return regularizers.unit_gradient_penalty(
        ctx.logits_fn(ctx.real_labels), x_hat, one_sided=ctx.reg.gradient_penalty_one_sided
    )


@d_term("d_dragan", weight=lambda reg: reg.dragan)
def dragan(ctx: DContext) -> jax.Array:
    """DRAGAN: (||grad D|| - 1)^2 around the reals, perturbed by dragan_c batch stds (Kodali et al. 2017)."""
    scale = ctx.reg.dragan_c * regularizers.batch_std(ctx.real, ctx.step.axis_name)
    x_hat = per_example(lambda k, x: regularizers.dragan_perturb(k, x, scale), ctx.keys.dragan, ctx.real)
    return regularizers.unit_gradient_penalty(ctx.logits_fn(ctx.real_labels), x_hat)


@d_term("d_r1", weight=lambda reg: reg.r1_gamma / 2, when=lambda reg, step: bool(reg.r1_gamma) and not reg.r1_lazy)
def r1(ctx: DContext) -> jax.Array:
    """R1: E||grad D(x)||^2 on the reals (Mescheder et al. 2018); lazy R1 is its own update (`GANStep`)."""
    return regularizers.r1_penalty(*_packed(ctx, ctx.real_labels, ctx.real))


@d_term("d_r2", weight=lambda reg: reg.r2_gamma / 2)
def r2(ctx: DContext) -> jax.Array:
    """R2: E||grad D(x)||^2 on the fakes (Mescheder et al. 2018)."""
    return regularizers.r2_penalty(*_packed(ctx, ctx.fake_labels, ctx.fake))


@d_term("d_lecam", weight=lambda reg: reg.lecam)
def lecam(ctx: DContext) -> jax.Array:
    """LeCam: D's logits kept near the moving anchors of the other side's (Tseng et al. 2021)."""
    return regularizers.lecam_penalty(ctx.real_out.logits, ctx.fake_out.logits, ctx.extras["lecam"])


@d_term("d_bcr", weight=lambda reg: 1.0, when=lambda reg, step: bool(reg.bcr_real or reg.bcr_fake))
def bcr(ctx: DContext) -> jax.Array:
    """bCR: D's logits unchanged by the augmentation bcr_policy, on reals and fakes (Zhao et al. 2020);
    bcr_real and bcr_fake weigh the two sides inside the penalty."""
    reg = ctx.reg
    aug = lambda x, ks: per_example(functools.partial(augment.diff_augment, policy=reg.bcr_policy), ks, x)
    real_aug = ctx.logits_fn(ctx.real_labels)(aug(ctx.real, ctx.keys.bcr_real))
    fake_aug = ctx.logits_fn(ctx.fake_labels)(aug(ctx.fake, ctx.keys.bcr_fake))
    return regularizers.bcr_penalty(
        ctx.real_out.logits, real_aug, ctx.fake_out.logits, fake_aug, lambda_real=reg.bcr_real, lambda_fake=reg.bcr_fake
    )


@d_term("d_historical_average", weight=lambda reg: reg.historical_averaging)
def historical_average_d(ctx: DContext) -> jax.Array:
    """Historical averaging: ||theta_D - running mean||^2 (Salimans et al. 2016, sec. 3.3)."""
    return regularizers.historical_average_penalty(ctx.params, ctx.extras["d_average"])


# ----------------------------------------------------------------------------
# G's terms, in the order they are summed.


@g_term("g_class_loss", weight=lambda reg: reg.acgan_weight, when=lambda reg, step: step.acgan, per_discriminator=True)
def acgan_g(ctx: GContext) -> jax.Array:
    """ACGAN: G's fakes should be classified as the classes they were drawn for (Odena et al. 2017, eq. 2)."""
    return class_cross_entropy(ctx.fake_out.class_logits, ctx.fake_labels)


@g_term(
    "g_info_loss",
    weight=lambda reg: reg.info_weight,
    when=lambda reg, step: bool(step.latent_codes),
    per_discriminator=True,
)
def info_g(ctx: GContext) -> jax.Array:
    """InfoGAN: G makes its codes recoverable by Q (Chen et al. 2016)."""
    return info_loss(ctx.step.latent_codes, ctx.fake_out.info_outputs, ctx.z)


@g_term("g_feature_matching", weight=lambda reg: reg.feature_matching, per_discriminator=True)
def feature_matching(ctx: GContext) -> jax.Array:
    """Feature matching: the fakes' mean D features match the reals' (Salimans et al. 2016, sec. 3.1)."""
    return regularizers.feature_matching_loss(
        ctx.real_out.features, ctx.fake_out.features, axis_name=ctx.step.axis_name
    )


@g_term("g_mode_seeking", weight=lambda reg: reg.mode_seeking)
def mode_seeking(ctx: GContext) -> jax.Array:
    """MSGAN: distant latents should give distant images (Mao et al. 2019), with a second batch of latents."""
    z2 = sample_latents(ctx.keys.latents2, ctx.indices, ctx.step.latent_dim)
    fake2 = ctx.generate(z2, ctx.fake_labels)
    return regularizers.mode_seeking_loss(ctx.fake, fake2, ctx.z, z2, axis_name=ctx.step.axis_name)


@g_term("g_historical_average", weight=lambda reg: reg.historical_averaging)
def historical_average_g(ctx: GContext) -> jax.Array:
    """Historical averaging: ||theta_G - running mean||^2 (Salimans et al. 2016, sec. 3.3)."""
    return regularizers.historical_average_penalty(ctx.params, ctx.extras["g_average"])


@g_term("g_entropy", weight=lambda reg: -reg.entropy, when=lambda reg, step: bool(reg.entropy))
def entropy(ctx: GContext) -> jax.Array:
    """The entropy of G's samples, maximized (weight -lambda): Kozachenko-Leonenko's nearest-neighbour
    estimate over the global batch (`regularizers.nearest_neighbour_entropy`; after PresGAN, Dieng et al.
    2019, whose entropy term rewards G for spreading its samples)."""
    return regularizers.nearest_neighbour_entropy(ctx.fake, k=ctx.reg.entropy_k, axis_name=ctx.step.axis_name)


@g_term("g_orthogonal", weight=lambda reg: reg.orthogonal)
def orthogonal(ctx: GContext) -> jax.Array:
    """BigGAN's orthogonal regularization of G's kernels (Brock et al. 2019, sec. 3.1)."""
    return regularizers.orthogonal_penalty(ctx.params)
