"""`train_and_evaluate(config, workdir)` for CycleGAN and pix2pix: the translation orchestrator.

It reads the config (like `jaxgan.orchestrate`, the only place here that does),
loads the two domains, and hands the step to `jaxgan.runner.run_training`, which
restores the latest checkpoint or starts from `config.seed`, runs the one
compiled data-parallel step (kept in `jaxgan.compile_cache`), and writes: CLU metrics (TensorBoard +
console) and `metrics.jsonl`, PNG triplet grids in `samples/` (rows of input |
translated | reconstructed for CycleGAN, input | translated | target for
pix2pix), Orbax checkpoints in `checkpoints/`, `config.json` and `version.json`.

Resume is exact: batch s is a pure function of (seed, s) and every random draw
of step s of (state.rng, s); the history buffers and optimizer states are in
the checkpointed state.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxgan import compile_cache
from jaxgan.common import to_model_range, to_uint8
from jaxgan.data import translation as tdata
from jaxgan.run_config import check_schedule, config_errors, schedule_from_config
from jaxgan.runner import RunHooks, check_workdir, run_training
from jaxgan.sampling import image_grid
from jaxgan.train import compile_init, make_mesh, prefetch_to_mesh, replicate
from jaxgan.translation.nets import PatchDiscriminator, ResnetGenerator, UNetGenerator
from jaxgan.translation.steps import (
    CycleGANStep,
    Pix2PixStep,
    TranslationState,
    TranslationStep,
    adam,
    shard_map_translation_step,
    translation_batch,
)

MODELS = ("cyclegan", "pix2pix")

# The steps' and their optimizer's checks, named after the config field (the crop size's under the step's
# name for it).
STEP_FIELDS = {
    "decay_steps": "decay_steps",
    "pool_size": "pool_size",
    "l1_weight": "l1_weight",
    "pix2pix crop": "data.crop_size",
    "CycleGAN domain A crop": "data.crop_size",
    "CycleGAN domain B crop": "data.crop_size",
}


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ValueError naming the field and the fix, before any data or compilation.

    The step's own options (crop size, loss weights, the learning-rate decay) are checked once, by the step
    and its optimizer as `build_step` builds them (nothing compiles)."""
    if config.model not in MODELS:
        raise ValueError(f"config.model={config.model!r}; valid: {MODELS}.")
    d = config.data
    if d.load_size < d.crop_size:
        raise ValueError(
            f"config.data.load_size={d.load_size} is below crop_size={d.crop_size}; the papers load "
            "larger (286) and crop (256)."
        )
    check_schedule(config, num_devices)
    build_step(config)


def build_step(config: ml_collections.ConfigDict) -> TranslationStep:
    """The networks, optimizers and step the config describes (their errors named after the config field)."""
    d = config.data
    shape_a, shape_b = (d.crop_size, d.crop_size, d.channels_a), (d.crop_size, d.crop_size, d.channels_b)
    with config_errors(config, **STEP_FIELDS):
        tx = lambda: adam(
            config.learning_rate, total_steps=config.train_steps, decay_steps=config.decay_steps, b1=config.b1
        )
        disc = PatchDiscriminator(features=config.d.features, num_layers=config.d.num_layers)
        if config.model == "cyclegan":
            g = lambda channels: ResnetGenerator(
                features=config.g.features, num_blocks=config.g.num_blocks, out_channels=channels
            )
            return CycleGANStep(
                g_ab=g(d.channels_b),
                g_ba=g(d.channels_a),
                d_a=disc,
                d_b=disc,
                g_tx=tx(),
                d_tx=tx(),
                shape_a=shape_a,
                shape_b=shape_b,
                cycle_weight=config.cycle_weight,
                identity_weight=config.identity_weight,
                pool_size=config.pool_size,
            )
        return Pix2PixStep(
            generator=UNetGenerator(
                features=config.g.features,
                num_downs=config.g.num_downs,
                out_channels=d.channels_b,
                dropout_rate=config.g.dropout,
            ),
            discriminator=disc,
            g_tx=tx(),
            d_tx=tx(),
            shape_a=shape_a,
            shape_b=shape_b,
            l1_weight=config.l1_weight,
        )


