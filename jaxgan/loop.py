"""`train_and_evaluate(config, workdir)`: the one impure orchestrator.

It reads the config, loads the data, restores or initializes the state, runs the
compiled step, and does the chores through CLU (metric writers, progress,
parameter overview), Orbax (checkpoints), PNG sample grids and evaluators.
Everything it calls below takes explicit arguments.

Initialization order: the latest readable checkpoint in WORKDIR/checkpoints,
else a fresh state from `config.seed`. Batch s is a pure function of (seed, s)
and every random draw of step s of (rng, s), so a resumed run continues exactly
as a straight run would have.

Safety: metrics are fetched from the devices only when logged or before a save;
a state with a non-finite metric or parameter is never saved and stops the run
with the step and the last good checkpoint. SIGTERM (preemption) saves a
checkpoint at the current step and returns early.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions
from jax.sharding import Mesh
from PIL import Image

import jaxgan
from jaxgan import checkpoint, data
from jaxgan.common import to_uint8
from jaxgan.config import (Schedule, build_networks, build_optimizers, build_step, data_shape, eval_metric_names,
                           resolve_schedule, validate)
from jaxgan.sampling import fixed_latents, generate, image_grid, sample_batched, scatter_image
from jaxgan.state import GANTrainState
from jaxgan.train import (GANStep, global_batch, make_mesh, multi_global_batch, prefetch_to_mesh, replicate,
                          shard_map_step)

SampleFn = Callable[[int, int], np.ndarray]


class Evaluator(Protocol):
    """A periodic evaluation the loop runs every `eval_every_steps`.

    Called with `sample_fn(num, seed) -> uint8 [num, H, W, C]` (EMA-G samples in
    inference mode, deterministic in the seed) and the step; returns scalars
    that the loop writes as `eval/<name>`.
    """

    def __call__(self, sample_fn: SampleFn, step: int) -> Mapping[str, float]: ...


def load_training_arrays(data_config: ml_collections.ConfigDict, *, with_labels: bool = False,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """The whole training split as uint8 [N, size, size, channels] (+ int32 labels), or for a
    2-D mixture float32 points [num_examples, 2] drawn with `seed`."""
    if data_config.source == "mixture":
        from jaxgan.metrics import modes
        return {"image": modes.sample_mixture(modes.get_mixture(data_config.name), data_config.num_examples,
                                              seed=seed)}
    kwargs = dict(image_size=data_config.image_size, channels=data_config.channels)
    if data_config.source == "tfds":
        return data.load_tfds_images(data_config.name, split=data_config.split,
                                     data_dir=data_config.data_dir or None, with_labels=with_labels, **kwargs)
    if data_config.source == "npz":
        return data.load_npz_images(data_config.name, with_labels=with_labels, **kwargs)
    if data_config.source == "folder":
        return data.load_image_folder(data_config.name, **kwargs)
    raise ValueError(f"config.data.source={data_config.source!r}; valid: 'tfds', 'npz', 'folder'.")


def step_batch(batcher: data.ArrayBatcher, step: int, n_critic: int) -> dict[str, np.ndarray]:
    """This process's rows of train step `step`: n_critic consecutive batches, stacked."""
    batches = [batcher.batch_at(step * n_critic + j) for j in range(n_critic)]
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _call_batches(batcher: data.ArrayBatcher, step: GANStep, n_critic: int, start: int,
                  calls: Sequence[int]) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows for each compiled call: one step's batch, or `size` of them stacked."""
    s = start
    for size in calls:
        per_step = [{k: v for k, v in step_batch(batcher, s + i, n_critic).items() if k in step.batch_keys}
                    for i in range(size)]
        yield per_step[0] if size == 1 else {k: np.stack([b[k] for b in per_step]) for k in per_step[0]}
        s += size


