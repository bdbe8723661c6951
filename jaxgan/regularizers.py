"""Regularizers of the GAN zoo as small pure functions of arrays and callables.

Gradient penalties take `d_fn`, a callable mapping a batch of samples `[B, ...]`
to D's logits `[B]`: a closure over D's params, so the penalty's own gradient
with respect to those params is a nested `jax.grad`, as in StyleGAN2's R1 (and
flaxmodels' `regul_step_D`). The per-example input gradient is the gradient of
`sum(d_fn(x))`, which is exact only when D treats examples independently: no
batch statistics (train-mode BatchNorm) in a penalized D, as Gulrajani et al.
2017 sec. 4 prescribe.

Every penalty returns an UNweighted scalar (its weight is the caller's
hyperparameter, named in each docstring) unless the paper builds the weight into
the term (bCR). Batch means are local: under data parallelism the step averages
the loss (or its gradient) over devices, which gives the global mean. Where a
penalty is nonlinear in a batch statistic (DRAGAN's std, MSGAN's ratio of means,
feature matching, the LeCam anchors, the replay buffer) it takes `axis_name` to
use the global batch instead.

Keys: the random penalties (WGAN-GP, DRAGAN, instance noise) draw with the
key's shape of the LOCAL batch, so under data parallelism give each device its
own key (fold in `jax.lax.axis_index`). The replay buffer is the exception: it
needs the SAME key on every device (see `replay_buffer_query`).

No Flax modules and no configs here: arrays, pytrees, keys and callables only.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxgan.common import Params

DFn = Callable[[jax.Array], jax.Array]  # samples [B, ...] -> logits [B]


# ----------------------------------------------------------------------------
# Gradient penalties.


def _batch_mean(x: jax.Array, axis_name: str | None) -> jax.Array:
    mean = jnp.mean(x)
    return mean if axis_name is None else jax.lax.pmean(mean, axis_name)


def _per_example_uniform(key: jax.Array, x: jax.Array) -> jax.Array:
    """U[0, 1] of shape [B, 1, ..., 1]: one draw per example, broadcast over its dims."""
    return jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)


def input_gradients(d_fn: DFn, x: jax.Array) -> jax.Array:
    """dD(x_i)/dx_i for every example, shaped like `x` (see the module docstring)."""
    if x.ndim < 2:
        raise ValueError(f"x must be a batch [B, ...] with at least one sample dim, got shape {x.shape}.")
    logits, vjp = jax.vjp(d_fn, x)
    if logits.shape != x.shape[:1]:
        raise ValueError(
            f"d_fn must map samples {x.shape} to one logit per example, shape {x.shape[:1]}; it returned "
            f"{logits.shape}. Squeeze a trailing size-1 axis, e.g. lambda x: D(x)[:, 0]."
        )
    return vjp(jnp.ones_like(logits))[0]


def gradient_norms(d_fn: DFn, x: jax.Array) -> jax.Array:
    """||dD(x_i)/dx_i||_2 per example [B], over all non-batch dims.

    The norm's own gradient is defined as 0 where the input gradient is exactly 0
    (sqrt is not differentiable there), so penalties never produce NaNs.
    """
    g = input_gradients(d_fn, x)
    sq = jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def wgan_gp_interpolates(key: jax.Array, real: jax.Array, fake: jax.Array) -> jax.Array:
    """x^ = eps x + (1 - eps) x~ with one eps ~ U[0, 1] per example (Gulrajani et al. 2017, alg. 1)."""
    if real.shape != fake.shape:
        raise ValueError(f"real {real.shape} and fake {fake.shape} must have the same shape to interpolate.")
    eps = _per_example_uniform(key, real)
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(
    d_fn: DFn, real: jax.Array, fake: jax.Array, key: jax.Array, *, one_sided: bool = False
) -> jax.Array:
    """WGAN-GP: E[(||grad D(x^)||_2 - 1)^2] at random points x^ between real and fake.

    The 1-Lipschitz constraint of the WGAN critic, enforced softly where it
    matters: on the segments between real and generated samples. The one-sided
    form E[max(0, ||grad D(x^)|| - 1)^2] only penalizes slopes above 1, which is
    the actual Lipschitz constraint.

    Args:
      d_fn: samples [B, ...] -> logits [B] (no batch statistics inside).
      real, fake: [B, ...] batches; fake usually under stop_gradient.
      key: draws the per-example interpolation weights (`wgan_gp_interpolates`).
      one_sided: use max(0, ||g|| - 1)^2 instead of (||g|| - 1)^2.

    Returns:
      The unweighted scalar penalty; the paper adds it to the critic loss with
      weight lambda = 10.

    References:
      Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", arXiv:1704.00028, eq. 3.
      Petzka et al. 2018, "On the regularization of Wasserstein GANs", arXiv:1709.08894 (one-sided).
    """
    return unit_gradient_penalty(d_fn, wgan_gp_interpolates(key, real, fake), one_sided=one_sided)


def unit_gradient_penalty(d_fn: DFn, x: jax.Array, *, one_sided: bool = False) -> jax.Array:
    """E[(||grad D(x_i)||_2 - 1)^2] (or E[max(0, ||g|| - 1)^2]) at given points x.

    The penalty of WGAN-GP and DRAGAN once the points are drawn; the train step
    draws them per example (keyed by the global example index) and calls this.
    """
    excess = gradient_norms(d_fn, x) - 1.0
    if one_sided:
        excess = jax.nn.relu(excess)
    return jnp.mean(jnp.square(excess))


def batch_std(x: jax.Array, axis_name: str | None = None) -> jax.Array:
    """Population std over every element of the batch (global with `axis_name`), no gradient."""
    mean = _batch_mean(x, axis_name)
    return jax.lax.stop_gradient(jnp.sqrt(jnp.maximum(_batch_mean(jnp.square(x), axis_name) - jnp.square(mean), 0.0)))


def dragan_interpolates(key: jax.Array, x: jax.Array, *, c: float = 0.5, axis_name: str | None = None) -> jax.Array:
    """x + alpha (x_p - x) with x_p = x + c std(x) U[0, 1] noise and one alpha ~ U[0, 1] per example.

    As the DRAGAN reference code (Kodali et al. 2017) does: std is over every
    element of the batch (numpy's `X.std()`, population std; over the global
    batch with `axis_name`) and the noise is uniform on [0, 1], not symmetric.
    """
    return dragan_perturb(key, x, c * batch_std(x, axis_name))


def dragan_perturb(key: jax.Array, x: jax.Array, scale: jax.Array | float) -> jax.Array:
    """x + alpha (x_p - x), x_p = x + scale U[0, 1] noise, one alpha ~ U[0, 1] per example."""
    noise_key, alpha_key = jax.random.split(key)
    perturbed = x + scale * jax.random.uniform(noise_key, x.shape, x.dtype)
    return x + _per_example_uniform(alpha_key, x) * (perturbed - x)


def dragan_penalty(
    d_fn: DFn, x: jax.Array, key: jax.Array, *, c: float = 0.5, axis_name: str | None = None
) -> jax.Array:
    """DRAGAN: E[(||grad D(x~)||_2 - 1)^2] at points x~ near the real data.

    Where WGAN-GP constrains D between the data and the fakes, DRAGAN keeps D's
    slope near 1 in a small neighbourhood of the real data, where sharp gradients
    were found to cause mode collapse.

    Args:
      d_fn: samples [B, ...] -> logits [B].
      x: real samples [B, ...].
      key: draws the perturbation and the interpolation (`dragan_interpolates`).
      c: perturbation scale relative to the data's std (0.5 in the reference code).
      axis_name: take the std over the global data-parallel batch.

    Returns:
      The unweighted scalar penalty; the paper uses weight lambda = 10.

    References:
      Kodali et al. 2017, "On Convergence and Stability of GANs", arXiv:1705.07215, sec. 4 and
      their reference implementation (kodalinaveen3/DRAGAN).
    """
    return unit_gradient_penalty(d_fn, dragan_interpolates(key, x, c=c, axis_name=axis_name))


def packed_samples(d_fn: DFn, x: jax.Array, pack: int) -> tuple[DFn, jax.Array]:
    """(d_fn', x'): a packed D as a D of packed tuples, for R1 / R2.

    PacGAN's D judges `pack` consecutive inputs jointly (one logit per tuple), so
    it is a discriminator on the product distribution P^pack; its gradient penalty
    is taken per tuple: x' = x as [B // pack, pack, ...] and d_fn'(x') = d_fn(x)
    (one logit per tuple), so ||grad||^2 sums over the tuple's members.

    References:
      Lin, Khetan, Fanti & Oh 2018, "PacGAN", arXiv:1712.04086, sec. 3 (D on packed samples).
    """
    if pack == 1:
        return d_fn, x
    if pack < 1 or x.shape[0] % pack:
        raise ValueError(f"batch {x.shape[0]} is not divisible by pack={pack}.")
    return (lambda xp: d_fn(xp.reshape(-1, *xp.shape[2:]))), x.reshape(-1, pack, *x.shape[1:])


def r1_penalty(d_fn: DFn, real: jax.Array) -> jax.Array:
    """R1: E_real ||grad_x D(x)||^2, D's logit gradient on REAL data.

    Penalizing D's slope on the data makes the GAN locally convergent where the
    plain objective oscillates. Use it on D's loss only.

    Returns:
      The unweighted scalar; Mescheder et al. write (gamma / 2) E||grad D||^2,
      so multiply by gamma / 2 (StyleGAN2: gamma = 10 at 1024^2, also scaled by the
      lazy interval, see `jaxgan.optim`).

    References:
      Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
      arXiv:1801.04406, eq. 9.
    """
    g = input_gradients(d_fn, real)
    return jnp.mean(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))


def r2_penalty(d_fn: DFn, fake: jax.Array) -> jax.Array:
    """R2: E_fake ||grad_x D(x)||^2, the same penalty on GENERATED samples.

    Returns the unweighted scalar (the paper's term is gamma / 2 times it).

    References:
      Mescheder et al. 2018, arXiv:1801.04406, eq. 10.
    """
    return r1_penalty(d_fn, fake)


# ----------------------------------------------------------------------------
# Weight clipping.


def clip_weights(params: Params, c: float) -> Params:
    """Every parameter clipped to [-c, c]: WGAN's crude Lipschitz constraint, applied after each critic update.

    References:
      Arjovsky et al. 2017, "Wasserstein GAN", arXiv:1701.07875, alg. 1 (c = 0.01).
    """
    if not c > 0:
        raise ValueError(f"The clipping bound c must be > 0 (WGAN uses 0.01), got {c!r}.")
    projection_box = getattr(getattr(optax, "projections", None), "projection_box", None)
    if projection_box is not None:
        # Bounds as trees: this optax's projection_box tree-maps over them, so a bare scalar
        # only works for a single-leaf params tree.
        bound = lambda value: jax.tree_util.tree_map(lambda _: value, params)
        return projection_box(params, bound(-c), bound(c))
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -c, c), params)


# ----------------------------------------------------------------------------
# LeCam regularization.


class LeCamAnchors(NamedTuple):
    """EMA anchors of D's mean logits: `real` is alpha_R, `fake` is alpha_F (float32 scalars)."""

    real: jax.Array
    fake: jax.Array


def lecam_init(*, real: float = 0.0, fake: float = 0.0) -> LeCamAnchors:
    """Initial anchors (the state holds them so a resume restores them)."""
    return LeCamAnchors(real=jnp.asarray(real, jnp.float32), fake=jnp.asarray(fake, jnp.float32))


def lecam_update(
    anchors: LeCamAnchors,
    real_logits: jax.Array,
    fake_logits: jax.Array,
    *,
    decay: float = 0.99,
    axis_name: str | None = None,
) -> LeCamAnchors:
    """alpha <- decay alpha + (1 - decay) mean(D(.)), for the real and the fake anchor.

    With `axis_name` the means are over the global batch, so the anchors stay
    identical on every device.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1] (LeCam uses 0.99), got {decay!r}.")
    real_mean = _batch_mean(jax.lax.stop_gradient(real_logits), axis_name)
    fake_mean = _batch_mean(jax.lax.stop_gradient(fake_logits), axis_name)
    return LeCamAnchors(
        real=(decay * anchors.real + (1.0 - decay) * real_mean).astype(anchors.real.dtype),
        fake=(decay * anchors.fake + (1.0 - decay) * fake_mean).astype(anchors.fake.dtype),
    )


def lecam_penalty(real_logits: jax.Array, fake_logits: jax.Array, anchors: LeCamAnchors) -> jax.Array:
    """LeCam: E||D(x) - alpha_F||^2 + E||D(G(z)) - alpha_R||^2 with EMA anchors.

    Pulls D's logits on reals toward the running average of its fake logits and
    vice versa, bounding how far apart D can push them: it turns the WGAN/hinge
    objective into a LeCam divergence and keeps D from overfitting small data.
    (The official code uses the one-sided relu(D(x) - alpha_F)^2 + relu(alpha_R -
    D(G(z)))^2; this is the paper's two-sided eq. 3.)

    Returns:
      The unweighted scalar; the paper adds lambda times it to D's loss, with
      lambda tuned per setup.

    References:
      Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited Data",
      arXiv:2104.03310, eq. 3.
    """
    anchors = jax.tree_util.tree_map(jax.lax.stop_gradient, anchors)
    return jnp.mean(jnp.square(real_logits - anchors.fake)) + jnp.mean(jnp.square(fake_logits - anchors.real))


# ----------------------------------------------------------------------------
# Consistency, mode seeking, feature matching, historical averaging.


def _sq_per_example(a: jax.Array, b: jax.Array, what: str) -> jax.Array:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {a.shape} and {b.shape} differ; pass D's outputs on the same batch.")
    d = (a - b).reshape(a.shape[0], -1) if a.ndim else (a - b).reshape(1, 1)
    return jnp.sum(jnp.square(d), axis=1)


def bcr_penalty(
    real_logits: jax.Array,
    real_aug_logits: jax.Array,
    fake_logits: jax.Array,
    fake_aug_logits: jax.Array,
    *,
    lambda_real: float = 10.0,
    lambda_fake: float = 10.0,
) -> jax.Array:
    """bCR: lambda_real ||D(x) - D(T(x))||^2 + lambda_fake ||D(G(z)) - D(T(G(z)))||^2.

    D should not change its verdict under a semantics-preserving augmentation T,
    on reals and (the "balanced" part) on fakes, so augmentation artifacts cannot
    leak into G. Squared L2 per example, batch mean.

    Returns:
      The scalar penalty WITH the paper's weights (lambda_real = lambda_fake = 10 by default).

    References:
      Zhao et al. 2020, "Improved Consistency Regularization for GANs", arXiv:2002.04724, eq. 3.
    """
    real_term = _sq_per_example(real_logits, real_aug_logits, "bCR real logits")
    fake_term = _sq_per_example(fake_logits, fake_aug_logits, "bCR fake logits")
    return lambda_real * jnp.mean(real_term) + lambda_fake * jnp.mean(fake_term)


def mode_seeking_ratio(
    fakes1: jax.Array, fakes2: jax.Array, z1: jax.Array, z2: jax.Array, *, axis_name: str | None = None
) -> jax.Array:
    """mean|G(z1) - G(z2)| / mean|z1 - z2|: how far G's outputs move per unit of latent change.

    Means over every element of the batch (global with `axis_name`), as the MSGAN
    code does. Maximizing it keeps different latents from collapsing to one mode.

    References:
      Mao et al. 2019, "Mode Seeking Generative Adversarial Networks for Diverse Image
      Synthesis", arXiv:1903.05628, eq. 3.
    """
    if fakes1.shape != fakes2.shape or z1.shape != z2.shape:
        raise ValueError(
            f"Pair the two draws: fakes {fakes1.shape} vs {fakes2.shape}, latents {z1.shape} vs {z2.shape}."
        )
    return _batch_mean(jnp.abs(fakes1 - fakes2), axis_name) / _batch_mean(jnp.abs(z1 - z2), axis_name)


def mode_seeking_loss(
    fakes1: jax.Array,
    fakes2: jax.Array,
    z1: jax.Array,
    z2: jax.Array,
    *,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> jax.Array:
    """MSGAN's G term 1 / (ratio + eps), minimized to maximize `mode_seeking_ratio`.

    Returns the unweighted scalar (the paper weights it by lambda_ms = 1). eps =
    1e-5 as in the official code.

    References:
      Mao et al. 2019, arXiv:1903.05628, eq. 3.
    """
    return 1.0 / (mode_seeking_ratio(fakes1, fakes2, z1, z2, axis_name=axis_name) + eps)


def feature_matching_loss(
    real_features: jax.Array, fake_features: jax.Array, *, axis_name: str | None = None
) -> jax.Array:
    """|| E f(x) - E f(G(z)) ||_2^2 for an intermediate layer f of D: G matches the data's feature means.

    Args:
      real_features, fake_features: [B, ...] activations of the same D layer.
      axis_name: average over the global data-parallel batch (the norm of a
        difference of means is not the mean of per-device norms).

    Returns:
      The scalar G loss (used instead of, or next to, the adversarial one).

    References:
      Salimans et al. 2016, "Improved Techniques for Training GANs", arXiv:1606.03498, sec. 3.1.
    """
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ValueError(
            f"real features {real_features.shape} and fake features {fake_features.shape} differ past the batch axis; "
            "take both from the same D layer."
        )
    real_mean = jnp.mean(real_features, axis=0)
    fake_mean = jnp.mean(fake_features, axis=0)
    if axis_name is not None:
        real_mean, fake_mean = jax.lax.pmean((real_mean, fake_mean), axis_name)
    return jnp.sum(jnp.square(real_mean - fake_mean))


def info_loss(
    q: jax.Array, categorical: jax.Array, continuous: jax.Array, categorical_sizes: Sequence[int]
) -> jax.Array:
    """InfoGAN's mutual-information term as a loss: -L_I(G, Q) + H(c), to minimize.

    `q` [B, sum(K) + n_cont]: Q's logits of each categorical code (in the order of
    `categorical_sizes`), then its means of the continuous codes; `categorical`
    int [B, len(K)] and `continuous` [B, n_cont] are the codes G was given. The
    categorical terms are softmax cross-entropies, the continuous ones the
    negative log-likelihood of a unit-variance Gaussian, 0.5 (mu - c)^2 (the
    constant dropped): the factored Gaussian Q of the paper with its variance
    fixed. Summed over codes, averaged over the batch; both G and Q (D's head)
    minimize lambda times this value (lambda = 1 for categorical codes in the
    paper).

    References:
      Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, arXiv:1606.03657, eqs. 4-6.
    """
    sizes = tuple(int(k) for k in categorical_sizes)
    n_cat, total = len(sizes), sum(sizes)
    if q.ndim != 2 or q.shape[1] != total + continuous.shape[-1] or categorical.shape[-1] != n_cat:
        raise ValueError(
            f"Q outputs {q.shape} do not fit {n_cat} categorical codes of sizes {sizes} and "
            f"{continuous.shape[-1]} continuous codes (expected [B, {total + continuous.shape[-1]}])."
        )
    q = q.astype(jnp.float32)
    loss = jnp.zeros((q.shape[0],), jnp.float32)
    start = 0
    for k, size in enumerate(sizes):
        loss += optax.softmax_cross_entropy_with_integer_labels(q[:, start : start + size], categorical[:, k])
        start += size
    loss += 0.5 * jnp.sum(jnp.square(q[:, total:] - continuous.astype(jnp.float32)), axis=-1)
    return jnp.mean(loss)


def historical_average_update(avg: Params, params: Params, count: jax.Array | int) -> Params:
    """Running mean of past params: avg + (params - avg) / (count + 1).

    `count` is how many parameter sets `avg` already averages (0 at the start,
    where the result is `params` itself); the step count works.

    References:
      Salimans et al. 2016, arXiv:1606.03498, sec. 3.3.
    """
    weight = 1.0 / (jnp.asarray(count, jnp.float32) + 1.0)
    return jax.tree_util.tree_map(lambda a, p: a + (p - a) * weight.astype(a.dtype), avg, params)


def historical_average_penalty(params: Params, avg: Params) -> jax.Array:
    """|| theta - (1/t) sum_i theta[i] ||^2 summed over every leaf: pulls the player toward its own past.

    Returns the unweighted scalar; `avg` is a constant (no gradient flows into it).

    References:
      Salimans et al. 2016, arXiv:1606.03498, sec. 3.3.
    """
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(avg):
        raise ValueError(
            "params and the historical average must have the same tree structure; "
            "initialize the average with a copy of the params."
        )
    sq = jax.tree_util.tree_map(lambda p, a: jnp.sum(jnp.square(p - jax.lax.stop_gradient(a))), params, avg)
    return sum(jax.tree_util.tree_leaves(sq), jnp.zeros((), jnp.float32))


# ----------------------------------------------------------------------------
# Replay buffer of past fakes.


class ReplayBuffer(NamedTuple):
    """A fixed-size pool of past generated samples; a pytree the train state holds."""

    images: jax.Array  # [capacity, *sample_shape]
    count: jax.Array  # int32 scalar: slots filled so far (<= capacity)


def replay_buffer_init(capacity: int, sample_shape: Sequence[int], dtype: Any = jnp.float32) -> ReplayBuffer:
    """An empty buffer of `capacity` samples (CycleGAN uses 50)."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"capacity must be an int >= 1 (CycleGAN uses 50), got {capacity!r}.")
    return ReplayBuffer(images=jnp.zeros((capacity, *sample_shape), dtype), count=jnp.zeros((), jnp.int32))


def _gather_invariant(x: jax.Array, axis_name: str) -> jax.Array:
    """The global batch on every device, typed as replicated (a psum of zero-padded shards).

    `all_gather`'s result is typed device-varying under shard_map, which would
    make the buffer varying and the state no longer replicated; a psum is not.
    """
    n, b = jax.lax.axis_size(axis_name), x.shape[0]
    padded = jnp.zeros((n * b, *x.shape[1:]), x.dtype)
    padded = jax.lax.dynamic_update_slice_in_dim(padded, x, jax.lax.axis_index(axis_name) * b, axis=0)
    return jax.lax.psum(padded, axis_name)


def replay_buffer_query(
    buffer: ReplayBuffer, fakes: jax.Array, key: jax.Array, *, axis_name: str | None = None
) -> tuple[jax.Array, ReplayBuffer]:
    """CycleGAN's image pool: returns a batch mixing current and past fakes, and the new buffer.

    Examples are processed in order, as in the reference `ImagePool.query`:
    while the buffer is not full, the fake is stored and returned; once full, with
    probability 1/2 a uniformly chosen stored sample is returned and replaced by
    the fake, else the fake itself is returned. D then sees a history of G's
    outputs and cannot just track the latest G (Shrivastava et al. 2017 sec. 2.3).

    Example i draws from `fold_in(key, i)` (i its index in the global batch).
    With `axis_name`, the global batch is assembled on every device and queried
    with the same key there, so the buffer stays identical on every device (pass
    an invariant key), and each device gets its own rows back. Gradients do not
    flow through the pool: the returned batch is a constant for D's update.

    References:
      Shrivastava et al. 2017, "Learning from Simulated and Unsupervised Images through
      Adversarial Training", arXiv:1612.07828, sec. 2.3.
      Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
      Adversarial Networks" (CycleGAN), arXiv:1703.10593, sec. 4 (50-image pool).
    """
    if fakes.shape[1:] != buffer.images.shape[1:]:
        raise ValueError(
            f"fakes {fakes.shape} do not fit the buffer's samples {buffer.images.shape[1:]}; "
            "create it with replay_buffer_init(capacity, fakes.shape[1:])."
        )
    fakes = jax.lax.stop_gradient(fakes).astype(buffer.images.dtype)
    local_batch = fakes.shape[0]
    if axis_name is not None:
        fakes = _gather_invariant(fakes, axis_name)
    capacity = buffer.images.shape[0]

    def one(carry, xs):
        images, count = carry
        fake, i = xs
        coin_key, slot_key = jax.random.split(jax.random.fold_in(key, i))
        use_history = jax.random.uniform(coin_key) > 0.5
        slot = jax.random.randint(slot_key, (), 0, capacity)
        full = count >= capacity
        write_at = jnp.where(full, slot, jnp.minimum(count, capacity - 1))
        stored = images[write_at]
        out = jnp.where(full & use_history, stored, fake)
        images = images.at[write_at].set(jnp.where(~full | use_history, fake, stored))
        return (images, jnp.where(full, count, count + 1)), out

    (images, count), mixed = jax.lax.scan(one, (buffer.images, buffer.count), (fakes, jnp.arange(fakes.shape[0])))
    if axis_name is not None:
        mixed = jax.lax.dynamic_slice_in_dim(mixed, jax.lax.axis_index(axis_name) * local_batch, local_batch, axis=0)
    return mixed, ReplayBuffer(images=images, count=count)


# ----------------------------------------------------------------------------
# Path length regularization (StyleGAN2).


def path_lengths(synthesis: Callable[[jax.Array], jax.Array], ws: jax.Array, y: jax.Array) -> jax.Array:
    """||J_w^T y|| per example: StyleGAN2's path lengths (Karras et al. 2020, arXiv:1912.04958, sec. 3.2, eq. 4).

    `synthesis` maps ws [B, num_ws, w_dim] to images [B, ...] example by example (no batch statistics);
    y [B, ...] is random image-space noise, N(0, 1) / sqrt(H W) per pixel in the paper. J^T y is one
    vector-Jacobian product; as the reference, the squared norm is summed over w_dim and averaged over
    the num_ws rows before the square root. Returns [B].
    """
    _, vjp = jax.vjp(synthesis, ws)
    (grads,) = vjp(y.astype(jnp.float32))
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=-1), axis=1))


