"""InfoGAN's latent codes (Chen et al. 2016, arXiv:1606.03657) as a function of z ~ N(0, I).

InfoGAN gives G, besides the noise, latent codes c: categorical codes c_k ~
Cat(K_k) (uniform) and continuous codes c_j ~ U(-1, 1), and a head Q on D that
recovers c from G(z, c); maximizing the variational lower bound on the mutual
information I(c; G(z, c)) (their eq. 5) makes each code control a factor of
the samples. Here the codes are deterministic transforms of the first
coordinates of a standard-normal z, through the normal CDF Phi:

    categorical c_k = min(floor(K_k * Phi(z_k)), K_k - 1)     (uniform on 0..K_k-1)
    continuous  c_j = 2 * Phi(z_j) - 1                          (uniform on (-1, 1))

so the codes have exactly InfoGAN's priors while every jaxgan sampler keeps
drawing z ~ N(0, I) of `latent_dim` (sample i of a seed stays a function of
(seed, i); `tools/sample.py` and the evaluators need no change). G's input is
the remaining noise coordinates next to the one-hot categorical codes and the
continuous codes (`generator_input`); the train step reads the same codes back
from z as Q's targets (`codes_from_latent`). `latent_with_codes` does the
inverse: it sets the code coordinates so that chosen codes come out, for code
traversals.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri


class LatentCodes(NamedTuple):
    """InfoGAN codes: `categorical` sizes K_k (each >= 2) and the number of U(-1, 1) `continuous` codes."""

    categorical: tuple[int, ...] = ()
    continuous: int = 0

    @property
    def num_coordinates(self) -> int:
        """Coordinates of z the codes take (one per code)."""
        return len(self.categorical) + self.continuous

    @property
    def q_outputs(self) -> int:
        """Outputs of D's Q head per sample: logits of every categorical code, then the continuous means."""
        return sum(self.categorical) + self.continuous

    def __bool__(self) -> bool:
        return self.num_coordinates > 0


def make_codes(categorical: Sequence[int] = (), continuous: int = 0, *, latent_dim: int | None = None) -> LatentCodes:
    """A validated LatentCodes; with `latent_dim`, also checks that z leaves at least one noise coordinate."""
    categorical = tuple(categorical)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 2 for k in categorical):
        raise ValueError(f"InfoGAN categorical codes need sizes >= 2 (ints), got {categorical!r}.")
    if isinstance(continuous, bool) or not isinstance(continuous, int) or continuous < 0:
        raise ValueError(f"The number of continuous InfoGAN codes must be an int >= 0, got {continuous!r}.")
    codes = LatentCodes(categorical, continuous)
    if latent_dim is not None and codes and latent_dim <= codes.num_coordinates:
        raise ValueError(
            f"latent_dim={latent_dim} leaves no noise next to {codes.num_coordinates} InfoGAN codes (each code takes "
            f"one coordinate of z); raise latent_dim above {codes.num_coordinates}."
        )
    return codes


def codes_from_latent(z: jax.Array, codes: LatentCodes) -> tuple[jax.Array, jax.Array]:
    """z [B, L] -> (categorical ids int32 [B, len(categorical)], continuous float32 [B, continuous])."""
    n_cat = len(codes.categorical)
    u = ndtr(z[:, : codes.num_coordinates].astype(jnp.float32))
    sizes = jnp.asarray(codes.categorical, jnp.float32)
    ids = jnp.minimum(jnp.floor(u[:, :n_cat] * sizes), sizes - 1).astype(jnp.int32)
    return ids, 2.0 * u[:, n_cat:] - 1.0


def generator_input(z: jax.Array, codes: LatentCodes) -> jax.Array:
    """z [B, L] -> [B, L - n + sum(K) + continuous]: the noise coordinates, the one-hot categorical codes and
    the continuous codes (n = codes.num_coordinates). Identity without codes."""
    if not codes:
        return z
    ids, continuous = codes_from_latent(z, codes)
    one_hots = [jax.nn.one_hot(ids[:, k], size, dtype=z.dtype) for k, size in enumerate(codes.categorical)]
    return jnp.concatenate([z[:, codes.num_coordinates :], *one_hots, continuous.astype(z.dtype)], axis=-1)


def latent_with_codes(
    z: jax.Array, codes: LatentCodes, categorical: jax.Array | None = None, continuous: jax.Array | None = None
) -> jax.Array:
    """z with its code coordinates set so that `codes_from_latent` returns the given codes.

    `categorical`: int [B, len(categorical)] (each in 0..K_k-1) or None to keep z's;
    `continuous`: float [B, continuous] in (-1, 1) or None to keep z's. The noise is untouched.
    """
    n_cat = len(codes.categorical)
    z = jnp.asarray(z, jnp.float32)
    if categorical is not None:
        sizes = jnp.asarray(codes.categorical, jnp.float32)
        z = z.at[:, :n_cat].set(ndtri((jnp.asarray(categorical, jnp.float32) + 0.5) / sizes))
    if continuous is not None:
        c = jnp.clip(jnp.asarray(continuous, jnp.float32), -1 + 1e-6, 1 - 1e-6)
        z = z.at[:, n_cat : codes.num_coordinates].set(ndtri((c + 1.0) / 2.0))
    return z