def load_data(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    d = config.data
    return tdata.load_translation_data(
        source=d.source,
        paired=config.model == "pix2pix",
        load_size=d.load_size,
        channels_a=d.channels_a,
        channels_b=d.channels_b,
        name=d.name,
        path_a=d.path_a,
        path_b=d.path_b,
        path=d.path,
        split=d.split,
        data_dir=d.data_dir or None,
    )


def sample_triplets(step: TranslationStep, g_params: Any, a: jax.Array, b: jax.Array) -> dict[str, jax.Array]:
    """Rows of (input, translated, reconstructed or target), interleaved as [3N, H, W, C] in [-1, 1]."""

    def rows(*columns):
        columns = [jnp.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c for c in columns]  # gray shown as RGB
        return jnp.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])

    if isinstance(step, CycleGANStep):
        fake_b = step.translate(g_params, a, "AtoB")
        fake_a = step.translate(g_params, b, "BtoA")
        return {
            "a2b": rows(a, fake_b, step.translate(g_params, fake_b, "BtoA")),
            "b2a": rows(b, fake_a, step.translate(g_params, fake_a, "AtoB")),
        }
    return {"a2b": rows(a, step.translate(g_params, a), b)}


def triplet_pictures(grids: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
    """uint8 pictures of the triplet rows, three images per row."""
    return {name: image_grid(np.asarray(to_uint8(jax.device_get(x))), columns=3) for name, x in grids.items()}


def compiled_step(config: ml_collections.ConfigDict, mesh: Mesh) -> tuple[TranslationStep, Any, Any, Any]:
    """(step, its shard_map'd train function, its init function, the triplet-grid function),
    compiled once per (config, mesh) in a process (`jaxgan.compile_cache`), so relaunching the same
    config (a resume in one process, tests) does not recompile."""

    def build() -> tuple[TranslationStep, Any, Any, Any]:
        step = build_step(config)
        return (
            step,
            shard_map_translation_step(step, mesh),
            compile_init(step._init),
            jax.jit(lambda p, x, y: sample_triplets(step, p, x, y)),
        )

    return compile_cache.cached(compile_cache.config_key("translation", config, mesh), build)


def abstract_state(config: ml_collections.ConfigDict) -> TranslationState:
    """The state's shapes and dtypes (for restores without training, e.g. tools/translate.py)."""
    return build_step(config).abstract_state()


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, stop_at: int | None = None, mesh: Mesh | None = None
) -> TranslationState:
    """Trains (or resumes) the CycleGAN / pix2pix run `config` describes, in `workdir`.

    `stop_at` ends the run early at that step, after a checkpoint (as a preemption
    would); relaunching continues it exactly. `mesh` defaults to all devices. Returns the final state.
    """
    workdir = check_workdir(workdir)
    mesh = mesh or make_mesh()
    validate(config, mesh.size)
    a, b = load_data(config)  # bad data fails before the workdir is touched or anything compiles
    step, train_fn, init_fn, grid_fn = compiled_step(config, mesh)

    batcher = tdata.TranslationBatcher(
        a,
        b,
        batch_size=config.batch_size,
        crop_size=config.data.crop_size,
        seed=config.seed,
        paired=config.model == "pix2pix",
        flip=config.data.flip,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    # Fixed sample rows spread evenly over each domain, centre-cropped.
    rows = lambda x: x[np.linspace(0, len(x) - 1, config.num_sample_rows).round().astype(int)]
    fixed_a = replicate(to_model_range(tdata.center_crop(rows(a), config.data.crop_size)), mesh)
    fixed_b = replicate(to_model_range(tdata.center_crop(rows(b), config.data.crop_size)), mesh)

    def batches(start: int, calls: Sequence[int]) -> Iterator[dict[str, jax.Array]]:
        assert set(calls) == {1}, calls  # one step per call
        stream = batcher.iterate(start)
        return prefetch_to_mesh((next(stream) for _ in calls), mesh, place=translation_batch)

    hooks = RunHooks(
        overview={"Generator": lambda s: s.g.params, "Discriminator": lambda s: s.d.params},
        samples=lambda _, state: triplet_pictures(grid_fn(state.g.params, fixed_a, fixed_b)),
        sample_at_start=True,
        postfix=("d_loss", "g_loss", "cycle", "l1"),
    )
    schedule = schedule_from_config(config, images_per_step=config.batch_size)
    return run_training(
        workdir=workdir,
        init_state=init_fn(config.seed),
        train_fns={1: train_fn},
        batches=batches,
        schedule=schedule,
        mesh=mesh,
        keep_checkpoints=config.keep_checkpoints,
        hooks=hooks,
        stop_at=stop_at,
        progress_bar=bool(config.get("progress_bar", True)),
        run_info=config,
    )