def _place_call_batch(sample_ndim: int) -> Callable[[Mapping[str, np.ndarray], Mesh], dict[str, jax.Array]]:
    """Puts a call's batch on the mesh: [n_critic, B, ...] or, for K steps per call, [K, n_critic, B, ...]."""
    def place(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
        multi = np.ndim(batch["image"]) == sample_ndim + 3
        return (multi_global_batch if multi else global_batch)(batch, mesh)
    return place


def last_step_metrics(metrics: Mapping[str, Any], size: int) -> dict[str, float]:
    """Host floats of the last step's metrics of a call (a K-step call stacks them [K]).

    A non-finite value in any of the call's steps is kept, so `check_finite` sees it."""
    values = {}
    for k, v in metrics.items():
        v = np.asarray(v, np.float64).reshape(size)
        values[k] = float(v[-1]) if np.isfinite(v).all() else float(v[~np.isfinite(v)][0])
    return values


def code_version() -> dict[str, Any]:
    """What produced a run: jaxgan's version and git commit, library versions, machine."""
    info: dict[str, Any] = {"jaxgan": jaxgan.__version__, "python": platform.python_version()}
    for module in ("jax", "flax", "optax", "orbax.checkpoint"):
        try:
            info[module] = __import__(module, fromlist=["__version__"]).__version__
        except (ImportError, AttributeError):
            pass
    source = os.path.dirname(os.path.abspath(jaxgan.__file__))
    try:
        git = lambda *args: subprocess.run(["git", *args], cwd=source, capture_output=True, text=True,
                                           timeout=10, check=True).stdout.strip()
        info["git_commit"] = git("rev-parse", "HEAD")
        info["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None  # an installed wheel, not a checkout
    info["backend"] = jax.default_backend()
    info["devices"] = jax.device_count()
    info["processes"] = jax.process_count()
    return info


def _write_json_keeping_history(path: str, content: dict) -> None:
    """Writes `content` to `path`; an existing different file is kept as `<name>.<time>.json`."""
    text = json.dumps(content, indent=2, sort_keys=True)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
        stem, ext = os.path.splitext(path)
        kept, n = f"{stem}.{time.strftime('%Y%m%d-%H%M%S')}{ext}", 1
        while os.path.exists(kept):
            kept, n = f"{stem}.{time.strftime('%Y%m%d-%H%M%S')}-{n}{ext}", n + 1
        os.replace(path, kept)
    with open(path, "w") as f:
        f.write(text)


def write_run_info(config: ml_collections.ConfigDict, workdir: str) -> None:
    """WORKDIR/config.json (the resolved config) and WORKDIR/version.json (the code).

    A relaunch with a different config or code keeps the previous files, renamed
    with a timestamp, so a workdir records every configuration it ran with.
    """
    if jax.process_index() != 0:
        return
    _write_json_keeping_history(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
    logging.info("Command line: %s", " ".join(sys.argv))
    _write_json_keeping_history(os.path.join(workdir, "version.json"), code_version())


def check_labels_fit(arrays: Mapping[str, np.ndarray], num_classes: int) -> None:
    """A conditional model's labels must exist and lie in [0, num_classes)."""
    if not num_classes:
        return
    labels = arrays.get("label")
    if labels is None:
        raise ValueError(f"config.model.num_classes={num_classes} needs labels, and the data has none.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"The data's labels span {labels.min()}..{labels.max()}, outside [0, {num_classes}); set "
            f"config.model.num_classes={int(labels.max()) + 1} (the number of classes).")


def sample_labels_for_grid(num: int, num_classes: int) -> np.ndarray | None:
    """Class ids 0, 1, ..., K-1, 0, 1, ... for sample grids and evaluations (None if unconditional)."""
    return (np.arange(num) % num_classes).astype(np.int32) if num_classes else None


def _save_samples(writer, workdir: str, step: int, images: dict[str, jax.Array]) -> None:
    """PNG grids of images, or scatter images of 2-D points, in WORKDIR/samples and TensorBoard."""
    def picture(x):
        x = np.asarray(jax.device_get(x))
        return image_grid(np.asarray(to_uint8(x))) if x.ndim == 4 else scatter_image(x)[..., None]
    grids = {name: picture(x) for name, x in images.items()}
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        for name, grid in grids.items():
            pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
            pil.save(os.path.join(workdir, "samples", f"{name}_{step:06d}.png"))
    writer.write_images(step, {f"samples/{name}": grid[None] for name, grid in grids.items()})


@jax.jit
def _tree_all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def check_finite(step: int, metrics: Mapping[str, float], state: Any, last_checkpoint: int | None) -> None:
    """Raises FloatingPointError naming the step and the last good checkpoint if a metric
    or any floating-point leaf of the state (params, optimizer, EMA) is NaN or Inf."""
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad or not bool(_tree_all_finite(state)):
        what = f"metrics {bad}" if bad else "parameters or optimizer state"
        raise FloatingPointError(
            f"Non-finite {what} at step {step}. Last good checkpoint: "
            f"{'none' if last_checkpoint is None else f'step {last_checkpoint}'}; this state was not saved. "
            "Lower the learning rates, add a regularizer, or check the data."
        )


class PreemptionWatcher:
    """Records SIGTERM (a preemption notice) instead of dying, so the loop can save first.

    With several processes, they agree through JAX's preemption sync point
    (`jax.distributed` installs its own SIGTERM notifier) so all save the same step.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous = None

    def __enter__(self) -> "PreemptionWatcher":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._event.set())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            try:
                return bool(multihost_utils.reached_preemption_sync_point(step))
            except RuntimeError:  # no preemption service (not started with jax.distributed)
                pass
        return self._event.is_set()


def _progress_bar(config: ml_collections.ConfigDict, schedule: Schedule, start: int):
    enabled = bool(config.get("progress_bar", True)) and jax.process_index() == 0
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm import tqdm
    return tqdm(total=schedule.train_steps, initial=start, unit="step", dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)


def dry_run(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Validates `config` and builds the state abstractly (no data, no compile, no training).

    Returns the resolved schedule, parameter counts and the parameter tables,
    which `experiments/train.py --dry_run` prints with the resolved config.
    """
    validate(config, jax.device_count())
    schedule = resolve_schedule(config)
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    state = jax.eval_shape(lambda: step.init_state(config.seed, np.zeros((1, *data_shape(config)), np.float32)))
    return {
        "schedule": schedule,
        "g_parameters": parameter_overview.count_parameters(state.g.params),
        "d_parameters": parameter_overview.count_parameters(state.d.params),
        "g_overview": parameter_overview.get_parameter_overview(state.g.params, include_stats=False),
        "d_overview": parameter_overview.get_parameter_overview(state.d.params, include_stats=False),
        "state_bytes": sum(x.size * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(state)),
    }


def build_evaluators(config: ml_collections.ConfigDict, arrays: Mapping[str, np.ndarray]) -> list[Evaluator]:
    """The evaluators `config.eval_metrics` names, on the training images as the reference."""
    from jaxgan.metrics import evaluator as ev  # the Inception ones load their weights here, once

    evaluators = []
    for name in eval_metric_names(config):
        kwargs: dict[str, Any] = {"seed": config.seed}
        if config.eval_num_samples:
            kwargs["num_samples"] = config.eval_num_samples
        if name in ("inception", "fid", "kid", "prdc", "is"):
            kwargs.update(reference_images=arrays["image"], dataset=f"{config.data.source}:{config.data.name}",
                          split=config.data.split)
        elif name == "msssim":
            kwargs["real_images"] = arrays["image"]
        elif name == "modes":
            kwargs["data"] = config.data.name
        evaluators.append(ev.make_evaluator(name, **kwargs))
    return evaluators


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       evaluators: Sequence[Evaluator] | None = None) -> GANTrainState:
    """Trains (or resumes) the GAN described by `config`, writing into `workdir`.

    `evaluators` default to those `config.eval_metrics` names (when
    `eval_every_steps` or `eval_every_images` is set). Returns the final
    state; its `step` is below the schedule's end only when the run was stopped
    by SIGTERM (after saving a checkpoint).
    """
    validate(config, jax.device_count())
    schedule = resolve_schedule(config)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    write_run_info(config, workdir)

    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    arrays = load_training_arrays(config.data, with_labels=bool(step.num_classes), seed=config.seed)
    check_labels_fit(arrays, step.num_classes)
    batcher = data.ArrayBatcher(arrays, batch_size=config.batch_size, seed=config.seed,
                                process_index=jax.process_index(), process_count=jax.process_count())
    first = arrays["image"][:1]
    state = step.init_state(config.seed, data.to_model_range(first) if first.dtype == np.uint8 else first)
    if evaluators is None:
        evaluators = build_evaluators(config, arrays) if schedule.eval_every else []

    mesh = make_mesh()
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"),
                                       max_to_keep=config.keep_checkpoints) as manager, \
            PreemptionWatcher() as preemption:
        state, restored_step = checkpoint.restore_latest(manager, state)
        if restored_step is None:
            parameter_overview.log_parameter_overview(state.g.params, msg="Generator parameters")
            parameter_overview.log_parameter_overview(state.d.params, msg="Discriminator parameters")
        else:
            logging.info("Resumed from the checkpoint at step %d in %s", restored_step, workdir)
        state = replicate(state, mesh)
        steps_per_call = int(config.get("steps_per_call", 1))
        train_fns = {1: shard_map_step(step, mesh)}
        if steps_per_call > 1:
            train_fns[steps_per_call] = shard_map_step(step, mesh, steps_per_call=steps_per_call,
                                                       step_loop=config.get("step_loop", "auto"))
        grid_fn = jax.jit(functools.partial(generate, generator))
        grid_z = replicate(fixed_latents(config.seed + 1, config.num_samples, step.latent_dim), mesh)
        grid_labels = sample_labels_for_grid(config.num_samples, step.num_classes)
        if grid_labels is not None:
            grid_labels = replicate(grid_labels, mesh)
        progress = periodic_actions.ReportProgress(num_train_steps=schedule.train_steps, writer=writer)
        last_checkpoint = restored_step
        start = int(state.step)
        calls = list(schedule.call_sizes(start, steps_per_call, with_eval=bool(evaluators)))
        batches = prefetch_to_mesh(_call_batches(batcher, step, config.n_critic, start, calls), mesh,
                                   place=_place_call_batch(len(step.sample_shape)))

        done = start
        with _progress_bar(config, schedule, start) as bar:
            for size in calls:
                state, metrics = train_fns[size](state, next(batches))
                done += size
                progress(done)
                if bar is not None:
                    bar.update(size)
                stop = preemption.should_stop(done)
                log_now = schedule.due(schedule.log_every, done)
                save_now = schedule.due(schedule.checkpoint_every, done) or stop
                if log_now or save_now:  # the only host syncs: never save a non-finite state
                    values = last_step_metrics(jax.device_get(metrics), size)
                    check_finite(done, values, state, last_checkpoint)
                if log_now:
                    writer.write_scalars(done, {f"train/{k}": v for k, v in values.items()})
                    if bar is not None:
                        bar.set_postfix(d_loss=f"{values['d_loss']:.3f}", g_loss=f"{values['g_loss']:.3f}")
                if schedule.due(schedule.sample_every, done):
                    _save_samples(writer, workdir, done, {
                        "g": grid_fn(state.g.params, state.g.batch_stats, grid_z, grid_labels),
                        "ema": grid_fn(state.g_ema_params, state.g.batch_stats, grid_z, grid_labels),
                    })
                if evaluators and schedule.eval_every and schedule.due(schedule.eval_every, done):
                    # Images go to the evaluators as uint8, as they would be saved; 2-D points as floats.
                    as_output = np.asarray if config.data.source == "mixture" else to_uint8
                    sample_fn = lambda num, seed: np.asarray(as_output(sample_batched(
                        generator, state.g_ema_params, state.g.batch_stats, num=num, seed=seed,
                        labels=sample_labels_for_grid(num, step.num_classes))))
                    for evaluate in evaluators:
                        writer.write_scalars(done, {f"eval/{k}": float(v) for k, v in
                                                    evaluate(sample_fn, done).items()})
                if save_now:
                    checkpoint.save(manager, done, state)
                    last_checkpoint = done
                if stop:
                    manager.wait_until_finished()
                    logging.warning("SIGTERM: saved the checkpoint at step %d; stopping.", done)
                    print(f"jaxgan: preempted (SIGTERM); checkpoint saved at step {done}. "
                          "Relaunch the same command to resume.", flush=True)
                    break
        manager.wait_until_finished()
    writer.flush()
    return state

