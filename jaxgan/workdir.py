"""Use a trained run from Python: load a workdir, get its generator.

    gan = jaxgan.workdir.load_generator("workdirs/dcgan-...")
    images = gan.sample_uint8(64, seed=0)  # uint8 [64, 32, 32, 1]

The networks are rebuilt from WORKDIR/config.json (written when the run
started, by any jaxgan version: `jaxgan.build` reads each field with the
default it had before the field existed) and the parameters restored from the
latest readable checkpoint, so no Python object from the training process is
needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxgan import checkpoint
from jaxgan.build import build
from jaxgan.common import Params, to_uint8
from jaxgan.config import data_shape
from jaxgan.data import clusters
from jaxgan.sampling import sample_batched


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run in `workdir` was started with."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist: {workdir!r} is not a jaxgan workdir (experiments/train.py writes "
            "config.json there when a run starts)."
        )
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


@dataclasses.dataclass(frozen=True)
class TrainedGenerator:
    """A generator with its restored parameters; `sample*` are deterministic in the seed."""

    config: ml_collections.ConfigDict
    step: int
    ema: bool
    generator: nn.Module
    params: Params
    batch_stats: Params
    label_frequencies: np.ndarray | None = None  # k-means cluster labels (data.cluster_labels): their frequencies

    @property
    def num_classes(self) -> int:
        return int(getattr(self.generator, "num_classes", 0))

    def with_truncation_psi(self, psi: float) -> TrainedGenerator:
        """StyleGAN2's truncation in W (Karras et al. 2019): w <- w_avg + psi (w - w_avg), psi in [0, 1]."""
        if not hasattr(self.generator, "truncation_psi"):
            raise ValueError(
                f"truncation psi is StyleGAN2's truncation in W; this run's generator "
                f"({type(self.generator).__name__}) has no W space. Use --truncation (BigGAN's) instead."
            )
        if not 0.0 <= psi <= 1.0:
            raise ValueError(f"truncation psi must lie in [0, 1] (1 = none), got {psi!r}.")
        return dataclasses.replace(self, generator=self.generator.clone(truncation_psi=float(psi)))

    def sample(
        self, num: int, *, seed: int = 0, labels: Any = None, batch_size: int = 256, truncation: float | None = None
    ) -> np.ndarray:
        """`num` samples in the model's range (images in [-1, 1], points unbounded). A generator conditioned on
        k-means clusters draws its labels with the clusters' frequencies (from `seed`) unless given them.
        `truncation`: BigGAN's truncation trick (`jaxgan.sampling.fixed_latents`); None = N(0, I) latents."""
        if self.num_classes and labels is None:
            if self.label_frequencies is None:
                raise ValueError(f"This generator is conditional on {self.num_classes} classes; pass labels.")
            labels = clusters.draw_labels(self.label_frequencies, num, seed=seed)
        if labels is not None:
            labels = np.asarray(labels)
            if not self.num_classes:
                raise ValueError("This generator is unconditional; do not pass labels.")
            if labels.min() < 0 or labels.max() >= self.num_classes:
                raise ValueError(f"labels must lie in [0, {self.num_classes}), got {labels.min()}..{labels.max()}.")
        return sample_batched(
            self.generator,
            self.params,
            self.batch_stats,
            num=num,
            seed=seed,
            labels=labels,
            batch_size=batch_size,
            truncation=truncation,
        )

    def sample_uint8(self, num: int, **kwargs: Any) -> np.ndarray:
        """`num` images as uint8 NHWC."""
        return np.asarray(to_uint8(self.sample(num, **kwargs)))


def load_generator(workdir: str, *, ema: bool = True) -> TrainedGenerator:
    """The generator of the latest readable checkpoint in `workdir` (its EMA weights by default)."""
    config = load_config(workdir)
    built = build(config)  # not re-validated: the config was when its run started
    generator, step = built.generator, built.step
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.eval_shape(lambda: step.init_state(0, np.zeros((1, *data_shape(config)), np.float32)))
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    directory = os.path.join(workdir, "checkpoints")
    with checkpoint.checkpoint_manager(directory, read_only=True) as manager:  # a reader: moves nothing
        state, step = checkpoint.restore_latest(manager, abstract)
    if step is None:
        raise FileNotFoundError(f"No checkpoint in {directory}; train first (experiments/train.py --workdir=...).")
    frequencies = None
    if config.data.get("cluster_labels", 0):
        frequencies = clusters.load_frequencies(os.path.join(workdir, clusters.LABELS_FILE))
        if frequencies is None:
            raise FileNotFoundError(
                f"{workdir} trained on k-means cluster labels, but its {clusters.LABELS_FILE} "
                "is missing; without the clusters' frequencies its samples cannot be drawn."
            )
    return TrainedGenerator(
        config=config,
        step=step,
        ema=ema,
        generator=generator,
        params=state.g_ema_params if ema else state.g.params,
        batch_stats=state.g.batch_stats,
        label_frequencies=frequencies,
    )
