"""Run a `GANStep` data-parallel: `jax.shard_map` over a 1-D Mesh, or `jax.pmap`.

Both wrappers bind the same axis name, split the batch over devices on its B
axis, keep the state replicated (identical on every device) and donate it.
They validate the batch in Python before calling the compiled step, so a bad
batch fails with a clear message instead of a compile error.

Several hosts: call `jax.distributed.initialize()` first; `make_mesh()` then
spans every process's devices, each process loads only its rows of the global
batch (`process_batch_slice`) and `global_batch` assembles them into one
sharded array without any copy between hosts.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan.common import DATA_AXIS, Metrics, process_batch_slice  # noqa: F401 (re-exported)
from jaxgan.state import GANTrainState
from jaxgan.train.multi import multi_step
from jaxgan.train.steps import GANStep

CompiledStep = Callable[[GANTrainState, Mapping[str, Any]], tuple[GANTrainState, Metrics]]

# Every batch leaf is [n_critic, B, ...]: sharded on B.
BATCH_SPEC = P(None, DATA_AXIS)
# With K steps per call (`multi_step`), leaves are [K, n_critic, B, ...].
MULTI_BATCH_SPEC = P(None, None, DATA_AXIS)

# Per-compilation XLA options for a train step with convolutions on CPU devices ("auto"): XLA's YNNPACK
# fusions made conv steps slower there, and made no difference to convolution-free (MLP) steps, which keep
# XLA's defaults (measurements: experiments/results/step_loop_cpu/README.md).
CPU_CONV_STEP_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": ""}


def uses_convolution(step: Any) -> bool:
    """Whether the step's networks compute a convolution.

    A `GANStep`: read from G's and D's traced forward passes. Any other step
    answers through its own `uses_convolution()` method (without one: False).
    """
    if not isinstance(step, GANStep):
        own = getattr(step, "uses_convolution", None)
        return bool(own()) if callable(own) else False
    z = jax.ShapeDtypeStruct((1, step.latent_dim), jnp.float32)
    x = jax.ShapeDtypeStruct((step.pack, *step.sample_shape), jnp.float32)
    labels_g = jax.ShapeDtypeStruct((1,), jnp.int32) if step.num_classes else None
    labels_d = jax.ShapeDtypeStruct((step.pack,), jnp.int32) if step.num_classes else None
    key = jax.random.PRNGKey(0)

    def traced(module, x, labels):
        args = (x,) if labels is None else (x, labels)
        return str(jax.make_jaxpr(lambda *a: module.init(key, *a, train=False))(*args))

    return any(
        "conv_general_dilated" in traced(m, x, y)
        for m, x, y in ((step.generator, z, labels_g), (step.discriminator, x, labels_d))
    )


def resolve_compiler_options(
    compiler_options: Mapping[str, Any] | str | None, devices: Sequence[jax.Device], step: Any = None
) -> dict[str, Any] | None:
    """ "auto" -> `CPU_CONV_STEP_COMPILER_OPTIONS` when every device is a CPU and the
    step's networks convolve, else XLA's defaults; a dict is used as given."""
    if compiler_options == "auto":
        on_cpu = all(d.platform == "cpu" for d in devices)
        compiler_options = (
            CPU_CONV_STEP_COMPILER_OPTIONS if on_cpu and step is not None and uses_convolution(step) else {}
        )
    if compiler_options is None:
        return None
    if not isinstance(compiler_options, Mapping):
        raise TypeError(f"compiler_options must be a dict, None or 'auto', got {compiler_options!r}.")
    return dict(compiler_options) or None


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named DATA_AXIS over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def _with_critic_axis(batch: Mapping[str, Any], step: GANStep) -> dict[str, Any]:
    """Adds the leading n_critic axis to [B, ...] leaves (accepted when n_critic == 1)."""
    if np.ndim(batch["image"]) == len(step.sample_shape) + 1:
        return {k: v[None] for k, v in batch.items()}
    return dict(batch)


def global_batch(local_batch: Mapping[str, Any], mesh: Mesh, spec: P = BATCH_SPEC) -> dict[str, jax.Array]:
    """Assembles this process's rows (numpy) into global arrays sharded as `spec`.

    The default `BATCH_SPEC` is the GANStep layout [n_critic, B_local, ...]; pass
    `P(DATA_AXIS)` for [B_local, ...] leaves (the translation steps).
    """
    sharding = NamedSharding(mesh, spec)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def multi_global_batch(
    local_batches: Mapping[str, Any], mesh: Mesh, spec: P = MULTI_BATCH_SPEC
) -> dict[str, jax.Array]:
    """`global_batch` for K steps per call: this process's rows [K, n_critic, B_local, ...] (or as `spec`)."""
    sharding = NamedSharding(mesh, spec)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batches.items()}


