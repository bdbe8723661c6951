"""Who sees which images: the per-class subset draw, the disjointness check, the confidence filter.

Plain numpy, deterministic given the seed. The experiment identifies every real
image by an integer id that is unique across splits, so "the test set is never
seen" is a set statement that `check_disjoint` verifies.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def per_class_subset(labels: np.ndarray, n_per_class: int, *, seed: int, num_classes: int) -> np.ndarray:
    """Rows of `labels` (ascending): `n_per_class` of each class 0..num_classes-1, drawn without replacement.

    Class c's rows are `np.random.default_rng([seed, c]).choice(rows_of_c, n, replace=False)`,
    so each class's draw depends only on (seed, c, its rows), not on the other classes.
    """
    labels = np.asarray(labels)
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}.")
    chosen = []
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)
        if len(rows) < n_per_class:
            raise ValueError(
                f"Class {c} has {len(rows)} training images, fewer than n_per_class={n_per_class}; "
                "use a smaller n_per_class or a larger training split."
            )
        chosen.append(np.random.default_rng([seed, c]).choice(rows, n_per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def check_disjoint(**id_sets: np.ndarray) -> None:
    """Raises ValueError naming both sets and a shared id if any two of the named id sets overlap."""
    names = list(id_sets)
    sets = {name: set(np.asarray(ids).ravel().tolist()) for name, ids in id_sets.items()}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sets[a] & sets[b]
            if shared:
                raise ValueError(
                    f"{a} and {b} share {len(shared)} images (e.g. id {min(shared)}); they must be "
                    "disjoint: the test set may never be trained on."
                )


def top_confident_per_class(
    label_probs: np.ndarray, labels: np.ndarray, keep_per_class: Mapping[int, int] | int
) -> np.ndarray:
    """Rows of the candidates to keep: per class, the `keep` with the highest probability of their own label.

    `label_probs[i]` is a classifier's p(labels[i] | x_i) for candidate i (a GAN
    sample generated for class labels[i]). Ties go to the lower row. Returns rows
    ascending within each class, classes in increasing order.
    """
    label_probs, labels = np.asarray(label_probs), np.asarray(labels)
    if label_probs.shape != labels.shape or label_probs.ndim != 1:
        raise ValueError(f"label_probs {label_probs.shape} and labels {labels.shape} must be equal 1-D shapes.")
    classes = np.unique(labels)
    keep = keep_per_class if isinstance(keep_per_class, Mapping) else {int(c): keep_per_class for c in classes}
    out = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        k = keep[int(c)]
        if k > len(rows):
            raise ValueError(
                f"Asked to keep {k} samples of class {c} but only {len(rows)} were generated; "
                "generate more candidates (filter_oversample)."
            )
        order = np.lexsort((rows, -label_probs[rows]))  # highest probability first, then lower row
        out.append(np.sort(rows[order[:k]]))
    return np.concatenate(out) if out else np.zeros((0,), np.int64)
