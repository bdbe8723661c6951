"""The old name of `jaxgan.translation.orchestrate`, the CycleGAN / pix2pix orchestrator.

Kept so that `from jaxgan.translation import loop` and the names it held keep working.
"""

from jaxgan.translation.orchestrate import (
    MODELS,
    abstract_state,
    build_step,
    compiled_step,  # noqa: F401
    load_data,
    sample_triplets,
    train_and_evaluate,
    triplet_pictures,
    validate,
)
