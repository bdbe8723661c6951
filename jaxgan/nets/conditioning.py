"""Class conditioning shared by the architectures, and the common D head.

Labels are int32 class ids [B]. A net with `num_classes > 0` needs them, one
with `num_classes == 0` refuses them (`check_labels`), so a missing or stray
label fails loudly instead of being silently ignored.

- Concatenation (Mirza & Osindero 2014, arXiv:1411.1784): G gets a one-hot
  (or learned embedding) next to z, D gets one-hot maps as extra input channels
  (or features, for flat samples).
- Conditional BatchNorm (de Vries et al. 2017, arXiv:1707.00683; Miyato & Koyama
  2018, arXiv:1802.05637): per-class gamma and beta on a BatchNorm without its own.
- Projection (Miyato & Koyama 2018): logit = psi(phi(x)) + <embed(y), phi(x)>.
- Auxiliary classifier (Odena, Olah & Shlens 2017, arXiv:1610.09585): a class
  head on phi(x), sown as "class_logits".
- InfoGAN's Q head (Chen et al. 2016, arXiv:1606.03657): the codes of each
  sample (`jaxgan.latent`) predicted from phi(x), sown as "info_outputs"; G's
  side is `generator_latent`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import latent
from jaxgan.common import DATA_AXIS
from jaxgan.nets.layers import MinibatchDiscrimination, apply_layer, batch_norm, pack_samples

# How D uses the labels: concatenated to its input, through the projection term,
# or not at all in the logit (an ACGAN D, whose labels feed only the class head).
D_CONDITIONINGS = ("concat", "projection", "none")


def check_labels(labels: jax.Array | None, *, batch_size: int, num_classes: int, who: str) -> None:
    """Raises a ValueError naming the problem unless the labels fit `num_classes`."""
    if num_classes < 0:
        raise ValueError(f"{who}: num_classes must be >= 0 (0 = unconditional), got {num_classes}.")
    if num_classes == 0:
        if labels is not None:
            raise ValueError(f"{who} is unconditional (num_classes=0) but got labels; drop them or set num_classes.")
        return
    if labels is None:
        raise ValueError(
            f"{who} is class-conditional (num_classes={num_classes}) and needs labels: call it as "
            f"module(x, labels) with int32 class ids of shape [{batch_size}]."
        )
    if labels.shape != (batch_size,) or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{who}: labels must be integer class ids of shape [{batch_size}] (one per sample), got "
            f"{labels.dtype}{list(labels.shape)}; pass class ids, not one-hot vectors."
        )


def check_d_conditioning(
    *,
    num_classes: int,
    conditioning: str,
    aux_classifier: bool,
    pack: int,
    who: str,
    projection_dim: int = 0,
    embed_spectral_norm: bool = True,
    spectral_norm: bool = False,
) -> None:
    """Validates a discriminator's conditioning options together."""
    if conditioning not in D_CONDITIONINGS:
        raise ValueError(f"{who}: unknown conditioning {conditioning!r}; valid: {D_CONDITIONINGS}.")
    if not isinstance(projection_dim, int) or projection_dim < 0:
        raise ValueError(
            f"{who}: projection_dim must be an int >= 0 (0 = project onto phi itself), got {projection_dim!r}."
        )
    if not embed_spectral_norm and not (spectral_norm and num_classes > 0 and conditioning == "projection"):
        raise ValueError(
            f"{who}: embed_spectral_norm=False exempts a spectrally normalized projection D's class "
            f"embedding, but this D has spectral_norm={spectral_norm}, num_classes={num_classes}, "
            f"conditioning={conditioning!r}; leave embed_spectral_norm=True."
        )
    if projection_dim and not (num_classes > 0 and conditioning == "projection"):
        raise ValueError(
            f"{who}: projection_dim={projection_dim} sizes the projection term's class embedding, "
            f"but this D has num_classes={num_classes}, conditioning={conditioning!r}; set "
            "projection_dim=0 or use conditioning='projection' with num_classes > 0."
        )
    if num_classes == 0 and aux_classifier:
        raise ValueError(f"{who}: aux_classifier=True needs num_classes > 0 (the classes it predicts).")
    if num_classes > 0 and conditioning == "none" and not aux_classifier:
        raise ValueError(
            f"{who}: conditioning='none' with num_classes={num_classes} would ignore the labels; use "
            "'concat' or 'projection', or aux_classifier=True (ACGAN)."
        )
    if pack > 1 and num_classes > 0 and (conditioning == "projection" or aux_classifier):
        raise ValueError(
            f"{who}: pack={pack} joins samples of different classes into one D input, so a per-sample "
            "projection term or class head is undefined; use conditioning='concat' without aux_classifier, or pack=1."
        )


