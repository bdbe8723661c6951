"""The GAN step's random keys, named, and the per-example draws made from them.

Every draw of step s comes from k = fold_in(state.rng, s). Each named key below is
fold_in(parent, i) with a fixed integer i per use (the NamedTuple field's position,
unless said otherwise), so no key is used twice and a draw never moves when code
around it changes:

  StepKeys(k):           critic = split(fold_in(k, 0), n_critic), generator = fold_in(k, 1);
                         G update j >= 1 of n_gen: fold_in(k, 1 + j)
  CriticKeys(u):         latents 0, labels 1, replay 2, examples 3, r1 4    (u: one D update's key)
  GeneratorKeys(g):      latents 0, labels 1, examples 2, latents2 3, path_length 4   (g: StepKeys.generator)
  PathLengthKeys(p):     latents 0, labels 1, noise 2         (p: GeneratorKeys.path_length)

Per-example keys fold the example's index i in the GLOBAL batch into `examples`
(`example_keys`), so the result does not depend on how many devices share the batch;
each use then folds its own integer into every example's key (`fold_each`):

  CriticExampleKeys:     real_inputs (0, 0), fake_inputs (0, 1), gradient_penalty (1, 0),
                         dragan (1, 1), bcr_real (1, 2), bcr_fake (1, 3)
  GeneratorExampleKeys:  real_inputs 0, fake_inputs 1
  InputKeys (of D's inputs): diff_augment 0, instance_noise 1, ada 2
  lazy R1's D inputs (ADA): InputKeys of example_keys(CriticKeys(last D update).r1, indices)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


def _folds(key: jax.Array, n: int) -> list[jax.Array]:
    return [jax.random.fold_in(key, i) for i in range(n)]


def fold_each(keys: jax.Array, data: int) -> jax.Array:
    """fold_in(key, data) for each of a batch of keys: the next level of per-example keys."""
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def example_keys(key: jax.Array, example_indices: jax.Array) -> jax.Array:
    """One key per example of the global batch: fold_in(key, i)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(example_indices)


def global_example_indices(local_batch_size: int, axis_name: str) -> jax.Array:
    """Indices in the global batch of this device's examples (contiguous shards)."""
    return jax.lax.axis_index(axis_name) * local_batch_size + jnp.arange(local_batch_size)


def per_example(fn: Callable[[jax.Array, jax.Array], jax.Array], keys: jax.Array, x: jax.Array) -> jax.Array:
    """Applies a batched random op `fn(key, x[B, ...])` to each example with its own key."""
    return jax.vmap(lambda k, xi: fn(k, xi[None])[0])(keys, x)


def sample_latents(key: jax.Array, example_indices: jax.Array, latent_dim: int) -> jax.Array:
    """z ~ N(0, I) per example, keyed by the example's index in the global batch."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (latent_dim,)))(example_indices)


def sample_labels(key: jax.Array, example_indices: jax.Array, num_classes: int) -> jax.Array:
    """Uniform class ids for G's samples, keyed by the global example index."""
    return jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0, num_classes))(
        example_indices
    ).astype(jnp.int32)


class StepKeys(NamedTuple):
    """One train step's keys: one per D update and one per G update."""

    critic: jax.Array  # [n_critic] keys, D update j uses critic[j]
    generator: jax.Array  # the first G update's
    more_generators: tuple[jax.Array, ...] = ()  # G update j = 1 .. n_gen - 1: fold_in(step key, 1 + j)

    @classmethod
    def of(cls, rng: jax.Array, step: jax.Array, n_critic: int, n_gen: int = 1) -> StepKeys:
        key = jax.random.fold_in(rng, step)
        return cls(
            critic=jax.random.split(jax.random.fold_in(key, 0), n_critic),
            generator=jax.random.fold_in(key, 1),
            more_generators=tuple(jax.random.fold_in(key, 2 + i) for i in range(n_gen - 1)),
        )

    @property
    def generators(self) -> tuple[jax.Array, ...]:
        """The keys of the G updates, in order."""
        return (self.generator, *self.more_generators)


class CriticKeys(NamedTuple):
    """One D update's keys: fold_in(update key, field position)."""

    latents: jax.Array  # z of the fakes
    labels: jax.Array  # a conditional G's class ids
    replay: jax.Array  # the replay buffer's draws
    examples: jax.Array  # per-example keys (`CriticExampleKeys`)
    r1: jax.Array  # lazy R1's per-example keys of D's inputs (the last D update's)

    @classmethod
    def of(cls, key: jax.Array) -> CriticKeys:
        return cls(*_folds(key, len(cls._fields)))


class GeneratorKeys(NamedTuple):
    """The G update's keys: fold_in(G key, field position)."""

    latents: jax.Array
    labels: jax.Array
    examples: jax.Array  # per-example keys (`GeneratorExampleKeys`)
    latents2: jax.Array  # MSGAN's second latents
    path_length: jax.Array  # StyleGAN2's lazy path length update (`PathLengthKeys`)

    @classmethod
    def of(cls, key: jax.Array) -> GeneratorKeys:
        return cls(*_folds(key, len(cls._fields)))


class PathLengthKeys(NamedTuple):
    """The lazy path length update's keys: its latents, labels and image-space noise y, each drawn per example
    of its own (shrunk) global batch."""

    latents: jax.Array
    labels: jax.Array
    noise: jax.Array

    @classmethod
    def of(cls, key: jax.Array) -> PathLengthKeys:
        return cls(*_folds(key, len(cls._fields)))


class CriticExampleKeys(NamedTuple):
    """A D update's per-example keys [B]: D's inputs under fold 0, the penalties' points under fold 1."""

    real_inputs: jax.Array
    fake_inputs: jax.Array
    gradient_penalty: jax.Array  # WGAN-GP's interpolation weights
    dragan: jax.Array  # DRAGAN's perturbations
    bcr_real: jax.Array  # bCR's augmentations of the reals
    bcr_fake: jax.Array  # and of the fakes

    @classmethod
    def of(cls, key: jax.Array, example_indices: jax.Array) -> CriticExampleKeys:
        keys = example_keys(key, example_indices)
        inputs, penalties = fold_each(keys, 0), fold_each(keys, 1)
        return cls(fold_each(inputs, 0), fold_each(inputs, 1), *(fold_each(penalties, i) for i in range(4)))


class GeneratorExampleKeys(NamedTuple):
    """The G update's per-example keys [B] for D's inputs."""

    real_inputs: jax.Array
    fake_inputs: jax.Array

    @classmethod
    def of(cls, key: jax.Array, example_indices: jax.Array) -> GeneratorExampleKeys:
        keys = example_keys(key, example_indices)
        return cls(*(fold_each(keys, i) for i in range(len(cls._fields))))


class InputKeys(NamedTuple):
    """Per-example keys [B] of what D sees of a batch (`GANStep._d_inputs`)."""

    diff_augment: jax.Array
    instance_noise: jax.Array
    ada: jax.Array

    @classmethod
    def of(cls, keys: jax.Array) -> InputKeys:
        return cls(*(fold_each(keys, i) for i in range(len(cls._fields))))