def path_length_penalty(
    lengths: jax.Array, pl_mean: jax.Array, *, decay: float, axis_name: str | None = None
) -> tuple[jax.Array, jax.Array]:
    """(mean (lengths - a)^2, a): the penalty around a = pl_mean moved toward the batch's mean length by `decay`.

    a, the running mean (StyleGAN2's pl_mean, decay 0.01), is a constant of the penalty (no gradient);
    with `axis_name` the mean length is the global batch's, so every device keeps the same a.
    """
    mean = jnp.mean(lengths)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    new_mean = jax.lax.stop_gradient(pl_mean + decay * (mean - pl_mean))
    return jnp.mean(jnp.square(lengths - new_mean)), new_mean


# ----------------------------------------------------------------------------
# Orthogonal regularization (BigGAN).


def orthogonal_penalty(params: Params) -> jax.Array:
    """BigGAN's orthogonal regularization, sum over the weight matrices W of ||W^T W (.) (1 - I)||_F^2.

    Every kernel (a parameter named "kernel": Dense [in, out], Conv [kh, kw, in, out]) is read as W with
    one column per output unit, W = kernel.reshape(-1, out); the penalty pushes different output units'
    filters towards orthogonality without constraining their norms (the diagonal is excluded), which makes
    G amenable to the truncation trick. Embeddings, biases and BatchNorm scales are not kernels and are left
    out (BigGAN's code leaves out its shared class embedding). Unweighted: BigGAN's beta is 1e-4.

    References:
      Brock, Donahue & Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis",
      arXiv:1809.11096, sec. 3.1, eq. 2 (after Brock et al. 2017, arXiv:1609.07093).
    """
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = getattr(path[-1], "key", getattr(path[-1], "name", None))
        if name != "kernel" or leaf.ndim < 2:
            continue
        w = leaf.reshape(-1, leaf.shape[-1]).astype(jnp.float32)
        gram = w.T @ w
        total = total + jnp.sum((gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))) ** 2)
    return total