def one_hot(labels: jax.Array, num_classes: int, dtype: Any) -> jax.Array:
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def concat_label_maps(x: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
    """[B, ..., C] -> [B, ..., C + num_classes]: the one-hot broadcast to every
    position (Mirza & Osindero 2014's conditional D input). Identity when unconditional."""
    if num_classes == 0:
        return x
    y = one_hot(labels, num_classes, x.dtype).reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (num_classes,))
    return jnp.concatenate([x, jnp.broadcast_to(y, x.shape[:-1] + (num_classes,))], axis=-1)


def concat_label_to_latent(
    z: jax.Array, labels: jax.Array | None, *, num_classes: int, embed_dim: int, dtype: Any
) -> jax.Array:
    """[B, L] -> [B, L + K]: z next to a one-hot (embed_dim=0, K = num_classes)
    or a learned embedding (K = embed_dim) of the label (Mirza & Osindero 2014)."""
    if num_classes == 0:
        return z
    if embed_dim < 0:
        raise ValueError(f"label_embed_dim must be >= 0 (0 = one-hot), got {embed_dim}.")
    if embed_dim == 0:
        code = one_hot(labels, num_classes, z.dtype)
    else:
        code = nn.Embed(num_classes, embed_dim, dtype=dtype, name="label_embed")(labels).astype(z.dtype)
    return jnp.concatenate([z, code], axis=-1)


def generator_latent(z: jax.Array, codes: latent.LatentCodes, *, latent_dim: int, who: str) -> jax.Array:
    """z [B, latent_dim] -> G's input: with InfoGAN codes, the noise next to the codes it encodes
    (`jaxgan.latent.generator_input`); unchanged without."""
    if not codes:
        return z
    if z.ndim != 2 or z.shape[-1] != latent_dim:
        raise ValueError(f"{who} with InfoGAN codes expects latents [B, {latent_dim}], got shape {tuple(z.shape)}.")
    latent.make_codes(*codes, latent_dim=latent_dim)
    return latent.generator_input(z, codes)


def _affine_free_batch_norm(owner: nn.Module, x: jax.Array, *, train: bool) -> jax.Array:
    """BatchNorm without scale and shift, as the conditional BatchNorms' submodule "bn" (called inside
    `owner`'s compact method; its momentum, epsilon, axis_name and dtype)."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=owner.momentum,
        epsilon=owner.epsilon,
        use_scale=False,
        use_bias=False,
        axis_name=owner.axis_name if train else None,
        dtype=owner.dtype,
        name="bn",
    )(x)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm with per-class scale and shift: gamma[y] * BN(x) + beta[y].

    de Vries, Strub, Mary, Larochelle, Pietquin & Courville 2017 (arXiv:1707.00683),
    as used by the projection-D generator (Miyato & Koyama 2018, arXiv:1802.05637):
    the BatchNorm has no scale/bias of its own; gamma and beta are class
    embeddings initialised to 1 and 0, so at init it is a plain BatchNorm.
    Statistics are cross-replica over `axis_name` in training.
    """

    num_classes: int
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array, *, train: bool) -> jax.Array:
        h = _affine_free_batch_norm(self, x, train=train)
        c = x.shape[-1]
        gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones, name="gamma")(labels)
        beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros, name="beta")(labels)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        return h * gamma.reshape(shape).astype(h.dtype) + beta.reshape(shape).astype(h.dtype)


class VectorConditionalBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are linear in a conditioning vector: (1 + c W_gain) * BN(x) + c W_bias.

    BigGAN's `ccbn` (Brock, Donahue & Simonyan 2019, arXiv:1809.11096, sec. 3 and appendix B): c is the
    shared class embedding concatenated with the block's chunk of z (hierarchical latent), or either alone;
    the two maps have no bias, so with c = 0 (or W = 0, their init) it is a plain BatchNorm. Statistics are
    cross-replica over `axis_name` in training.
    """

    momentum: float = 0.9
    epsilon: float = 1e-5
    spectral_norm: bool = False  # on both maps (BigGAN's G: SNLinear)
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array, *, train: bool) -> jax.Array:
        h = _affine_free_batch_norm(self, x, train=train)
        c = x.shape[-1]

        def linear(name):
            layer = nn.Dense(c, use_bias=False, kernel_init=nn.initializers.zeros, dtype=self.dtype, name=name)
            return apply_layer(
                layer, cond.astype(self.dtype), spectral_norm=self.spectral_norm, train=train, axis_name=self.axis_name
            )

        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        gain = 1.0 + linear("gain").reshape(shape)
        bias = linear("bias").reshape(shape)
        return h * gain.astype(h.dtype) + bias.astype(h.dtype)


def class_batch_norm(
    h: jax.Array,
    labels: jax.Array | None,
    *,
    num_classes: int,
    train: bool,
    axis_name: str | None,
    dtype: Any,
    name: str | None = None,
) -> jax.Array:
    """Cross-replica BatchNorm (momentum 0.9, eps 1e-5); class-conditional (`ConditionalBatchNorm`) when
    num_classes > 0. Call it inside a compact method."""
    if num_classes:
        return ConditionalBatchNorm(num_classes, axis_name=axis_name, dtype=dtype, name=name)(h, labels, train=train)
    return batch_norm(train, axis_name, dtype, name)(h)


class DiscriminatorOptions(nn.Module):
    """The options every jaxgan discriminator shares; the architectures subclass it.

    width_multiplier scales the widths (the "weaken D" knob); spectral_norm on
    every layer (Miyato et al. 2018; power iterates in "batch_stats"); class
    conditioning (`D_CONDITIONINGS`, aux_classifier); InfoGAN's Q head with
    `info_outputs` outputs per sample (`jaxgan.latent.LatentCodes.q_outputs`;
    Chen et al. 2016); minibatch std (Karras et al.
    2018) and minibatch discrimination (Salimans et al. 2016); PacGAN `pack`
    (Lin et al. 2018); `projection_dim` > 0 factorizes the projection term's
    class embedding through a learned map of phi to that many features (for
    thousands of classes); `embed_spectral_norm=False` leaves the projection's
    class embedding out of the spectral norm (see `discriminator_head`);
    `bn_axis_name`, the cross-replica axis of BatchNorm and of
    spectral norm's power iterates in training (None outside a mapped axis).
    """

    width_multiplier: float = 1.0
    spectral_norm: bool = False
    num_classes: int = 0
    conditioning: str = "concat"
    projection_dim: int = 0
    embed_spectral_norm: bool = True
    aux_classifier: bool = False
    info_outputs: int = 0
    minibatch_std: bool = False
    mbstd_group_size: int = 4
    minibatch_discrimination: int = 0
    mbd_kernel_dim: int = 5
    pack: int = 1
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32


def d_layer(module: DiscriminatorOptions, layer: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    """`layer(x)` inside D `module`, spectrally normalized when the D is. (A function, not a
    method: Flax lets only the compact `__call__` create the spectral-norm wrapper.)"""
    return apply_layer(layer, x, spectral_norm=module.spectral_norm, train=train, axis_name=module.bn_axis_name)


def discriminator_head(
    module: DiscriminatorOptions, phi: jax.Array, labels: jax.Array | None, *, train: bool
) -> jax.Array:
    """phi [B, F] (the penultimate features) -> logits [B] float32.

    Call it from the discriminator's compact `__call__` with the discriminator as
    `module`: the head's layers ("mbd", "logit", "embed", "classifier") are
    created in its scope and the intermediates are sown there.

    Sows phi as "features" (float32; for feature matching, Salimans et al. 2016), then:
    minibatch discrimination on phi if enabled (Salimans et al. 2016 sec. 3.2),
    a linear logit, the projection term <embed(y), phi> (Miyato & Koyama 2018,
    eq. 3) when conditioning == "projection" (with projection_dim > 0,
    <embed(y), W phi>: their V = embed W of rank projection_dim, so that the
    per-class table and its optimizer state are num_classes x projection_dim
    rather than num_classes x |phi|), the ACGAN class head on phi,
    sown as "class_logits" (Odena et al. 2017), and InfoGAN's Q head, sown as
    "info_outputs" [B * pack, info_outputs] (one row per sample, also in a
    packed D): a hidden layer of 128 LeakyReLU(0.2) units, then a linear layer
    (Chen et al. 2016, appendix C, without its BatchNorm).

    A spectrally normalized D normalizes the class embedding [K, d] as a whole
    (SNEmbedID). That bounds its mean squared row norm by min(K, d) / K, so with
    K >> d classes every class's term shrinks (d = 128, K = 10,000: root mean
    square row norm <= 0.11); `embed_spectral_norm=False` keeps the raw rows.
    """
    layer = lambda lyr, x: d_layer(module, lyr, x, train)
    num_classes, dtype = module.num_classes, module.dtype
    phi = phi.astype(dtype)
    module.sow("intermediates", "features", phi.astype(jnp.float32))
    h = phi
    if module.minibatch_discrimination:
        h = layer(
            MinibatchDiscrimination(module.minibatch_discrimination, module.mbd_kernel_dim, dtype=dtype, name="mbd"), h
        )
    logits = layer(nn.Dense(1, dtype=dtype, name="logit"), h)[:, 0].astype(jnp.float32)
    if num_classes and module.conditioning == "projection":
        projected = phi
        if module.projection_dim:
            projected = layer(nn.Dense(module.projection_dim, use_bias=False, dtype=dtype, name="projection"), phi)
        embed = nn.Embed(
            num_classes, projected.shape[-1], embedding_init=nn.initializers.xavier_uniform(), name="embed"
        )
        # Spectral norm on the class embedding too, as in Miyato & Koyama's SNEmbedID, unless turned off.
        e = layer(embed, labels) if module.embed_spectral_norm else embed(labels)
        logits = logits + jnp.sum(e.astype(jnp.float32) * projected.astype(jnp.float32), axis=-1)
    if module.aux_classifier:
        class_logits = layer(nn.Dense(num_classes, dtype=dtype, name="classifier"), phi)
        module.sow("intermediates", "class_logits", class_logits.astype(jnp.float32))
    if module.info_outputs:
        q = nn.leaky_relu(layer(nn.Dense(128, dtype=dtype, name="q_hidden"), phi), 0.2)
        q = layer(nn.Dense(module.pack * module.info_outputs, dtype=dtype, name="q_out"), q)
        module.sow("intermediates", "info_outputs", q.reshape(-1, module.info_outputs).astype(jnp.float32))
    return logits


def discriminator_input(module: DiscriminatorOptions, x: jax.Array, labels: jax.Array | None) -> jax.Array:
    """Validates a D's options and labels, then [B, ..., C] -> its first layer's input:
    one-hot label maps appended (conditioning == "concat"), then PacGAN packing
    to [B // pack, ..., pack * C'] (each packed sample carries its own label maps)."""
    who = type(module).__name__
    check_d_conditioning(
        num_classes=module.num_classes,
        conditioning=module.conditioning,
        aux_classifier=module.aux_classifier,
        pack=module.pack,
        who=who,
        projection_dim=module.projection_dim,
        embed_spectral_norm=module.embed_spectral_norm,
        spectral_norm=module.spectral_norm,
    )
    check_labels(labels, batch_size=x.shape[0], num_classes=module.num_classes, who=who)
    h = x.astype(module.dtype)
    if module.conditioning == "concat":
        h = concat_label_maps(h, labels, module.num_classes)
    return pack_samples(h, module.pack)
