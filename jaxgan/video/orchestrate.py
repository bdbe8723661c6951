"""`train_and_evaluate(config, workdir)` for the video GAN: the video orchestrator.

It reads the config (the only place here that does), builds the networks and
the step (compiled once per config and mesh: `jaxgan.compile_cache`), the batch
source (moving digits made on the fly, or TFDS clips: streamed from ArrayRecord,
read ahead; a TFRecord-only dataset in memory, with a warning) and the
evaluator, and hands them to `jaxgan.runner.run_training`, which holds the
loop: it restores the latest checkpoint or starts from `config.seed`, runs the
compiled data-parallel step and does the chores: CLU metrics (TensorBoard +
console) and `metrics.jsonl`, Orbax checkpoints, SIGTERM saves, the
non-finite guard. Samples, every `sample_every_steps`, of G and of its EMA on
fixed latents: `samples/<g|ema>_<step>.png` (a frame grid: one row per clip,
one column per frame, also logged to TensorBoard) and `samples/<g|ema>_<step>.gif`
(the clips side by side, animated). A sample file that exists (a relaunch
repeating a step) is never overwritten: the new one gets a `-rerun<k>` name.

Resume is exact: batch s is a pure function of (data seed, s) and every random
draw of step s of (state.rng, s).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from PIL import Image

from jaxgan import compile_cache
from jaxgan.common import DATA_AXIS, check_reading_options, to_uint8
from jaxgan.data import video as vdata
from jaxgan.optim import adam
from jaxgan.run_config import check_schedule, config_errors, schedule_from_config
from jaxgan.runner import RunHooks, check_workdir, run_training
from jaxgan.sampling import image_grid
from jaxgan.train import compile_init, make_mesh, prefetch_to_mesh
from jaxgan.train.kit import INIT_COMPILER_OPTIONS
from jaxgan.video.nets import ImageDiscriminator, VideoDiscriminator, VideoGenerator, check_frame_size
from jaxgan.video.steps import VideoGANState, VideoGANStep, shard_map_video_step

SOURCES = ("moving_digits", "tfds")
COMPILE_MODES = ("auto", "fast_compile", "default")
# Tests and quick checks: ~2x faster compilation, slower steps (the options init functions compile with).
FAST_COMPILE_OPTIONS = INIT_COMPILER_OPTIONS
# The step's checks (VideoGANStep), named after the config field.
STEP_FIELDS = {
    "num_frames": "data.num_frames",
    "image_weight": "image_weight",
    "image_frames": "image_frames",
    "ema_decay": "ema_decay",
}


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ValueError naming the field and the fix, before any data or compilation.

    The step's own options (frames, loss, weights, EMA) are checked once, by the step as `build_step`
    builds it (nothing compiles)."""
    d = config.data
    if d.source not in SOURCES:
        raise ValueError(f"config.data.source={d.source!r}; valid: {SOURCES}.")
    if d.source == "tfds" and not d.name:
        raise ValueError(
            "config.data.source='tfds' needs config.data.name (e.g. moving_mnist, ucf101, moving_digits/64px_2digit)."
        )
    check_frame_size(d.frame_size)
    with config_errors(config, worker_count="data.worker_count", num_threads="data.read_threads"):
        check_reading_options(**reading_options(config))
    if d.channels not in (1, 3):
        raise ValueError(f"config.data.channels must be 1 or 3, got {d.channels}.")
    if d.source == "moving_digits" and d.channels != 1:
        raise ValueError("Moving digits are grayscale: set config.data.channels=1.")
    check_schedule(config, num_devices)
    if config.compile not in COMPILE_MODES:
        raise ValueError(f"config.compile={config.compile!r}; valid: {COMPILE_MODES}.")
    if config.num_sample_clips < 1 or config.gif_fps <= 0:
        raise ValueError("config.num_sample_clips must be >= 1 and config.gif_fps > 0.")
    build_step(config)


def build_step(config: ml_collections.ConfigDict) -> VideoGANStep:
    """The networks, optimizers and step the config describes (their errors named after the config field)."""
    d, m = config.data, config.model
    with config_errors(config, **STEP_FIELDS):
        return VideoGANStep(
            generator=VideoGenerator(
                content_dim=m.content_dim,
                motion_dim=m.motion_dim,
                frame_size=d.frame_size,
                channels=d.channels,
                width=m.g_width,
            ),
            video_d=VideoDiscriminator(frame_size=d.frame_size, width=m.d_width),
            image_d=ImageDiscriminator(frame_size=d.frame_size, width=m.d_width),
            g_tx=adam(config.g_learning_rate, config.b1, config.b2),
            d_tx=adam(config.d_learning_rate, config.b1, config.b2),
            num_frames=d.num_frames,
            loss=config.loss,
            image_weight=config.image_weight,
            image_frames=config.image_frames,
            ema_decay=config.ema_decay,
        )