# ----------------------------------------------------------------------------
# Entropy of G's samples.


def nearest_neighbour_entropy(
    x: jax.Array, *, k: int = 1, axis_name: str | None = None, eps: float = 1e-12
) -> jax.Array:
    """Kozachenko-Leonenko estimate, in nats, of the entropy of the distribution the batch x [B, ...] is drawn
    from (each example flattened to a point in R^d), from the distance rho_i of each point to its k-th nearest
    neighbour in the batch:

        H = psi(N) - psi(k) + log V_d + (d / N) sum_i log rho_i,    V_d = pi^(d/2) / Gamma(d/2 + 1),

    N the (global, with `axis_name`) batch size, psi the digamma function, V_d the unit ball's volume. Added
    to G's loss with weight -lambda, it rewards spreading the samples apart: an entropy regularizer against
    mode collapse, as PresGAN's (Dieng et al. 2019) with a nonparametric estimator in place of its noise
    model. Each point's neighbours are sought in the whole global batch (gathered; gradients flow to every
    point); `eps` keeps log rho finite where samples coincide. Squared distances are computed as
    |a|^2 + |b|^2 - 2 a.b around the batch mean (one matmul; memory O(B N), not O(B N d)).

    References:
      Kozachenko & Leonenko 1987, "Sample estimate of the entropy of a random vector", Problems Inform.
      Transmission 23(2); Kraskov, Stoegbauer & Grassberger 2004, "Estimating mutual information",
      arXiv:cond-mat/0305641, eq. 20; Dieng et al. 2019, "Prescribed Generative Adversarial Networks",
      arXiv:1910.04302.
    """
    b = x.shape[0]
    points = x.reshape(b, -1).astype(jnp.float32)
    d = points.shape[1]
    if axis_name is None:
        others, mine = points, jnp.arange(b)
    else:
        others = jax.lax.all_gather(points, axis_name, axis=0, tiled=True)
        mine = jax.lax.axis_index(axis_name) * b + jnp.arange(b)
    n = others.shape[0]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < n:
        raise ValueError(f"k must be an int in [1, N - 1] with N = {n} points in the (global) batch, got {k!r}.")
    center = jax.lax.stop_gradient(jnp.mean(others, axis=0))
    a, o = points - center, others - center
    sq = jnp.sum(a * a, axis=1)[:, None] + jnp.sum(o * o, axis=1)[None, :] - 2.0 * a @ o.T
    sq = jnp.maximum(sq, 0.0).at[jnp.arange(b), mine].set(jnp.inf)  # not its own neighbour
    kth = -jax.lax.top_k(-sq, k)[0][:, k - 1]
    log_rho = 0.5 * jnp.log(kth + eps)
    log_volume = 0.5 * d * jnp.log(jnp.pi) - jax.scipy.special.gammaln(0.5 * d + 1.0)
    constant = jax.scipy.special.digamma(float(n)) - jax.scipy.special.digamma(float(k)) + log_volume
    return constant + d * _batch_mean(log_rho, axis_name)


