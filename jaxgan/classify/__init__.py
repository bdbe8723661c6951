"""A small image classifier for the GAN data-augmentation experiment (pure, no I/O).

`experiments/augment_classifier.py` trains the same small CNN on real images,
on real images with classic augmentation, and on real plus class-conditional
GAN samples, to measure whether GAN samples help a classifier that has few
labels. This package holds the parts that are not I/O:

- `model`: the Flax CNN (`SmallCNN`).
- `augment`: classic augmentations (integer shifts, small rotations, elastic
  deformation) as pure JAX functions of (rng, images).
- `train`: the classifier state, the pure jitted Optax train step, K steps of
  many seeds in one call, and evaluation.
- `subsets`: the stratified per-class subset draw, the split-disjointness check
  and the confidence filter for GAN samples (numpy).

Nothing here reads a config or a file.
"""

from jaxgan.classify.augment import classic_augment, elastic_displacement, rotation_shift_coordinates, warp
from jaxgan.classify.model import PatchConv, SmallCNN, max_pool_2x2
from jaxgan.classify.subsets import check_disjoint, per_class_subset, top_confident_per_class
from jaxgan.classify.train import (
    ClassifierState,
    accuracy,
    create_state,
    fit,
    make_fit_seeds,
    predict_logits,
    train_step,
)

__all__ = [
    "ClassifierState",
    "PatchConv",
    "SmallCNN",
    "accuracy",
    "check_disjoint",
    "classic_augment",
    "create_state",
    "elastic_displacement",
    "fit",
    "make_fit_seeds",
    "max_pool_2x2",
    "per_class_subset",
    "predict_logits",
    "rotation_shift_coordinates",
    "top_confident_per_class",
    "train_step",
    "warp",
]
