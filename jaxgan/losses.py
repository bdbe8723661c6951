"""Adversarial objectives as pure, element-wise functions of D's logits.

Each loss is a pair: `d(real_logits, fake_logits, *, axis_name=None) -> [B]`
that D minimizes and `g(fake_logits, real_logits=None, *, axis_name=None) -> [B]`
that G minimizes. The step averages them over the batch (and across devices).

Only the relativistic losses read `real_logits` in G's loss
(`AdversarialLoss.g_needs_real`) and only they use `axis_name`: they compare
each logit with the batch mean of the other side, and under data parallelism
that mean must be the mean of the GLOBAL batch (`jax.lax.pmean` of the local
mean over `axis_name`), or the loss would depend on the device count. The other
losses accept and ignore both.

Written with softplus so they are stable for any logit:
-log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

# d(real_logits, fake_logits, *, axis_name=None) -> [B]
DLoss = Callable[..., jax.Array]
# g(fake_logits, real_logits=None, *, axis_name=None) -> [B]
GLoss = Callable[..., jax.Array]


class AdversarialLoss(NamedTuple):
    """A GAN objective: per-example D and G losses from D's raw outputs.

    `g_needs_real` is True when G's loss reads D's logits on real data (the
    relativistic losses); the step must then pass them as `real_logits`.
    """

    name: str
    d: DLoss
    g: GLoss
    g_needs_real: bool = False


def _check_same_shape(real: jax.Array, fake: jax.Array) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"real logits {real.shape} and fake logits {fake.shape} differ in shape.")


def batch_mean(x: jax.Array, axis_name: str | None = None) -> jax.Array:
    """Mean over the batch (axis 0); over the GLOBAL batch when `axis_name` is given.

    The pmean of equal-sized local means is the global mean, and it is
    differentiable: under shard_map/pmap its transpose hands every device its
    share of the cotangent, so gradients match a single device holding the whole
    batch.
    """
    mean = jnp.mean(x, axis=0)
    return mean if axis_name is None else jax.lax.pmean(mean, axis_name)


def non_saturating_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """-log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014, eq. 1)."""
    del axis_name
    _check_same_shape(real, fake)
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)


def smoothed_non_saturating_d(
    real: jax.Array, fake: jax.Array, *, real_label: float, axis_name: str | None = None
) -> jax.Array:
    """One-sided label smoothing: real target `real_label` (e.g. 0.9), fake target 0.

    -a log D(x) - (1 - a) log(1 - D(x)) - log(1 - D(G(z))), the cross-entropy
    against the smoothed target a. Only the real target is smoothed: smoothing the
    fake one too would let G's samples keep their shape wherever p_data is ~0
    (Salimans et al. 2016, "Improved Techniques for Training GANs",
    arXiv:1606.03498, sec. 3.4).
    """
    del axis_name
    _check_same_shape(real, fake)
    return real_label * jax.nn.softplus(-real) + (1.0 - real_label) * jax.nn.softplus(real) + jax.nn.softplus(fake)


def non_saturating_g(fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None) -> jax.Array:
    """-log D(G(z)): the non-saturating G loss (Goodfellow et al. 2014, sec. 3)."""
    del real, axis_name
    return jax.nn.softplus(-fake)


def minimax_g(fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None) -> jax.Array:
    """log(1 - D(G(z))): the saturating minimax G loss (Goodfellow et al. 2014, eq. 1)."""
    del real, axis_name
    return -jax.nn.softplus(fake)


def wasserstein_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """-(D(x) - D(G(z))): the critic loss of WGAN (Arjovsky et al. 2017, alg. 1)."""
    del axis_name
    _check_same_shape(real, fake)
    return fake - real


def wasserstein_g(fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None) -> jax.Array:
    """-D(G(z)) (Arjovsky et al. 2017, alg. 1); also hinge GAN's G loss."""
    del real, axis_name
    return -fake