# ----------------------------------------------------------------------------
# Top-k generator updates.


def top_k_fraction(step: jax.Array | int, *, min_fraction: float, decay: float, decay_steps: int) -> jax.Array:
    """k / B of the top-k G update at `step`: max(nu, gamma ** (step // decay_steps)).

    Sinha et al. start with the whole batch (k = B) and multiply k by gamma
    (0.99) every epoch down to nu B (`min_fraction`), so G first learns from
    every sample and later only from its better ones.
    """
    if not 0.0 < min_fraction <= 1.0 or not 0.0 < decay <= 1.0 or decay_steps < 1:
        raise ValueError(
            f"Need 0 < min_fraction <= 1, 0 < decay <= 1 and decay_steps >= 1, got "
            f"min_fraction={min_fraction!r}, decay={decay!r}, decay_steps={decay_steps!r}."
        )
    epochs = (jnp.asarray(step) // decay_steps).astype(jnp.float32)
    return jnp.maximum(jnp.float32(min_fraction), jnp.float32(decay) ** epochs)


def top_k_mean(
    losses: jax.Array, scores: jax.Array, fraction: jax.Array | float, *, axis_name: str | None = None
) -> jax.Array:
    """G's loss averaged over the k = max(1, floor(fraction N)) samples of the global batch (N) that D scores
    most realistic; the other samples give no gradient.

    `losses` and `scores` (D's logits on the fakes, higher = more real) are [B] per device. The k are chosen
    over the GLOBAL batch (ties broken by position), so the update does not depend on the device count; the
    returned value is this device's share, scaled so that its pmean over `axis_name` is the mean over the k
    (as `jnp.mean` of a local batch, whose gradients the step pmeans).

    References:
      Sinha et al. 2020, "Top-k Training of GANs: Improving GAN Performance by Throwing Away Bad Samples",
      NeurIPS, arXiv:2002.06224, alg. 1: gradients from the worst-scored fakes can push samples away from
      their nearest mode.
    """
    if losses.shape != scores.shape or losses.ndim != 1:
        raise ValueError(f"losses {losses.shape} and scores {scores.shape} must be equal vectors [B].")
    scores = jax.lax.stop_gradient(scores)
    local = scores.shape[0]
    devices, offset = 1, 0
    if axis_name is not None:
        devices, offset = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name) * local
        scores = jax.lax.all_gather(scores, axis_name, tiled=True)
    n = scores.shape[0]
    k = jnp.clip(jnp.floor(jnp.asarray(fraction, jnp.float32) * n), 1, n)
    rank = jnp.argsort(jnp.argsort(-scores, stable=True), stable=True)  # 0 = most realistic
    keep = jax.lax.dynamic_slice_in_dim(rank, offset, local) < k
    return jnp.sum(jnp.where(keep, losses, 0.0)) * (devices / k)


