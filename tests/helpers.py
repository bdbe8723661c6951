"""Small helpers shared by several test modules (importable as `tests.helpers`)."""

from __future__ import annotations

import jax
import numpy as np

from jaxgan.metrics import inception


def random_inception_variables(seed: int = 0, feature_dim: int = 64) -> dict:
    """Random but well-scaled FID Inception variables up to `feature_dim` (no download needed)."""
    shapes = inception.param_shapes(feature_dim)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:3]))).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 2.0, size=leaf.shape).astype(np.float32)
        return rng.normal(scale=0.1, size=leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def write_mock_tfds_metadata(root, name: str, splits: dict[str, int]) -> None:
    """Writes dataset_info.json/features.json so `tfds.testing.mock_data(policy=USE_FILES,
    data_dir=root)` knows the splits of `name` (e.g. "mnist", "cycle_gan/horse2zebra").

    Without metadata, mock_data falls back to MockPolicy.USE_CODE and points every
    builder at a non-existent data_dir, so the dataset is not "prepared".
    """
    import os

    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(root))
    path = builder.data_path
    infos = [
        tfds.core.SplitInfo(
            name=split, shard_lengths=[n], num_bytes=0,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=path, template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                dataset_name=builder.name, split=split, filetype_suffix="tfrecord",
            ),
        )
        for split, n in splits.items()
    ]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    os.makedirs(path, exist_ok=True)
    builder.info.write_to_directory(path)
