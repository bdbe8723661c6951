"""k-means cluster labels of the training data, for cluster-conditioned GANs.

A GAN's generator is a continuous map from a connected latent space, so on data
made of separate modes (digits, object classes) it must spend some latent mass
on the gaps between them, and those samples are neither mode. Conditioning G
and D on a partition of the data removes the gaps from each conditional
problem. Liu, Wang, Bau, Zhu & Torralba 2020 ("Diverse Image Generation via
Self-Conditioned GANs", arXiv:2006.10728) get the partition without labels, by
k-means on the discriminator's features, and G draws the cluster ids of the
real batch (the clusters' frequencies). Here the clustering is of the
training data's pixels (or points), once before training; their first
clustering is of a randomly initialised D's features, and they re-cluster on
the trained D's features every 25,000 steps, which jaxgan does not do.
"""

from __future__ import annotations

import os

import numpy as np


def kmeans_labels(examples: np.ndarray, num_clusters: int, *, seed: int, max_iter: int = 100) -> np.ndarray:
    """int32 [N]: the k-means cluster (Lloyd's algorithm, k-means++ seeding, scikit-learn) of each example,
    on its values flattened and, for uint8 images, scaled to [0, 1]. Deterministic in `seed`."""
    from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top

    examples = np.asarray(examples)
    if not isinstance(num_clusters, (int, np.integer)) or num_clusters < 1:
        raise ValueError(f"num_clusters must be an int >= 1, got {num_clusters!r}.")
    if len(examples) < num_clusters:
        raise ValueError(
            f"{len(examples)} examples cannot form {num_clusters} clusters; use fewer clusters "
            "(data.cluster_labels) or more examples."
        )
    x = examples.reshape(len(examples), -1).astype(np.float32)
    if examples.dtype == np.uint8:
        x /= 255.0
    kmeans = KMeans(n_clusters=int(num_clusters), n_init=1, max_iter=max_iter, random_state=seed)
    return kmeans.fit(x).labels_.astype(np.int32)


def label_frequencies(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float64 [num_classes]: the fraction of `labels` in each class."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("No labels to count.")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels span {labels.min()}..{labels.max()}, outside [0, {num_classes}).")
    return np.bincount(labels, minlength=num_classes) / labels.size


def draw_labels(frequencies: np.ndarray, num: int, *, seed: int) -> np.ndarray:
    """int32 [num] class ids drawn i.i.d. with the given class frequencies (deterministic in `seed`)."""
    p = np.asarray(frequencies, np.float64)
    if p.ndim != 1 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("frequencies must be a 1-D array of non-negative class fractions summing to 1.")
    return np.random.default_rng(seed).choice(len(p), size=num, p=p / p.sum()).astype(np.int32)


LABELS_FILE = "cluster_labels.npz"  # in a run's workdir: its clusters, so a resumed run and sampling reuse them


def save_labels(path: str, labels: np.ndarray, *, num_clusters: int, seed: int) -> None:
    """Writes the labels, their frequencies and how they were made to `path` (.npz), atomically."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(
            f,
            labels=np.asarray(labels, np.int32),
            frequencies=label_frequencies(labels, num_clusters),
            num_clusters=num_clusters,
            seed=seed,
        )
    os.replace(tmp, path)


def load_labels(path: str, *, num_clusters: int, seed: int, num_examples: int) -> np.ndarray | None:
    """The labels saved at `path` (None if there is no file); refuses a file made for other settings."""
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        made = (int(f["num_clusters"]), int(f["seed"]), len(f["labels"]))
        labels = np.asarray(f["labels"])
    if made != (num_clusters, seed, num_examples):
        raise ValueError(
            f"{path} holds {made[0]} clusters of {made[2]} examples (seed {made[1]}), but this run "
            f"asks for {num_clusters} of {num_examples} (seed {seed}): the workdir belongs to another "
            "run. Use a new workdir (the file is kept)."
        )
    return labels


def load_frequencies(path: str) -> np.ndarray | None:
    """The cluster frequencies saved at `path`, or None if there is no file."""
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        return np.asarray(f["frequencies"])
