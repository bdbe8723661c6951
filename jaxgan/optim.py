"""Optax builders for GAN training, with explicit keyword hyperparameters.

Lazy regularization (Karras et al. 2020, StyleGAN2, "Analyzing and Improving
the Image Quality of StyleGAN", arXiv:1912.04958, appendix B): a regularizer
such as R1 runs as a separate update only every `every` minibatches, its weight
multiplied by `every`. The optimizer then sees every+1 updates where it used to
see `every`, so StyleGAN2 rescales Adam to keep its dynamics per minibatch:
c = every / (every + 1), lr -> lr c, beta -> beta^c (training/networks.py and
training_loop.py, `mb_ratio`).
"""

from __future__ import annotations

from typing import Callable

import jax
import optax

LearningRate = float | Callable[[jax.Array], jax.Array]


def lazy_adam_hyperparams(
    learning_rate: LearningRate, b1: float, b2: float, every: int
) -> tuple[LearningRate, float, float]:
    """(lr c, b1^c, b2^c) with c = every / (every + 1): StyleGAN2's lazy-regularization Adam.

    `learning_rate` may be a schedule (a function of the step), rescaled likewise.
    every = 16 (StyleGAN2's R1 interval) gives c = 16/17.
    """
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(
            f"every must be an int >= 1 (the regularization interval, 16 in StyleGAN2), got {every!r}; "
            "use the plain Adam hyperparameters when regularization is not lazy."
        )
    c = every / (every + 1)
    lr = (lambda step: learning_rate(step) * c) if callable(learning_rate) else learning_rate * c
    return lr, b1**c, b2**c


def linear_decay_schedule(learning_rate: float, *, total_steps: int, decay_steps: int) -> optax.Schedule:
    """Constant `learning_rate`, then linear decay to zero over the last `decay_steps` of `total_steps` updates.

    CycleGAN (Zhu et al. 2017, sec. 4): 2e-4 for the first 100 epochs, then
    linearly to zero over the next 100 (the reference decays per epoch; this is
    the same ramp per update). A decay to zero also lets a GAN's samples settle
    onto the modes at the end of training instead of jittering around them.
    """
    if not 0 <= decay_steps <= total_steps:
        raise ValueError(f"decay_steps must be in [0, total_steps={total_steps}], got {decay_steps}.")
    return optax.linear_schedule(
        learning_rate, 0.0, transition_steps=max(decay_steps, 1), transition_begin=total_steps - decay_steps
    )


def _check_lazy_every(lazy_every: int) -> None:
    if not isinstance(lazy_every, int) or isinstance(lazy_every, bool) or lazy_every < 0:
        raise ValueError(f"lazy_every must be an int >= 0 (0 = not lazy), got {lazy_every!r}.")


def adam(
    learning_rate: LearningRate,
    b1: float = 0.5,
    b2: float = 0.999,
    *,
    eps: float = 1e-8,
    lazy_every: int = 0,
) -> optax.GradientTransformation:
    """Adam as an optax chain, with GAN defaults and optional lazy-regularization rescaling.

    Args:
      learning_rate: a float or an optax schedule.
      b1, b2: Adam's decay rates; 0.5 / 0.999 as in DCGAN (Radford et al. 2016,
        arXiv:1511.06434); StyleGAN2 uses 0 / 0.99.
      eps: Adam's epsilon (1e-8, as StyleGAN2).
      lazy_every: the lazy regularization interval; 0 = regularize every step (no
        rescaling), k >= 1 applies `lazy_adam_hyperparams(..., every=k)`.

    References:
      Kingma & Ba 2015, "Adam", arXiv:1412.6980; Karras et al. 2020, arXiv:1912.04958, app. B.
    """
    _check_lazy_every(lazy_every)
    for name, beta in (("b1", b1), ("b2", b2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {beta!r}.")
    if lazy_every:
        learning_rate, b1, b2 = lazy_adam_hyperparams(learning_rate, b1, b2, lazy_every)
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate: LearningRate,
    decay: float = 0.99,
    momentum: float = 0.0,
    *,
    eps: float = 1e-8,
    lazy_every: int = 0,
) -> optax.GradientTransformation:
    """RMSProp as PyTorch's `torch.optim.RMSprop` computes it, the optimizer of WGAN (Arjovsky et al. 2017,
    alg. 1: lr 5e-5) and of many GAN tutorials: v <- decay v + (1 - decay) g^2 (from v = 0, no bias
    correction), update = -lr g / (sqrt(v) + eps), with optional heavy-ball `momentum`.

    `lazy_every` rescales lr, decay and momentum as `lazy_adam_hyperparams` does Adam's (StyleGAN2's
    mb_ratio), so lazy R1 keeps the per-minibatch dynamics.

    References:
      Tieleman & Hinton 2012, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning;
      Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", arXiv:1701.07875, alg. 1.
    """
    _check_lazy_every(lazy_every)
    for name, value in (("decay (b2)", decay), ("momentum (b1)", momentum)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"RMSProp's {name} must lie in [0, 1), got {value!r}.")
    if lazy_every:
        learning_rate, momentum, decay = lazy_adam_hyperparams(learning_rate, momentum, decay, lazy_every)
    return optax.rmsprop(
        learning_rate, decay=decay, eps=eps, eps_in_sqrt=False, momentum=momentum or None, bias_correction=False
    )


OPTIMIZERS = ("adam", "rmsprop")


def from_config(
    name: str, learning_rate: LearningRate, b1: float, b2: float, *, lazy_every: int = 0
) -> optax.GradientTransformation:
    """The optimizer a config names: "adam" (b1, b2: its moment decays) or "rmsprop" (b2: the squared-gradient
    decay, PyTorch's alpha; b1: its momentum, 0 in WGAN)."""
    if name == "adam":
        return adam(learning_rate, b1=b1, b2=b2, lazy_every=lazy_every)
    if name == "rmsprop":
        for field, beta, role in (("b1", b1, "momentum"), ("b2", b2, "squared-gradient decay")):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{field} must lie in [0, 1) (RMSProp's {role}), got {beta!r}.")
        return rmsprop(learning_rate, decay=b2, momentum=b1, lazy_every=lazy_every)
    raise ValueError(f"name={name!r} is unknown; valid: {OPTIMIZERS}.")
