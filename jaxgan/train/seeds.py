"""Many seeds of one small GAN at once: `jax.vmap` over a seed axis of K steps in a `lax.scan`.

Benchmarks such as the 2-D mode-collapse tables (VEEGAN, Srivastava et al.
2017; PacGAN, Lin et al. 2018) train the same tiny MLP GAN for hundreds of
thousands of steps with ten seeds. One step is far shorter than its dispatch,
so `multi_seed_steps` compiles K steps of S independent runs into ONE call:
the step is unchanged (the same pure `GANStep`, its axis bound by a `shard_map`
over a mesh whose data axis has one device), the S states are stacked on a
leading axis and vmapped (or mapped), and the K steps run in a scan. Each run
reads its own data array through the row indices of its batches, so seed s
trains exactly what a single-seed run of the loop with that seed's data and
batch order trains. Given several devices, the seeds are split over them
(`SEED_AXIS`), each device running its share: on a CPU with one host device
per core (`--xla_force_host_platform_device_count`), seeds train in parallel
on the cores, where a tiny step's ops are too small to use two cores each.

This module imports no I/O.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan.common import DATA_AXIS, Metrics
from jaxgan.state import GANTrainState
from jaxgan.train.steps import GANStep

MultiSeedStep = Callable[[GANTrainState, dict[str, jax.Array], jax.Array], tuple[GANTrainState, Metrics]]


def stack_trees(trees: Sequence[Any]) -> Any:
    """[tree_0, ..., tree_{S-1}] -> one tree whose leaves have a leading axis S."""
    if not trees:
        raise ValueError("stack_trees needs at least one tree.")
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def tree_index(tree: Any, i: int) -> Any:
    """Entry i of every leaf's leading axis (one seed's state out of a stacked one)."""
    return jax.tree_util.tree_map(lambda leaf: leaf[i], tree)


SEED_LOOPS = ("auto", "vmap", "map")
SEED_AXIS = "seeds"  # the mesh axis the seeds are split over


def seed_devices(num_seeds: int, devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The most of `devices` (default: this process's devices) that split `num_seeds` seeds evenly:
    the first n devices, n the largest count <= len(devices) that divides num_seeds."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}.")
    devices = list(devices if devices is not None else jax.local_devices())
    n = max(k for k in range(1, len(devices) + 1) if num_seeds % k == 0)
    return devices[:n]


def multi_seed_steps(
    step: GANStep, *, devices: Sequence[jax.Device] | None = None, unroll: int = 1, seed_loop: str = "auto"
) -> MultiSeedStep:
    """The jitted `(states, data, indices) -> (states, metrics)` that runs K steps of S seeds.

    Args:
      step: the pure train step (`make_train_step`); one seed's state must fit one device.
      devices: the devices the seeds are split over, S / len(devices) seeds each
        (S must be a multiple; `seed_devices` picks them); default: the first device.
      unroll: steps per scan iteration (`lax.scan(unroll=...)`); XLA:CPU runs a
        scan body several times slower than the same ops outside a loop, and
        unrolling trades compile time for that speed.
      seed_loop: "vmap" (the seeds batched into each op: fast on accelerators),
        "map" (`lax.map`, one seed after the other inside the call: on XLA:CPU
        the vmapped MLP step is slower per seed than one seed at a time; see
        experiments/results/step_loop_cpu/README.md) or "auto" (map on CPU,
        vmap elsewhere). Same results.

    The returned function takes
      states: S states stacked on a leading axis (`stack_trees`), donated;
      data: {"image": [S, N, *sample_shape]} (and "label" [S, N] for conditional
        models): each seed's training examples, float32 in the model's range;
      indices: int [S, K, n_critic, B]: the rows of step k's D update j;
    and returns the states after K steps and the metrics, [S, K] per name.
    """
    devices = list(devices) if devices is not None else [jax.devices()[0]]
    if not devices:
        raise ValueError("multi_seed_steps needs at least one device.")
    mesh = Mesh(np.asarray(devices).reshape(len(devices), 1), (SEED_AXIS, DATA_AXIS))
    keys = step.batch_keys

    def one_seed(state: GANTrainState, data: dict[str, jax.Array], indices: jax.Array):
        batches = {k: data[k][indices] for k in keys}  # [K, n_critic, B, ...]
        return jax.lax.scan(step, state, batches, unroll=unroll)

    if seed_loop not in SEED_LOOPS:
        raise ValueError(f"seed_loop={seed_loop!r}; valid: {SEED_LOOPS}.")
    if seed_loop == "auto":
        seed_loop = "map" if mesh.devices.flat[0].platform == "cpu" else "vmap"
    over_seeds = jax.vmap(one_seed) if seed_loop == "vmap" else (lambda *a: jax.lax.map(lambda x: one_seed(*x), a))
    split = P(SEED_AXIS)  # each device holds its seeds' states, data and indices
    mapped = jax.shard_map(over_seeds, mesh=mesh, in_specs=(split, split, split), out_specs=(split, split))
    compiled = jax.jit(mapped, donate_argnums=0)
    # Inputs placed as the outputs come back, so the second call does not compile again.
    place = lambda tree: jax.device_put(tree, NamedSharding(mesh, split))

    def run(states: GANTrainState, data: dict[str, Any], indices: Any) -> tuple[GANTrainState, Metrics]:
        indices = np.asarray(indices)
        num_seeds = int(np.shape(states.step)[0]) if np.ndim(states.step) == 1 else None
        if num_seeds is None:
            raise ValueError("states must be stacked on a leading seed axis (jaxgan.train.seeds.stack_trees).")
        if num_seeds % len(devices):
            raise ValueError(
                f"{num_seeds} seeds do not split evenly over {len(devices)} devices; train a multiple "
                f"of {len(devices)} seeds or pass devices=seed_devices(num_seeds)."
            )
        if indices.ndim != 4 or indices.shape[0] != num_seeds or indices.shape[2] != step.n_critic:
            raise ValueError(
                f"indices has shape {indices.shape}; expected [S={num_seeds}, K, "
                f"n_critic={step.n_critic}, B] integer rows of each seed's data."
            )
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers, got {indices.dtype}.")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"data lacks {missing}; the step reads {list(keys)}.")
        for k in keys:
            shape = np.shape(data[k])
            if shape[0] != num_seeds or (k == "image" and tuple(shape[2:]) != tuple(step.sample_shape)):
                raise ValueError(
                    f"data[{k!r}] has shape {shape}; expected [S={num_seeds}, N"
                    f"{', ' + ', '.join(map(str, step.sample_shape)) if k == 'image' else ''}]."
                )
            if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
                raise ValueError(f"indices run outside data[{k!r}]'s {shape[1]} rows.")
        step.check_batch(
            {k: np.zeros((step.n_critic, indices.shape[3], *np.shape(data[k])[2:]), data[k].dtype) for k in keys}, 1
        )
        return compiled(place(states), place({k: data[k] for k in keys}), place(indices.astype(np.int32)))

    run.compiled = compiled
    return run
