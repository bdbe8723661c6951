"""jaxgan: a JAX/Flax toolkit for training GANs.

`import jaxgan` loads the pure training math only (nets, losses, state, step);
it never imports TensorFlow, TFDS, Orbax or CLU. The I/O layers live in
`jaxgan.data`, `jaxgan.checkpoint` and `jaxgan.loop`, imported explicitly.
"""

__version__ = "0.1.0"

from jaxgan import augment, latent, losses, nets, optim, regularizers
from jaxgan.common import DATA_AXIS, to_model_range, to_uint8
from jaxgan.losses import AdversarialLoss, get_loss
from jaxgan.state import GANTrainState, NetState, abstract_train_state, create_train_state
from jaxgan.train import (
    GANStep,
    Regularization,
    global_batch,
    make_mesh,
    make_train_step,
    multi_step,
    pmap_step,
    process_batch_slice,
    replicate,
    shard_map_step,
)

__all__ = [
    "DATA_AXIS",
    "AdversarialLoss",
    "GANStep",
    "GANTrainState",
    "Regularization",
    "NetState",
    "abstract_train_state",
    "augment",
    "create_train_state",
    "get_loss",
    "global_batch",
    "latent",
    "losses",
    "make_mesh",
    "make_train_step",
    "multi_step",
    "nets",
    "optim",
    "pmap_step",
    "process_batch_slice",
    "regularizers",
    "replicate",
    "shard_map_step",
    "to_model_range",
    "to_uint8",
]