# ----------------------------------------------------------------------------
# Several discriminators, instance noise.

AGGREGATIONS = ("mean", "max", "softmax")


def aggregate_losses(losses: jax.Array, *, mode: str = "mean", temperature: float = 1.0) -> jax.Array:
    """G's loss over K discriminators: their mean, max, or softmax-weighted mean.

    GMAN's soft version weights D_i by w_i = exp(lambda L_i) / sum_j exp(lambda L_j)
    and returns sum_i w_i L_i, where L_i is G's loss against D_i (larger = harsher
    critic). lambda = 1 / `temperature`: temperature -> inf (lambda = 0) is the
    mean, temperature -> 0 the max. As in the authors' code, the weights are not
    under stop_gradient.

    Args:
      losses: [K] scalar G losses, one per discriminator.
      mode: "mean", "max" or "softmax".
      temperature: > 0 (may be inf); only for "softmax".

    References:
      Durugkar et al. 2017, "Generative Multi-Adversarial Networks", arXiv:1611.01673, sec. 3 (GMAN-lambda).
    """
    if losses.ndim != 1 or losses.shape[0] < 1:
        raise ValueError(f"losses must be a vector [K] of per-discriminator G losses, got shape {losses.shape}.")
    if mode == "mean":
        return jnp.mean(losses)
    if mode == "max":
        return jnp.max(losses)
    if mode == "softmax":
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (inf gives the mean), got {temperature!r}.")
        weights = jax.nn.softmax(losses * (1.0 / temperature))
        return jnp.sum(weights * losses)
    raise ValueError(f"Unknown aggregation mode {mode!r}; valid modes: {AGGREGATIONS}.")


