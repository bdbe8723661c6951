"""Names, types and tiny pure helpers shared by every jaxgan module.

Imports jax and numpy only, so anything may import it.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

# The ONE mesh/pmap axis name over which the batch is split. Every collective in
# the step and every cross-replica BatchNorm uses it, so no collective can drift
# to another name.
DATA_AXIS = "data"

PRNGKey = jax.Array
Params = Any  # a pytree of arrays
Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


def tree_l2_norm(tree: Any) -> jax.Array:
    """Global L2 norm of all leaves of a pytree (float32 scalar)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def to_model_range(images_uint8: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1], the range every jaxgan G emits."""
    return images_uint8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images: jax.Array) -> jax.Array:
    """float [-1, 1] -> uint8 [0, 255], rounding and clipping."""
    return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
