"""The GAN step's checks in Python, before any compilation: options, networks and batches.

Each raises ValueError (TypeError for a wrong type) naming the value and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import flax.linen as nn
import jax
import numpy as np

from jaxgan import augment, latent, regularizers
from jaxgan.losses import AdversarialLoss
from jaxgan.state import num_classes_of

if TYPE_CHECKING:
    from jaxgan.train.terms import Regularization

CRITIC_LOOPS = ("auto", "scan", "unroll")
FAKE_LABELS = ("uniform", "real")  # how a conditional G's class ids are drawn (GANStep._fake_labels)


def resolve_critic_loop(critic_loop: str) -> str:
    """ "scan" or "unroll" for the n_critic D updates; "auto" picks by backend.

    Both run inside the one compiled step and give the same result. On XLA CPU a G update
    that follows a `lax.scan` over conv D updates runs many times slower, so "auto" unrolls
    on CPU and scans elsewhere, where the loop keeps compile time flat in n_critic
    (measurements: experiments/results/step_loop_cpu/README.md).
    """
    if critic_loop not in CRITIC_LOOPS:
        raise ValueError(f"critic_loop must be one of {CRITIC_LOOPS}, got {critic_loop!r}.")
    if critic_loop == "auto":
        return "unroll" if jax.default_backend() == "cpu" else "scan"
    return critic_loop


def check_regularization(reg: Regularization, *, loss: AdversarialLoss, pack: int, sample_ndim: int) -> None:
    """Out-of-range or conflicting `Regularization` options (`Regularization.validate`)."""
    for name in (
        "gradient_penalty",
        "dragan",
        "dragan_c",
        "r1_gamma",
        "r2_gamma",
        "weight_clip",
        "lecam",
        "bcr_real",
        "bcr_fake",
        "instance_noise",
        "feature_matching",
        "g_adversarial_weight",
        "mode_seeking",
        "historical_averaging",
        "entropy",
        "orthogonal",
        "path_length",
        "acgan_weight",
        "info_weight",
    ):
        if not float(getattr(reg, name)) >= 0.0:
            raise ValueError(f"regularization.{name} must be >= 0, got {getattr(reg, name)!r}.")
    for name in ("top_k_fraction", "top_k_decay"):
        if not 0.0 < float(getattr(reg, name)) <= 1.0:
            raise ValueError(
                f"regularization.{name} must lie in (0, 1] (Sinha et al.: fraction 0.5, decay "
                f"0.99; fraction 1 turns top-k off), got {getattr(reg, name)!r}."
            )
    for name in (
        "r1_every",
        "instance_noise_anneal_steps",
        "top_k_decay_steps",
        "entropy_k",
        "path_length_every",
        "path_length_batch_shrink",
        "ada_interval",
    ):
        if not isinstance(getattr(reg, name), int) or getattr(reg, name) < 1:
            raise ValueError(f"regularization.{name} must be an int >= 1, got {getattr(reg, name)!r}.")
    if not isinstance(reg.replay_capacity, int) or reg.replay_capacity < 0:
        raise ValueError(f"regularization.replay_capacity must be an int >= 0, got {reg.replay_capacity!r}.")
    if not 0.0 < reg.path_length_decay <= 1.0:
        raise ValueError(
            f"regularization.path_length_decay must lie in (0, 1] (StyleGAN2: 0.01), got {reg.path_length_decay!r}."
        )
    if not 0.0 <= reg.lecam_decay <= 1.0:
        raise ValueError(f"regularization.lecam_decay must lie in [0, 1], got {reg.lecam_decay!r}.")
    if reg.weight_clip and loss.name != "wasserstein":
        raise ValueError(
            f"Weight clipping enforces the Lipschitz constraint of the WGAN critic; it does not go with "
            f"loss {loss.name!r}. Use loss='wasserstein', or drop weight_clip."
        )
    if pack > 1 and (reg.gradient_penalty or reg.dragan or reg.bcr_real or reg.bcr_fake):
        raise ValueError(
            f"A packed D (pack={pack}) gives one logit per {pack} samples, so WGAN-GP's and DRAGAN's "
            "per-sample interpolates and bCR's per-sample consistency are undefined; use pack=1, drop the "
            "penalty, or use R1 / R2 (taken per packed tuple)."
        )
    if reg.ada_pipeline:
        from jaxgan import ada  # noqa: PLC0415 - the ADA pipeline only when asked for

        try:
            ada.pipeline(reg.ada_pipeline)
        except ValueError as e:
            raise ValueError(f"regularization.ada_pipeline: {e}") from None
        if sample_ndim != 3:
            raise ValueError(
                f"regularization.ada_pipeline={reg.ada_pipeline!r} augments images [H, W, C]; the samples have "
                f"{sample_ndim} dims. Drop it for non-image data."
            )
        if augment.parse_policy(reg.diff_augment):
            raise ValueError(
                f"regularization.ada_pipeline={reg.ada_pipeline!r} and diff_augment={reg.diff_augment!r} both "
                "augment D's inputs; use one of them."
            )
        if not 0.0 <= reg.ada_p <= 1.0:
            raise ValueError(f"regularization.ada_p must lie in [0, 1] (ADA starts at 0), got {reg.ada_p!r}.")
        if not 0.0 <= reg.ada_target < 1.0:
            raise ValueError(
                f"regularization.ada_target must lie in [0, 1) (paper: 0.6; 0 = a fixed p), got {reg.ada_target!r}."
            )
        if not reg.ada_kimg > 0:
            raise ValueError(f"regularization.ada_kimg must be > 0 (paper: 500), got {reg.ada_kimg!r}.")
    policies = {"diff_augment": reg.diff_augment}
    if reg.bcr_real or reg.bcr_fake:
        policies["bcr_policy"] = reg.bcr_policy
    for name, policy in policies.items():
        if augment.parse_policy(policy) and sample_ndim != 3:
            raise ValueError(
                f"regularization.{name}={policy!r} augments images [H, W, C]; the samples "
                f"have {sample_ndim} dims. Drop it for non-image data."
            )
    if reg.g_adversarial_weight == 0 and not (reg.feature_matching or reg.mode_seeking or reg.entropy):
        raise ValueError("g_adversarial_weight=0 leaves G without a loss; add feature_matching.")


def check_step_options(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    loss: Any,
    n_critic: Any,
    ema_decay: Any,
    critic_loop: str,
    num_discriminators: Any,
    d_aggregation: str,
    d_temperature: float,
    fake_labels: str,
    regularization: Regularization,
    n_gen: Any = 1,
) -> None:
    """The arguments of `make_train_step` that can be checked without tracing the networks."""
    if not isinstance(n_critic, (int, np.integer)) or isinstance(n_critic, bool) or n_critic < 1:
        raise ValueError(f"n_critic must be an int >= 1 (D updates per G update), got {n_critic!r}.")
    if not isinstance(n_gen, (int, np.integer)) or isinstance(n_gen, bool) or n_gen < 1:
        raise ValueError(f"n_gen must be an int >= 1 (G updates per step), got {n_gen!r}.")
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
            "both conditional on the same classes (or both unconditional)."
        )
    if regularization.replay_capacity and g_classes:
        raise ValueError(
            "The replay buffer stores past fakes without their class labels, so it cannot feed a "
            "conditional D; use replay_capacity=0 with num_classes > 0."
        )


def check_latent_codes(generator: nn.Module, discriminator: nn.Module, regularization: Regularization) -> None:
    """G's InfoGAN codes and D's Q head must match (Q predicts every code of each sample)."""
    codes = getattr(generator, "latent_codes", latent.LatentCodes())
    q_outputs = int(getattr(discriminator, "info_outputs", 0))
    if codes.q_outputs != q_outputs:
        want = (
            f"info_outputs={codes.q_outputs} (the codes' LatentCodes.q_outputs)"
            if codes
            else "info_outputs=0 (G has no latent codes)"
        )
        raise ValueError(
            f"G's InfoGAN codes {tuple(codes)} need a D whose Q head has {want}; the D has info_outputs={q_outputs}. "
            "Build both from the same codes (config.model.info_categorical / info_continuous)."
        )
    if codes and regularization.replay_capacity:
        raise ValueError(
            "The replay buffer stores past fakes without their InfoGAN codes, so Q could not be "
            "trained on them; use replay_capacity=0 with latent codes."
        )


def check_batch(
    batch: Mapping[str, Any],
    *,
    sample_shape: tuple[int, ...],
    n_critic: int,
    num_devices: int,
    num_classes: int = 0,
    pack: int = 1,
) -> None:
    """Validates a GLOBAL batch's layout, dtype and divisibility (see `jaxgan.train.steps`)."""
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
                "entry; use a labeled dataset, or an unconditional model (num_classes=0)."
            )
        labels = batch["label"]
        label_shape = tuple(labels.shape)
        if len(label_shape) == 1 and n_critic == 1:
            label_shape = (1, *label_shape)
        if label_shape != shape[:2] or not np.issubdtype(np.dtype(labels.dtype), np.integer):
            raise ValueError(
                f"batch['label'] has {np.dtype(labels.dtype)} shape {tuple(labels.shape)}; expected integer class "
                f"ids of shape {list(shape[:2])}, one per image."
            )
