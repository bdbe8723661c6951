"""Adversarial objectives as pure, element-wise functions of D's logits.

Each loss is a pair: `d(real_logits, fake_logits) -> [B]` that D minimizes and
`g(fake_logits) -> [B]` that G minimizes. The step averages them over the batch
(and across devices). Written with softplus so they are stable for any logit:
-log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class AdversarialLoss(NamedTuple):
    """A GAN objective: per-example D and G losses from D's raw outputs."""

    name: str
    d: Callable[[jax.Array, jax.Array], jax.Array]
    g: Callable[[jax.Array], jax.Array]


def _check_same_shape(real: jax.Array, fake: jax.Array) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"real logits {real.shape} and fake logits {fake.shape} differ in shape.")


def non_saturating_d(real: jax.Array, fake: jax.Array) -> jax.Array:
    """-log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014, eq. 1)."""
    _check_same_shape(real, fake)
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)


def non_saturating_g(fake: jax.Array) -> jax.Array:
    """-log D(G(z)): the non-saturating G loss (Goodfellow et al. 2014, sec. 3)."""
    return jax.nn.softplus(-fake)


def minimax_g(fake: jax.Array) -> jax.Array:
    """log(1 - D(G(z))): the saturating minimax G loss (Goodfellow et al. 2014, eq. 1)."""
    return -jax.nn.softplus(fake)


def wasserstein_d(real: jax.Array, fake: jax.Array) -> jax.Array:
    """-(D(x) - D(G(z))): the critic loss of WGAN (Arjovsky et al. 2017, alg. 1)."""
    _check_same_shape(real, fake)
    return fake - real


def wasserstein_g(fake: jax.Array) -> jax.Array:
    """-D(G(z)) (Arjovsky et al. 2017, alg. 1); also hinge GAN's G loss."""
    return -fake


def hinge_d(real: jax.Array, fake: jax.Array) -> jax.Array:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; Miyato et al. 2018)."""
    _check_same_shape(real, fake)
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


def least_squares_d(real: jax.Array, fake: jax.Array) -> jax.Array:
    """0.5 (D(x) - 1)^2 + 0.5 D(G(z))^2: LSGAN with a=0, b=1 (Mao et al. 2017, eq. 2)."""
    _check_same_shape(real, fake)
    return 0.5 * jnp.square(real - 1.0) + 0.5 * jnp.square(fake)


def least_squares_g(fake: jax.Array) -> jax.Array:
    """0.5 (D(G(z)) - 1)^2: LSGAN with c=1 (Mao et al. 2017, eq. 2)."""
    return 0.5 * jnp.square(fake - 1.0)


LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss
    for loss in (
        AdversarialLoss("non_saturating", non_saturating_d, non_saturating_g),
        AdversarialLoss("minimax", non_saturating_d, minimax_g),
        AdversarialLoss("wasserstein", wasserstein_d, wasserstein_g),
        AdversarialLoss("hinge", hinge_d, wasserstein_g),
        AdversarialLoss("least_squares", least_squares_d, least_squares_g),
    )
}


def get_loss(name: str) -> AdversarialLoss:
    """The adversarial loss registered under `name`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; valid names: {sorted(LOSSES)}.") from None