def moving_digits(config: ml_collections.ConfigDict, split: str) -> vdata.MovingDigits:
    d = config.data
    return vdata.MovingDigits(
        split=split,
        seed=d.seed,
        num_frames=d.num_frames,
        frame_size=d.frame_size,
        num_digits=d.num_digits,
        digit_size=d.digit_size,
        max_speed=d.max_speed,
    )


def load_batcher(config: ml_collections.ConfigDict) -> Any:
    """The training batch source: `batch_at(step)` -> {"video": float32 [B_local, T, S, S, C]}, and `iterate(start)`
    (batch_at(start), batch_at(start + 1), ...; read ahead when streamed)."""
    d = config.data
    process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    if d.source == "moving_digits":
        return vdata.MovingDigitsBatcher(moving_digits(config, "train"), batch_size=config.batch_size, **process)
    return vdata.tfds_video_batcher(  # streamed from ArrayRecord; TFRecord: in memory, with a warning
        d.name,
        split=d.split,
        num_frames=d.num_frames,
        frame_size=d.frame_size,
        channels=d.channels,
        batch_size=config.batch_size,
        seed=d.seed,
        data_dir=d.data_dir or None,
        max_clips=d.max_clips or None,
        **reading_options(config),
        **process,
    )


def reading_options(config: ml_collections.ConfigDict) -> dict[str, int]:
    """The streamed reader's threads and worker processes (`data.read_threads`, `data.worker_count`, when set)."""
    return dict(num_threads=config.data.get("read_threads", 2), worker_count=config.data.get("worker_count", 0))


def reference_clips(config: ml_collections.ConfigDict, num: int) -> np.ndarray:
    """Real clips the evaluator compares with: held-out moving digits, or the first clips of eval_split (read
    through the streamed source when the dataset is ArrayRecord; held in memory, as there are only `num`)."""
    d = config.data
    if d.source == "moving_digits":
        return moving_digits(config, "test").clips(np.arange(num))[0]
    return vdata.load_tfds_videos(
        d.name,
        split=d.eval_split,
        num_frames=d.num_frames,
        frame_size=d.frame_size,
        channels=d.channels,
        data_dir=d.data_dir or None,
        max_clips=num,
    )


def compiler_options(mode: str) -> dict | str | None:
    """config.compile -> `shard_map_step`'s compiler_options: "auto" leaves the per-backend choice to
    `jaxgan.train.parallel.resolve_compiler_options`; "default" is XLA's defaults."""
    return {"auto": "auto", "fast_compile": dict(FAST_COMPILE_OPTIONS), "default": None}[mode]


@dataclasses.dataclass(frozen=True)
class Compiled:
    step: VideoGANStep
    train: Callable
    init: Callable
    sample: Callable  # (g_params, batch_stats, seed) -> [num_sample_clips, T, S, S, C]


def compiled_step(config: ml_collections.ConfigDict, mesh: Mesh) -> Compiled:
    """The step, its shard_map'd train function, its init and its sampler, compiled once per (config, mesh)
    in a process (`jaxgan.compile_cache`), so relaunching the same config (a resume in one process, tests)
    does not recompile."""
    # Only the fields the step, init and sampler are built from: a longer schedule reuses the compilation.
    built_from = {
        k: config[k]
        for k in (
            "model",
            "loss",
            "image_weight",
            "image_frames",
            "g_learning_rate",
            "d_learning_rate",
            "b1",
            "b2",
            "ema_decay",
            "compile",
            "num_sample_clips",
        )
    }
    built_from["data"] = {k: config.data[k] for k in ("num_frames", "frame_size", "channels")}
    built_from = ml_collections.ConfigDict(built_from)

    def build_shared() -> Compiled:  # what does not depend on the mesh
        step = build_step(config)
        sample = jax.jit(functools.partial(step.sample, num=config.num_sample_clips), static_argnums=2)
        return Compiled(step, None, compile_init(step._init), sample)

    shared = compile_cache.cached(compile_cache.config_key("video", built_from), build_shared)
    options = compiler_options(config.compile)
    return compile_cache.cached(
        compile_cache.config_key("video.train", built_from, mesh),
        lambda: dataclasses.replace(shared, train=shard_map_video_step(shared.step, mesh, compiler_options=options)),
    )


# ----------------------------------------------------------------------------
# Sample pictures.


def frame_grid(videos: np.ndarray) -> np.ndarray:
    """uint8 [N, T, H, W, C] -> one uint8 picture: row i = clip i, column t = frame t."""
    n, t = videos.shape[:2]
    return image_grid(videos.reshape(n * t, *videos.shape[2:]), columns=t)


def gif_frames(videos: np.ndarray) -> list[np.ndarray]:
    """uint8 [N, T, H, W, C] -> T pictures, each all N clips' frame t in one grid."""
    columns = math.ceil(math.sqrt(videos.shape[0]))
    return [image_grid(videos[:, t], columns=columns) for t in range(videos.shape[1])]


def _pil(picture: np.ndarray) -> Image.Image:
    return Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)


