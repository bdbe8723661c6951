"""The classic fully connected GAN of the tutorials (Goodfellow et al. 2014).

G maps a latent vector to a sample of any shape (a 2-D point, a flattened 28x28
image, ...); D maps a sample to one logit. Both take class labels when
`num_classes > 0` (the cGAN of Mirza & Osindero 2014, arXiv:1411.1784: the
label is concatenated to z, and its one-hot to D's flat input).

The 2-D mixture nets of VEEGAN and PacGAN (Lin et al. 2018, arXiv:1712.04086,
released `synthetic_data_experiments`) are options here: G with BatchNorm
before every hidden ReLU (`batch_norm`), D with maxout units (`maxout_pieces`;
Goodfellow et al. 2013, arXiv:1302.4389).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan import latent
from jaxgan.common import DATA_AXIS
from jaxgan.nets.conditioning import (
    DiscriminatorOptions,
    check_labels,
    concat_label_to_latent,
    d_layer,
    generator_latent,
    discriminator_head,
    discriminator_input,
)
from jaxgan.nets.layers import batch_norm, minibatch_stddev, scaled_width


class MLPGenerator(nn.Module):
    """Latent [B, latent_dim] (+ labels [B]) -> sample [B, *out_shape].

    Attributes:
      latent_dim: size of the latent vector z ~ N(0, I).
      out_shape: shape of one sample, e.g. (2,) for 2-D mixtures, (28, 28, 1).
      hidden: width of each hidden layer.
      depth: number of hidden layers.
      tanh_output: squash to [-1, 1] (images); off for unbounded data (points).
      num_classes: > 0 makes G class-conditional (labels required).
      label_embed_dim: 0 concatenates a one-hot of the label to z; > 0 a learned
        embedding of that size.
      batch_norm: BatchNorm between each hidden Dense (then bias-free) and its
        ReLU, as PacGAN's 2-D generator (Ioffe & Szegedy 2015); batch statistics
        in training (cross-replica over `bn_axis_name`), running ones otherwise.
      latent_codes: InfoGAN codes taken from the first coordinates of z (`jaxgan.latent`).
      bn_axis_name: the mapped axis BatchNorm averages over in training; None
        outside a mapped axis.
    """

    latent_dim: int = 64
    out_shape: tuple[int, ...] = (2,)
    hidden: int = 128
    depth: int = 2
    tanh_output: bool = False
    num_classes: int = 0
    label_embed_dim: int = 0
    batch_norm: bool = False
    latent_codes: latent.LatentCodes = latent.LatentCodes()
    bn_axis_name: str | None = DATA_AXIS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        check_labels(labels, batch_size=z.shape[0], num_classes=self.num_classes, who="MLPGenerator")
        z_in = generator_latent(z, self.latent_codes, latent_dim=self.latent_dim, who="MLPGenerator")
        h = concat_label_to_latent(
            z_in.astype(self.dtype),
            labels,
            num_classes=self.num_classes,
            embed_dim=self.label_embed_dim,
            dtype=self.dtype,
        )
        for _ in range(self.depth):
            h = nn.Dense(self.hidden, use_bias=not self.batch_norm, dtype=self.dtype)(h)
            if self.batch_norm:
                h = batch_norm(train, self.bn_axis_name, self.dtype)(h)
            h = nn.relu(h)
        h = nn.Dense(math.prod(self.out_shape), dtype=self.dtype)(h)
        if self.tanh_output:
            h = jnp.tanh(h)
        return h.astype(jnp.float32).reshape(z.shape[:-1] + tuple(self.out_shape))


class MLPDiscriminator(DiscriminatorOptions):
    """Sample [B, ...] (+ labels [B]) -> logits [B // pack], LeakyReLU(0.2) hidden layers.

    Attributes:
      hidden, depth: width and number of hidden layers (depth 0: a linear D).
      width_multiplier: scales `hidden` (the "weaken D" knob; see
        `jaxgan.nets.registry.D_CAPACITY_PRESETS`).
      spectral_norm: spectral normalization on every layer (Miyato et al. 2018,
        arXiv:1802.05957); its power-iteration vectors live in "batch_stats".
      num_classes, conditioning, aux_classifier: class conditioning ("concat":
        the one-hot appended to the flat input; "projection"; "none" with the
        ACGAN head); see `jaxgan.nets.conditioning`.
      maxout_pieces: > 0 makes every hidden layer a maxout unit: the max over
        that many linear pieces (PacGAN's 2-D D: 3 x 200 units, 5 pieces); 0 =
        Dense + LeakyReLU(0.2).
      minibatch_std, mbstd_group_size: append the minibatch std (Karras et al.
        2018) to the input of the last hidden layer (of the logit if depth 0).
      minibatch_discrimination, mbd_kernel_dim: number of minibatch
        discrimination kernels on the last hidden features (0 = off; Salimans et al. 2016).
      pack: PacGAN packing (Lin et al. 2018): `pack` consecutive samples are
        judged jointly, as one input of pack times the features.
      bn_axis_name: axis over which the spectral-norm power iterates are kept
        replicated in training; set None to train outside a mapped axis.

    Sows "features" (the last hidden layer's output) and, with aux_classifier,
    "class_logits" into "intermediates".
    """

    hidden: int = 128
    depth: int = 2
    maxout_pieces: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = True) -> jax.Array:
        if self.depth < 0:
            raise ValueError(f"MLPDiscriminator: depth must be >= 0 hidden layers, got {self.depth}.")
        if self.maxout_pieces < 0 or self.maxout_pieces == 1:
            raise ValueError(f"MLPDiscriminator: maxout_pieces={self.maxout_pieces}; use 0 (LeakyReLU) or >= 2.")
        h = discriminator_input(self, x.reshape(x.shape[0], -1), labels)
        width = scaled_width(self.hidden, self.width_multiplier)
        layer = lambda lyr, h: d_layer(self, lyr, h, train)
        for i in range(self.depth):
            if self.minibatch_std and i == self.depth - 1:
                h = minibatch_stddev(h, group_size=self.mbstd_group_size)
            if self.maxout_pieces:
                h = layer(nn.Dense(width * self.maxout_pieces, dtype=self.dtype, name=f"hidden{i}"), h)
                h = h.reshape(h.shape[0], width, self.maxout_pieces).max(axis=-1)
            else:
                h = nn.leaky_relu(layer(nn.Dense(width, dtype=self.dtype, name=f"hidden{i}"), h), 0.2)
        if self.minibatch_std and self.depth == 0:
            h = minibatch_stddev(h, group_size=self.mbstd_group_size)
        return discriminator_head(self, h, labels, train=train)
