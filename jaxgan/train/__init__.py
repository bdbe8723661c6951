"""The pure, importable training math: the step and its data-parallel wrappers.

Modules: `steps` (the GAN step, `make_train_step`), `terms` (its loss terms and `Regularization`),
`keys` (its named random keys), `ema` (G's EMA), `checks` (option and batch checks), `multi`
(K steps per call), `kit` (what every step is built from: `update_net`, `compile_init`),
`parallel` (shard_map / pmap wrappers, meshes, batches) and `seeds` (many seeds at once).
"""

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
from jaxgan.train.checks import check_batch
from jaxgan.train.ema import ema_decay_from_half_life, ema_decay_with_warmup, ema_update
from jaxgan.train.keys import sample_latents
from jaxgan.train.kit import compile_init, update_net
from jaxgan.train.multi import multi_step
from jaxgan.train.steps import GANStep, make_train_step
from jaxgan.train.terms import Regularization

__all__ = [
    "BATCH_SPEC",
    "MULTI_BATCH_SPEC",
    "GANStep",
    "Regularization",
    "check_batch",
    "compile_init",
    "ema_decay_from_half_life",
    "ema_decay_with_warmup",
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
    "update_net",
]