def unused_name(samples_dir: str, name: str, step: int) -> str:
    """`name`, or `name-rerun<k>` with the first k for which neither samples/<name>_<step>.png nor .gif exists
    (a relaunch that repeats a step never overwrites an earlier run's samples)."""
    candidate, k = name, 0
    while any(os.path.exists(os.path.join(samples_dir, f"{candidate}_{step:06d}{ext}")) for ext in (".png", ".gif")):
        k += 1
        candidate = f"{name}-rerun{k}"
    return candidate


def write_gif(path: str, videos: np.ndarray, *, fps: float) -> None:
    """Writes the clips side by side as one looping animated GIF, `fps` frames per second."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; jaxgan never overwrites samples.")
    frames = [_pil(f) for f in gif_frames(videos)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)), loop=0)


def sample_hook(compiled: Compiled, *, seed: int, workdir: str, fps: float) -> Callable[[int, Any], dict]:
    """The runner's `samples` hook: clips of G and of EMA-G on fixed latents; writes the GIFs and
    returns the frame grids (the runner writes them as PNG and to TensorBoard)."""
    samples_dir = os.path.join(workdir, "samples")

    def hook(step: int, state: VideoGANState) -> dict[str, np.ndarray]:
        pictures = {}
        for name, params in (("g", state.g.params), ("ema", state.g_ema_params)):
            videos = np.asarray(to_uint8(compiled.sample(params, state.g.batch_stats, seed)))
            name = unused_name(samples_dir, name, step)
            pictures[name] = frame_grid(videos)
            if jax.process_index() == 0:
                os.makedirs(samples_dir, exist_ok=True)
                write_gif(os.path.join(samples_dir, f"{name}_{step:06d}.gif"), videos, fps=fps)
        return pictures

    return hook


# ----------------------------------------------------------------------------
# The run.


def build_evaluator(config: ml_collections.ConfigDict, compiled: Compiled) -> Callable[[int, Any], dict] | None:
    """The runner's `evaluate` hook: per-frame Frechet distance and the temporal score of EMA-G clips."""
    if not config.eval_every_steps:
        return None
    from jaxgan.metrics.video import VideoEvaluator  # pylint: disable=g-import-not-at-top

    evaluator = VideoEvaluator(
        reference_clips(config, config.eval_num_clips),
        features=config.eval_features,
        num_clips=config.eval_num_clips,
        seed=config.seed + 2,
    )
    step = compiled.step
    sample = jax.jit(step.sample, static_argnums=(2, 3, 4))

    def evaluate(done: int, state: VideoGANState) -> dict[str, float]:
        def sample_fn(num: int, seed: int) -> np.ndarray:
            chunks = [
                np.asarray(
                    to_uint8(sample(state.g_ema_params, state.g.batch_stats, seed, config.num_sample_clips, start))
                )
                for start in range(0, num, config.num_sample_clips)
            ]
            return np.concatenate(chunks)[:num]

        return evaluator(sample_fn, done)

    return evaluate


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, stop_at: int | None = None, mesh: Mesh | None = None
) -> VideoGANState:
    """Trains (or resumes) the video GAN `config` describes, in `workdir`.

    `stop_at` ends the run early at that step, after a checkpoint (as a
    preemption would); relaunching continues it exactly. `mesh` defaults to all
    devices. Returns the final state.
    """
    workdir = check_workdir(workdir)
    mesh = mesh or make_mesh()
    validate(config, mesh.size)
    compiled = compiled_step(config, mesh)
    batcher = load_batcher(config)
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    place = lambda batch, mesh: {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}

    def batches(start: int, calls: Sequence[int]) -> Iterator[dict[str, jax.Array]]:
        assert all(size == 1 for size in calls), calls
        stream = batcher.iterate(start)  # batch_at(start), batch_at(start + 1), ...: a streamed source reads ahead
        return prefetch_to_mesh((next(stream) for _ in calls), mesh, place=place)

    hooks = RunHooks(
        overview={"Generator": lambda s: s.g.params, "Discriminators": lambda s: s.d.params},
        samples=sample_hook(compiled, seed=config.seed + 1, workdir=workdir, fps=config.gif_fps),
        evaluate=build_evaluator(config, compiled),
        sample_at_start=True,
    )
    logging.info(
        "Video GAN: %d frames of %dx%d, batch %d, on %d device(s).",
        config.data.num_frames,
        config.data.frame_size,
        config.data.frame_size,
        config.batch_size,
        mesh.size,
    )
    schedule = schedule_from_config(config, images_per_step=config.batch_size)
    return run_training(
        workdir=workdir,
        init_state=compiled.init(config.seed),
        train_fns={1: compiled.train},
        batches=batches,
        schedule=schedule,
        mesh=mesh,
        keep_checkpoints=config.keep_checkpoints,
        hooks=hooks,
        stop_at=stop_at,
        progress_bar=bool(config.progress_bar),
        run_info=config,
    )
