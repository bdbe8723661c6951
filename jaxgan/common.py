"""Names, types and tiny pure helpers shared by every jaxgan module.

Imports jax and numpy only, so anything may import it.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

# The ONE mesh/pmap axis name over which the batch is split. Every collective in
# the step and every cross-replica BatchNorm uses it, so no collective can drift
# to another name.
DATA_AXIS = "data"

PRNGKey = jax.Array
Params = Any  # a pytree of arrays
Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


def to_model_range(images: Any) -> Any:
    """uint8 [0, 255] -> float32 [-1, 1] as x / 127.5 - 1, the range every jaxgan G
    emits. Works on numpy and jax arrays alike (numpy in, numpy out)."""
    if images.dtype != np.uint8:
        raise TypeError(f"to_model_range expects uint8 images in [0, 255], got {images.dtype}.")
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def to_uint8(images: jax.Array) -> jax.Array:
    """float [-1, 1] -> uint8 [0, 255], rounding and clipping."""
    return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def process_batch_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """The rows of the global batch that process `process_index` loads.

    Processes hold contiguous, equal blocks in process order, matching the device
    order of a mesh over jax.devices() (which lists devices process by process).
    """
    if global_batch_size < 1 or process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"Need global_batch_size >= 1, process_count >= 1 and 0 <= process_index < process_count; got "
            f"{global_batch_size}, {process_count}, {process_index}."
        )
    if global_batch_size % process_count:
        raise ValueError(
            f"The global batch size {global_batch_size} is not divisible by the process count "
            f"{process_count}; use a multiple of {process_count}."
        )
    per_process = global_batch_size // process_count
    return slice(process_index * per_process, (process_index + 1) * per_process)


def check_reading_options(*, worker_count: int = 0, num_threads: int = 1, prefetch: int = 1) -> None:
    """A one-line ValueError naming a bad input-reading option (`jaxgan.data.stream`; config checks call it
    before anything is read)."""
    for name, value, lowest in (
        ("worker_count", worker_count, 0),
        ("num_threads", num_threads, 1),
        ("prefetch", prefetch, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{name}={value!r} must be an int >= {lowest}.")