def add_instance_noise(key: jax.Array, x: jax.Array, sigma: jax.Array | float) -> jax.Array:
    """x + sigma N(0, I): instance noise on D's inputs, real and fake alike.

    Noise spreads both distributions so their supports overlap and D's gradient
    stays informative; anneal sigma to 0 (`instance_noise_sigma`).

    References:
      Sønderby et al. 2017, "Amortised MAP Inference for Image Super-resolution",
      arXiv:1610.04490 (instance noise); Arjovsky & Bottou 2017, "Towards Principled Methods for
      Training GANs", arXiv:1701.04862, sec. 3.
    """
    return x + jnp.asarray(sigma, x.dtype) * jax.random.normal(key, x.shape, x.dtype)


def instance_noise_sigma(step: jax.Array | int, *, initial_sigma: float, anneal_steps: int) -> jax.Array:
    """Linear annealing: initial_sigma (1 - step / anneal_steps), then 0 from `anneal_steps` on."""
    if anneal_steps < 1 or initial_sigma < 0:
        raise ValueError(
            f"Need anneal_steps >= 1 and initial_sigma >= 0, got anneal_steps={anneal_steps!r}, "
            f"initial_sigma={initial_sigma!r}."
        )
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / anneal_steps, 0.0, 1.0)
    return initial_sigma * (1.0 - frac)
