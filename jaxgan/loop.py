"""`train_and_evaluate(config, workdir)`: the one impure orchestrator.

It reads the config, loads the data, restores or initializes the state, runs the
compiled step, and does the chores through CLU (metric writers, progress,
parameter overview), Orbax (checkpoints) and PNG sample grids. Everything it
calls below takes explicit arguments.

Initialization order: the latest checkpoint in WORKDIR/checkpoints, else a
fresh state from `config.seed`.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions
from PIL import Image

from jaxgan import checkpoint, data
from jaxgan.common import to_uint8
from jaxgan.config import build_networks, build_optimizers, build_step, validate
from jaxgan.sampling import generate, image_grid
from jaxgan.state import GANTrainState, create_train_state
from jaxgan.train import make_mesh, replicate, sample_latents, shard_map_step


def load_training_arrays(data_config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The whole training split as uint8 [N, size, size, channels] (+ labels)."""
    kwargs = dict(image_size=data_config.image_size, channels=data_config.channels)
    if data_config.source == "tfds":
        return data.load_tfds_images(data_config.name, split=data_config.split,
                                     data_dir=data_config.data_dir or None, **kwargs)
    if data_config.source == "npz":
        return data.load_npz_images(data_config.name, **kwargs)
    if data_config.source == "folder":
        return data.load_image_folder(data_config.name, **kwargs)
    raise ValueError(f"config.data.source={data_config.source!r}; valid: 'tfds', 'npz', 'folder'.")


def step_batch(batcher: data.ArrayBatcher, step: int, n_critic: int) -> dict[str, np.ndarray]:
    """This process's rows of train step `step`: n_critic consecutive batches, stacked."""
    batches = [batcher.batch_at(step * n_critic + j) for j in range(n_critic)]
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(json.loads(config.to_json_best_effort()), f, indent=2, sort_keys=True)


def _save_samples(writer, workdir: str, step: int, images: dict[str, jax.Array]) -> None:
    grids = {name: image_grid(np.asarray(jax.device_get(to_uint8(x)))) for name, x in images.items()}
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        for name, grid in grids.items():
            pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
            pil.save(os.path.join(workdir, "samples", f"{name}_{step:06d}.png"))
    writer.write_images(step, {f"samples/{name}": grid[None] for name, grid in grids.items()})


def _check_finite(step: int, metrics: dict[str, float], last_checkpoint: int | None) -> None:
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(
            f"Non-finite training metrics at step {step}: {bad}. Last good checkpoint: "
            f"{'none' if last_checkpoint is None else f'step {last_checkpoint}'}; this state was not saved."
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> GANTrainState:
    """Trains (or resumes) the GAN described by `config`, writing into `workdir`."""
    validate(config, jax.device_count())
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    _write_config(config, workdir)

    arrays = load_training_arrays(config.data)
    batcher = data.ArrayBatcher(arrays, batch_size=config.batch_size, seed=config.seed,
                                process_index=jax.process_index(), process_count=jax.process_count())
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    state = create_train_state(config.seed, generator=generator, discriminator=discriminator,
                               example_images=data.to_model_range(arrays["image"][:1]), g_tx=g_tx, d_tx=d_tx)

    mesh = make_mesh()
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"),
                                       max_to_keep=config.keep_checkpoints) as manager:
        state, restored_step = checkpoint.restore_latest(manager, state)
        if restored_step is None:
            parameter_overview.log_parameter_overview(state.g.params, msg="Generator parameters")
            parameter_overview.log_parameter_overview(state.d.params, msg="Discriminator parameters")
        else:
            logging.info("Resumed from the checkpoint at step %d in %s", restored_step, workdir)
        state = replicate(state, mesh)
        train_fn = shard_map_step(step, mesh)
        sample_fn = jax.jit(functools.partial(generate, generator))
        sample_z = replicate(sample_latents(jax.random.PRNGKey(config.seed + 1),
                                            jnp.arange(config.num_samples), step.latent_dim), mesh)
        progress = periodic_actions.ReportProgress(num_train_steps=config.train_steps, writer=writer)
        last_checkpoint = restored_step

        for s in range(int(state.step), config.train_steps):
            state, metrics = train_fn(state, step_batch(batcher, s, config.n_critic))
            done = s + 1
            progress(done)
            is_last = done == config.train_steps
            log_now = done % config.log_every_steps == 0 or is_last
            save_now = done % config.checkpoint_every_steps == 0 or is_last
            if log_now or save_now:  # the only host syncs: never save a non-finite state
                values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                _check_finite(done, values, last_checkpoint)
            if log_now:
                writer.write_scalars(done, {f"train/{k}": v for k, v in values.items()})
            if done % config.sample_every_steps == 0 or is_last:
                _save_samples(writer, workdir, done, {
                    "g": sample_fn(state.g.params, state.g.batch_stats, sample_z),
                    "ema": sample_fn(state.g_ema_params, state.g.batch_stats, sample_z),
                })
            if save_now:
                checkpoint.save(manager, done, state)
                last_checkpoint = done
        manager.wait_until_finished()
    writer.flush()
    return state
