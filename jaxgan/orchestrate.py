"""`train_and_evaluate(config, workdir)`: the GAN zoo's orchestrator (formerly `jaxgan.loop`).

It validates the config and builds the networks and step from it
(`jaxgan.build`), loads the data, and hands the state, the compiled step and
the batch source to `jaxgan.runner.run_training`, which holds the loop: it
restores or initializes the state, runs the compiled step and does the chores
through CLU (metric writers, progress, parameter overview), Orbax
(checkpoints), PNG sample grids and the evaluators defined here. Everything it
calls below takes explicit arguments. The compiled step is kept in
`jaxgan.compile_cache`, so relaunching the same config in one process reuses it.

Initialization order: the latest readable checkpoint in WORKDIR/checkpoints,
else a fresh state from `config.seed`. Batch s is a pure function of (seed, s)
and every random draw of step s of (rng, s), so a resumed run continues exactly
as a straight run would have. Safety (non-finite guard, SIGTERM saves): see
`jaxgan.runner`.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import jax
import ml_collections
import numpy as np
from clu import parameter_overview
from jax.sharding import Mesh

from jaxgan import compile_cache, data
from jaxgan.build import build_validated
from jaxgan.common import to_uint8
from jaxgan.config import DATA_SOURCES, data_shape, eval_metric_names, resolve_schedule
from jaxgan.data import clusters as clusters_lib
from jaxgan.data import sources
from jaxgan.data.pipeline import read_records
from jaxgan.data.stream import StreamBatcher
from jaxgan.runner import RunHooks, check_workdir, run_training
from jaxgan.sampling import compiled_generate, fixed_latents, image_grid, sample_batched, scatter_image
from jaxgan.state import GANTrainState
from jaxgan.train import (
    GANStep,
    global_batch,
    make_mesh,
    multi_global_batch,
    prefetch_to_mesh,
    replicate,
    shard_map_step,
)

SampleFn = Callable[[int, int], np.ndarray]


class Evaluator(Protocol):
    """A periodic evaluation the loop runs every `eval_every_steps`.

    Called with `sample_fn(num, seed) -> uint8 [num, H, W, C]` (EMA-G samples in
    inference mode, deterministic in the seed) and the step; returns scalars
    that the loop writes as `eval/<name>`.
    """

    def __call__(self, sample_fn: SampleFn, step: int) -> Mapping[str, float]: ...


def load_training_arrays(
    data_config: ml_collections.ConfigDict, *, with_labels: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """The whole training split as uint8 [N, size, size, channels] (+ int32 labels); for a
    2-D mixture float32 points [num_examples, 2], for stacked digits uint8 [num_examples, size, size, 3],
    drawn with `seed`."""
    if data_config.source == "mixture":
        from jaxgan.metrics import modes

        return {"image": modes.sample_mixture(modes.get_mixture(data_config.name), data_config.num_examples, seed=seed)}
    if data_config.source == "stacked_digits":  # the train split's digits only; modes are not labels
        from jaxgan.metrics import digits_classifier

        images, _ = digits_classifier.make_stacked_digits(
            data_config.num_examples, seed=seed, split="train", image_size=data_config.image_size
        )
        return {"image": images}
    kwargs = dict(image_size=data_config.image_size, channels=data_config.channels)
    if data_config.source == "tfds":
        return data.load_tfds_images(
            data_config.name,
            split=data_config.split,
            data_dir=data_config.data_dir or None,
            with_labels=with_labels,
            **kwargs,
        )
    if data_config.source == "npz":
        return data.load_npz_images(data_config.name, with_labels=with_labels, **kwargs)
    if data_config.source == "folder":
        return data.load_image_folder(data_config.name, **kwargs)
    raise ValueError(f"config.data.source={data_config.source!r}; valid: {DATA_SOURCES}.")


STREAMED_SOURCES = ("tfds", "npz", "folder")


def open_training_source(data_config: ml_collections.ConfigDict, *, with_labels: bool) -> sources.RecordSource:
    """The training split of a file-backed source (`STREAMED_SOURCES`), opened for random access."""
    if data_config.source == "tfds":
        return sources.TfdsSource(
            data_config.name, split=data_config.split, data_dir=data_config.data_dir or None, with_labels=with_labels
        )
    if data_config.source == "npz":
        return sources.NpzSource(data_config.name, with_labels=with_labels)
    if data_config.source == "folder":
        return sources.FolderSource(data_config.name)
    raise ValueError(f"config.data.source={data_config.source!r} is not streamed; streamed: {STREAMED_SOURCES}.")


def step_batch(batcher: data.ArrayBatcher, step: int, n_critic: int) -> dict[str, np.ndarray]:
    """This process's rows of train step `step`: n_critic consecutive batches, stacked."""
    batches = [batcher.batch_at(step * n_critic + j) for j in range(n_critic)]
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _call_batches(
    batcher: data.ArrayBatcher | StreamBatcher, step: GANStep, n_critic: int, start: int, calls: Sequence[int]
) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows for each compiled call: one step's batch (n_critic consecutive batches, stacked), or
    `size` of them stacked; read in order from `batcher.iterate` (a streamed source reads ahead)."""
    stream = batcher.iterate(start * n_critic)
    for size in calls:
        per_step = []
        for _ in range(size):
            batches = [next(stream) for _ in range(n_critic)]
            per_step.append({k: np.stack([b[k] for b in batches]) for k in batches[0] if k in step.batch_keys})
        yield per_step[0] if size == 1 else {k: np.stack([b[k] for b in per_step]) for k in per_step[0]}


def _place_call_batch(sample_ndim: int) -> Callable[[Mapping[str, np.ndarray], Mesh], dict[str, jax.Array]]:
    """Puts a call's batch on the mesh: [n_critic, B, ...] or, for K steps per call, [K, n_critic, B, ...]."""

    def place(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
        multi = np.ndim(batch["image"]) == sample_ndim + 3
        return (multi_global_batch if multi else global_batch)(batch, mesh)

    return place


def check_labels_fit(arrays: Mapping[str, np.ndarray], num_classes: int) -> None:
    """A conditional model's labels must exist and lie in [0, num_classes)."""
    if num_classes:
        labels = arrays.get("label")
        _check_label_span(None if labels is None else (int(labels.min()), int(labels.max())), num_classes)


def check_label_range(source: sources.RecordSource, num_classes: int) -> None:
    """`check_labels_fit` for a streamed source, from what it knows without reading its images."""
    if num_classes:
        _check_label_span(source.label_range(), num_classes)


def _check_label_span(span: tuple[int, int] | None, num_classes: int) -> None:
    """The labels' (lowest, highest) must exist and lie in [0, num_classes)."""
    if span is None:
        raise ValueError(f"config.model.num_classes={num_classes} needs labels, and the data has none.")
    if span[0] < 0 or span[1] >= num_classes:
        raise ValueError(
            f"The data's labels span {span[0]}..{span[1]}, outside [0, {num_classes}); set "
            f"config.model.num_classes={int(span[1]) + 1} (the number of classes)."
        )


def sample_labels_for_grid(num: int, num_classes: int) -> np.ndarray | None:
    """Class ids 0, 1, ..., K-1, 0, 1, ... for sample grids and evaluations (None if unconditional)."""
    return (np.arange(num) % num_classes).astype(np.int32) if num_classes else None


def evaluation_labels(num: int, *, seed: int, num_classes: int, frequencies: np.ndarray | None) -> np.ndarray | None:
    """Class ids for `num` evaluation samples: drawn with the training labels' `frequencies` when given (k-means
    clusters: G was trained on the real batches' ids), else 0, 1, ..., K-1, 0, ... (None if unconditional)."""
    if frequencies is None:
        return sample_labels_for_grid(num, num_classes)
    return clusters_lib.draw_labels(frequencies, num, seed=seed)


def run_cluster_labels(
    workdir: str, images: np.ndarray, num_clusters: int, *, seed: int
) -> tuple[np.ndarray, Callable[[], None] | None]:
    """The run's k-means cluster labels (`jaxgan.data.clusters`): read from WORKDIR/cluster_labels.npz, so a
    resumed run keeps its clusters, or computed. Returns (labels, a function that writes newly computed
    labels there, by process 0, or None): the run calls it once it holds the workdir."""
    path = os.path.join(workdir, clusters_lib.LABELS_FILE)
    labels = clusters_lib.load_labels(path, num_clusters=num_clusters, seed=seed, num_examples=len(images))
    if labels is not None:
        return labels, None
    labels = clusters_lib.kmeans_labels(images, num_clusters, seed=seed)

    def write() -> None:
        if jax.process_index() == 0:
            os.makedirs(workdir, exist_ok=True)
            clusters_lib.save_labels(path, labels, num_clusters=num_clusters, seed=seed)

    return labels, write


def dry_run(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Validates `config` and builds the state abstractly (no data, no compile, no training).

    Returns the resolved schedule, parameter counts and the parameter tables,
    which `experiments/train.py --dry_run` prints with the resolved config.
    """
    step = build_validated(config, jax.device_count()).step
    schedule = resolve_schedule(config)
    state = jax.eval_shape(lambda: step.init_state(config.seed, np.zeros((1, *data_shape(config)), np.float32)))
    return {
        "schedule": schedule,
        "g_parameters": parameter_overview.count_parameters(state.g.params),
        "d_parameters": parameter_overview.count_parameters(state.d.params),
        "g_overview": parameter_overview.get_parameter_overview(state.g.params, include_stats=False),
        "d_overview": parameter_overview.get_parameter_overview(state.d.params, include_stats=False),
        "state_bytes": sum(x.size * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(state)),
    }


def streamed_reference(source, *, seed: int, image_size: int, channels: int, chunk: int = 256) -> Callable:
    """`reference(num=None, *, batched=False)`: the images of a random-access source (`num`: a random
    subset of that many, drawn with `seed`), as one array or, `batched`, as an iterator over chunks."""

    def reference(num: int | None = None, *, batched: bool = False):
        n = len(source)
        rows = (
            np.arange(n)
            if num is None or num >= n
            else np.sort(np.random.default_rng(seed).choice(n, num, replace=False))
        )
        read = functools.partial(read_records, source, image_size=image_size, channels=channels)
        if batched:
            return (read(rows[i : i + chunk])["image"] for i in range(0, len(rows), chunk))
        return read(rows)["image"]

    return reference


def build_evaluators(
    config: ml_collections.ConfigDict, reference: np.ndarray | Callable[..., np.ndarray]
) -> list[Evaluator]:
    """The evaluators `config.eval_metrics` names, on the training images as the reference: uint8 images,
    or a function that reads them (a streamed dataset: called only when no cached statistics serve; with
    `num`, a random subset of that many; with `batched=True`, an iterator over batches, from which the
    Inception evaluators extract features batch by batch, never holding the whole dataset)."""
    from jaxgan.metrics import evaluator as ev  # the Inception ones load their weights here, once

    evaluators = []
    for name in eval_metric_names(config):
        kwargs: dict[str, Any] = {"seed": config.seed}
        if config.eval_num_samples:
            kwargs["num_samples"] = config.eval_num_samples
        if name in ("inception", "fid", "kid", "prdc", "is"):
            kwargs.update(
                reference_images=functools.partial(reference, batched=True) if callable(reference) else reference,
                dataset=f"{config.data.source}:{config.data.name}",
                split=config.data.split,
            )
            if callable(reference):
                kwargs["resolution"] = config.data.image_size
        elif name == "msssim":
            # Its real value uses 1000 random pairs: from a streamed dataset, read only a random subset of
            # 2000 images to draw them from (the same estimator; the whole dataset is never decoded for it).
            kwargs["real_images"] = reference(2000) if callable(reference) else reference
        elif name == "modes":
            kwargs["data"] = "stacked_digits" if config.data.source == "stacked_digits" else config.data.name
        evaluators.append(ev.make_evaluator(name, **kwargs))
    return evaluators


def sample_picture(x: jax.Array) -> np.ndarray:
    """A uint8 picture [H, W, C] of generated samples: a grid of images, or a scatter of 2-D points."""
    x = np.asarray(jax.device_get(x))
    return image_grid(np.asarray(to_uint8(x))) if x.ndim == 4 else scatter_image(x)[..., None]


def train_functions(step: GANStep, mesh: Mesh, config: ml_collections.ConfigDict) -> dict[int, Callable]:
    """The runner's `train_fns`: one step per call, and `config.steps_per_call` steps per call if > 1."""
    steps_per_call = int(config.get("steps_per_call", 1))
    train_fns = {1: shard_map_step(step, mesh)}
    if steps_per_call > 1:
        train_fns[steps_per_call] = shard_map_step(
            step, mesh, steps_per_call=steps_per_call, step_loop=config.get("step_loop", "auto")
        )
    return train_fns


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    evaluators: Sequence[Evaluator] | None = None,
    restart_from_scratch: bool = False,
) -> GANTrainState:
    """Trains (or resumes) the GAN described by `config`, writing into `workdir`.

    `evaluators` default to those `config.eval_metrics` names (when
    `eval_every_steps` or `eval_every_images` is set). Returns the final
    state; its `step` is below the schedule's end only when the run was stopped
    by SIGTERM (after saving a checkpoint). Nothing is written into `workdir`
    until the config is validated, the data opened and the checkpoint there
    checked (`jaxgan.runner.run_training`). `restart_from_scratch`: see there.
    """
    workdir = check_workdir(workdir)
    built = build_validated(config, jax.device_count())  # every option checked; nothing compiled yet
    schedule = resolve_schedule(config)
    generator, step = built.generator, built.step
    clusters = config.data.get("cluster_labels", 0)
    with_labels = bool(step.num_classes) and not clusters
    write_labels, frequencies = None, None
    if config.data.source in STREAMED_SOURCES and not clusters:  # read batch by batch, never whole
        source = open_training_source(config.data, with_labels=with_labels)
        check_label_range(source, step.num_classes)
        shape = dict(image_size=config.data.image_size, channels=config.data.channels)
        batcher = StreamBatcher(  # its options were checked with the config
            source,
            batch_size=config.batch_size,
            seed=config.seed,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            worker_count=config.data.get("worker_count", 0),
            num_threads=config.data.get("read_threads", 2),
            **shape,
        )
        first = read_records(source, [0], **shape)["image"]

        reference = streamed_reference(source, seed=config.seed, **shape)  # read only if evaluated

    else:  # generated data, or k-means labels over every image: in memory
        arrays = load_training_arrays(config.data, with_labels=with_labels, seed=config.seed)
        if clusters:
            labels, write_labels = run_cluster_labels(workdir, arrays["image"], clusters, seed=config.seed)
            arrays = dict(arrays, label=labels)
            frequencies = clusters_lib.label_frequencies(arrays["label"], clusters)
        check_labels_fit(arrays, step.num_classes)
        batcher = data.ArrayBatcher(
            arrays,
            batch_size=config.batch_size,
            seed=config.seed,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        first, reference = arrays["image"][:1], arrays["image"]
    eval_labels = functools.partial(evaluation_labels, num_classes=step.num_classes, frequencies=frequencies)
    state = step.init_state(config.seed, data.to_model_range(first) if first.dtype == np.uint8 else first)
    if evaluators is None:
        evaluators = build_evaluators(config, reference) if schedule.eval_every else []

    mesh = make_mesh()
    train_fns = compile_cache.cached(
        compile_cache.config_key("gan_zoo.train", config, mesh), lambda: train_functions(step, mesh, config)
    )
    grid_fn = compiled_generate(generator)
    grid_z = replicate(fixed_latents(config.seed + 1, config.num_samples, step.latent_dim), mesh)
    grid_labels = sample_labels_for_grid(config.num_samples, step.num_classes)
    if grid_labels is not None:
        grid_labels = replicate(grid_labels, mesh)

    def samples(_: int, state: GANTrainState) -> dict[str, np.ndarray]:
        return {
            "g": sample_picture(grid_fn(state.g.params, state.g.batch_stats, grid_z, grid_labels)),
            "ema": sample_picture(grid_fn(state.g_ema_params, state.g.batch_stats, grid_z, grid_labels)),
        }

    def evaluate(done: int, state: GANTrainState) -> dict[str, float]:
        # Images go to the evaluators as uint8, as they would be saved; 2-D points as floats.
        as_output = np.asarray if config.data.source == "mixture" else to_uint8
        sample_fn = lambda num, seed: np.asarray(
            as_output(
                sample_batched(
                    generator,
                    state.g_ema_params,
                    state.g.batch_stats,
                    num=num,
                    seed=seed,
                    labels=eval_labels(num, seed=seed),
                )
            )
        )
        scores: dict[str, float] = {}
        for evaluate_one in evaluators:
            scores.update(evaluate_one(sample_fn, done))
        return scores

    def batches(start: int, calls: Sequence[int]) -> Iterator[dict[str, jax.Array]]:
        return prefetch_to_mesh(
            _call_batches(batcher, step, config.n_critic, start, calls),
            mesh,
            place=_place_call_batch(len(step.sample_shape)),
        )

    hooks = RunHooks(
        overview={"Generator": lambda s: s.g.params, "Discriminator": lambda s: s.d.params},
        samples=samples,
        evaluate=evaluate if evaluators else None,
        prepare=write_labels,
    )
    return run_training(
        workdir=workdir,
        init_state=state,
        train_fns=train_fns,
        batches=batches,
        schedule=schedule,
        mesh=mesh,
        keep_checkpoints=config.keep_checkpoints,
        hooks=hooks,
        progress_bar=bool(config.get("progress_bar", True)),
        run_info=config,
        restart_from_scratch=restart_from_scratch,
    )