def hinge_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; Miyato et al. 2018)."""
    del axis_name
    _check_same_shape(real, fake)
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


def least_squares_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """0.5 (D(x) - 1)^2 + 0.5 D(G(z))^2: LSGAN with a=0, b=1 (Mao et al. 2017, eq. 2)."""
    del axis_name
    _check_same_shape(real, fake)
    return 0.5 * jnp.square(real - 1.0) + 0.5 * jnp.square(fake)


def least_squares_g(fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None) -> jax.Array:
    """0.5 (D(G(z)) - 1)^2: LSGAN with c=1 (Mao et al. 2017, eq. 2)."""
    del real, axis_name
    return 0.5 * jnp.square(fake - 1.0)


# Relativistic average GANs (Jolicoeur-Martineau 2018, "The relativistic
# discriminator: a key element missing from standard GAN", arXiv:1807.00734,
# sec. 4.3). D judges whether a real sample is more realistic than the AVERAGE
# fake, and vice versa: with C the logits,
#   D~(x_r) = C(x_r) - E_f C(x_f),  D~(x_f) = C(x_f) - E_r C(x_r).
# G's loss swaps the roles of real and fake, so it needs D's logits on reals
# too (their gradient with respect to G is zero, but their values matter).
# RaHinge puts the hinge f(y) = max(0, 1 - y) in place of softplus(-y).


def _relativistic(real: jax.Array, fake: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """(C(x_r) - mean C(x_f), C(x_f) - mean C(x_r)), means over the global batch."""
    if real is None:
        raise ValueError(
            "A relativistic G loss needs D's logits on the real batch: call g(fake_logits, real_logits) "
            "(AdversarialLoss.g_needs_real is True)."
        )
    _check_same_shape(real, fake)
    return real - batch_mean(fake, axis_name), fake - batch_mean(real, axis_name)


def relativistic_average_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """RaSGAN's D loss: -log sigmoid(D~(x_r)) - log(1 - sigmoid(D~(x_f))) (arXiv:1807.00734, sec. 4.3)."""
    rel_real, rel_fake = _relativistic(real, fake, axis_name)
    return jax.nn.softplus(-rel_real) + jax.nn.softplus(rel_fake)


def relativistic_average_g(
    fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None
) -> jax.Array:
    """RaSGAN's G loss: -log sigmoid(D~(x_f)) - log(1 - sigmoid(D~(x_r))) (arXiv:1807.00734, sec. 4.3)."""
    rel_real, rel_fake = _relativistic(real, fake, axis_name)
    return jax.nn.softplus(-rel_fake) + jax.nn.softplus(rel_real)


def relativistic_average_hinge_d(real: jax.Array, fake: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """RaHinge D loss: max(0, 1 - D~(x_r)) + max(0, 1 + D~(x_f)) (arXiv:1807.00734, sec. 4.3)."""
    rel_real, rel_fake = _relativistic(real, fake, axis_name)
    return jax.nn.relu(1.0 - rel_real) + jax.nn.relu(1.0 + rel_fake)


def relativistic_average_hinge_g(
    fake: jax.Array, real: jax.Array | None = None, *, axis_name: str | None = None
) -> jax.Array:
    """RaHinge G loss: max(0, 1 - D~(x_f)) + max(0, 1 + D~(x_r)) (arXiv:1807.00734, sec. 4.3)."""
    rel_real, rel_fake = _relativistic(real, fake, axis_name)
    return jax.nn.relu(1.0 - rel_fake) + jax.nn.relu(1.0 + rel_real)


LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss
    for loss in (
        AdversarialLoss("non_saturating", non_saturating_d, non_saturating_g),
        AdversarialLoss("minimax", non_saturating_d, minimax_g),
        AdversarialLoss("wasserstein", wasserstein_d, wasserstein_g),
        AdversarialLoss("hinge", hinge_d, wasserstein_g),
        AdversarialLoss("least_squares", least_squares_d, least_squares_g),
        AdversarialLoss("relativistic_average", relativistic_average_d, relativistic_average_g, g_needs_real=True),
        AdversarialLoss(
            "relativistic_average_hinge", relativistic_average_hinge_d, relativistic_average_hinge_g, g_needs_real=True
        ),
    )
}

# Losses whose D loss is a cross-entropy against a real target, where one-sided
# label smoothing is defined.
SMOOTHABLE = ("non_saturating", "minimax")


def get_loss(name: str, *, real_label: float = 1.0) -> AdversarialLoss:
    """The adversarial loss registered under `name`.

    Args:
      name: one of `LOSSES`.
      real_label: D's target on real data; < 1 is one-sided label smoothing
        (Salimans et al. 2016, arXiv:1606.03498, sec. 3.4; they use 0.9). Only
        defined for the cross-entropy losses in `SMOOTHABLE`, and must lie in
        (0.5, 1]: below 0.5 D would be trained to call real data fake.
    """
    try:
        loss = LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; valid names: {sorted(LOSSES)}.") from None
    real_label = float(real_label)
    if real_label == 1.0:
        return loss
    if name not in SMOOTHABLE:
        raise ValueError(
            f"real_label={real_label} (one-sided label smoothing) is only defined for the cross-entropy "
            f"losses {SMOOTHABLE}, not {name!r}; use real_label=1.0 with {name!r}."
        )
    if not 0.5 < real_label <= 1.0:
        raise ValueError(f"real_label must lie in (0.5, 1] (Salimans et al. use 0.9), got {real_label}.")
    return loss._replace(d=functools.partial(smoothed_non_saturating_d, real_label=real_label))