def prefetch_to_mesh(
    local_batches: Iterable[Mapping[str, Any]],
    mesh: Mesh,
    *,
    size: int = 2,
    place: Callable[[Mapping[str, Any], Mesh], dict[str, jax.Array]] | None = None,
) -> Iterator[dict[str, jax.Array]]:
    """Yields `place(b, mesh)` (default `global_batch`) for each local numpy batch,
    prepared `size` batches ahead in a background thread, so host batching and the
    host-to-device copy overlap the running step. Errors in the producer are re-raised here.
    """
    place = global_batch if place is None else place
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}.")
    buffer: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in local_batches:
                if not put(place(batch, mesh)):
                    return
            put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(e)

    thread = threading.Thread(target=produce, name="jaxgan-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree (the state) fully replicated on the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def _check_steps_axis(batch: Mapping[str, Any], steps_per_call: int) -> dict[str, Any]:
    """For K steps per call: checks the leading K axis, returns one step's batch as shapes (no copy)."""
    one_step = {}
    for name, leaf in batch.items():
        shape = tuple(np.shape(leaf))
        if not shape or shape[0] != steps_per_call:
            raise ValueError(
                f"batch[{name!r}] has shape {shape}; with steps_per_call={steps_per_call} every leaf needs a leading "
                f"axis of {steps_per_call} (one batch per step: [K, n_critic, B, ...]). Stack K step batches "
                "with np.stack, or use steps_per_call=1."
            )
        one_step[name] = jax.ShapeDtypeStruct(shape[1:], leaf.dtype)
    return one_step


def shard_map_step(
    step: GANStep,
    mesh: Mesh,
    *,
    steps_per_call: int = 1,
    step_loop: str = "auto",
    compiler_options: Mapping[str, Any] | str | None = "auto",
    batch_spec: P = BATCH_SPEC,
) -> CompiledStep:
    """The step under `jax.shard_map` + `jax.jit`, state donated.

    The returned function takes the state replicated on `mesh` (see `replicate`)
    and a batch of numpy arrays (this process's rows) or of global jax.Arrays
    sharded as `batch_spec`; it returns the new replicated state and scalar metrics.

    `step` is a `GANStep` (batch leaves [n_critic, B, ...], `BATCH_SPEC`; [B, ...]
    is also accepted when n_critic == 1) or any pure `(state, batch) -> (state,
    metrics)` written against DATA_AXIS with a `check_batch(batch, num_devices)`
    method, whose batch leaves are sharded as `batch_spec` (e.g. `P(DATA_AXIS)`
    for [B, ...] leaves, the translation steps).

    `steps_per_call` K > 1 runs K steps per call (`jaxgan.train.multi.multi_step`,
    a `lax.scan` or unrolled per `step_loop`): batch leaves `[K, n_critic, B, ...]`
    (`MULTI_BATCH_SPEC`), metrics stacked `[K]`, the same state as K single calls.
    `compiler_options`: per-compilation XLA options ("auto": `resolve_compiler_options`).
    """
    if mesh.axis_names != (DATA_AXIS,):
        raise ValueError(f"The mesh must be 1-D with axis {DATA_AXIS!r} (make_mesh()), got axes {mesh.axis_names}.")
    multi = steps_per_call != 1
    fn = multi_step(step, steps_per_call, step_loop=step_loop) if multi else step
    spec = P(None, *batch_spec) if multi else batch_spec
    sharded = jax.shard_map(fn, mesh=mesh, in_specs=(P(), spec), out_specs=(P(), P()))
    compiled = jax.jit(
        sharded,
        donate_argnums=0,
        compiler_options=resolve_compiler_options(compiler_options, list(mesh.devices.flat), step),
    )
    num_devices = mesh.size
    layout = (lambda b: _with_critic_axis(b, step)) if isinstance(step, GANStep) else dict

    def run(state: GANTrainState, batch: Mapping[str, Any]) -> tuple[GANTrainState, Metrics]:
        on_mesh = all(isinstance(v, jax.Array) for v in batch.values())  # already global arrays
        if multi:
            step.check_batch(
                _check_steps_axis(batch, steps_per_call), num_devices if on_mesh else len(mesh.local_devices)
            )
            return compiled(state, batch if on_mesh else multi_global_batch(batch, mesh, spec))
        if on_mesh:
            step.check_batch(batch, num_devices)
            return compiled(state, layout(batch))
        step.check_batch(batch, len(mesh.local_devices))  # this process's rows, on its devices of the mesh
        return compiled(state, global_batch(layout(batch), mesh, spec))

    run.compiled = compiled  # for AOT lowering, cost analysis and trace counting
    run.steps_per_call = steps_per_call
    return run


def pmap_step(step: Any, devices: Sequence[jax.Device] | None = None, *, batch_spec: P = BATCH_SPEC) -> CompiledStep:
    """The same step under `jax.pmap` with the same axis name.

    The state goes in and comes out unreplicated (in_axes/out_axes None: pmap
    broadcasts it, and the step keeps it identical on every device); the batch is
    split on the axis that `batch_spec` shards (`BATCH_SPEC`: B of `[n_critic, B, ...]`;
    `P(DATA_AXIS)`: B of `[B, ...]`, the translation and video steps). `step` is a
    `GANStep` or any step `shard_map_step` takes.
    """
    axis = tuple(batch_spec).index(DATA_AXIS)
    devices = list(jax.local_devices() if devices is None else devices)
    mapped = jax.pmap(step, axis_name=DATA_AXIS, in_axes=(None, axis), out_axes=(None, None), devices=devices)
    num_devices = len(devices)
    # pmap returns the state replicated over `devices`; placing every input state
    # the same way keeps a host or single-device first state from compiling twice.
    replicated = NamedSharding(Mesh(np.asarray(devices), (DATA_AXIS,)), P())
    layout = (lambda b: _with_critic_axis(b, step)) if isinstance(step, GANStep) else dict

    def split(v: Any) -> np.ndarray:
        v = np.asarray(v)
        return v.reshape(*v.shape[:axis], num_devices, v.shape[axis] // num_devices, *v.shape[axis + 1 :])

    def run(state: Any, batch: Mapping[str, Any]) -> tuple[Any, Metrics]:
        step.check_batch(batch, num_devices)
        state = jax.device_put(state, replicated)
        return mapped(state, {k: split(v) for k, v in layout(batch).items()})

    run.compiled = mapped
    return run
