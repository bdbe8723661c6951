"""The pure, importable training math: the step and its data-parallel wrappers."""

from jaxgan.train.parallel import (
    BATCH_SPEC,
    MULTI_BATCH_SPEC,
    global_batch,
    make_mesh,
    multi_global_batch,
    pmap_step,
    prefetch_to_mesh,
    process_batch_slice,
    replicate,
    shard_map_step,
)
from jaxgan.train.steps import (GANStep, Regularization, check_batch, ema_decay_from_half_life, ema_update,
                                make_train_step, multi_step, sample_latents)

__all__ = [
    "BATCH_SPEC",
    "MULTI_BATCH_SPEC",
    "GANStep",
    "Regularization",
    "check_batch",
    "ema_decay_from_half_life",
    "ema_update",
    "global_batch",
    "make_mesh",
    "make_train_step",
    "multi_global_batch",
    "multi_step",
    "pmap_step",
    "prefetch_to_mesh",
    "process_batch_slice",
    "replicate",
    "sample_latents",
    "shard_map_step",
]
