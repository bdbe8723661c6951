"""`sklearn_digits`: scikit-learn's 8x8 digits as an offline TFDS dataset.

The 1797 images of `sklearn.datasets.load_digits()` (values 0..16) ship with
scikit-learn, so this builder needs no download: it is the toolkit's offline
default dataset and goes through exactly the same TFDS path as mnist & co.

Features:
  image: uint8 (8, 8, 1), pixel = round(v * 255 / 16) (exact: (255 v + 8) // 16).
  label: ClassLabel(num_classes=10).

Splits (deterministic, no RNG, stratified, ~80/20): within each class, taking
that class's examples in `load_digits()` order, the j-th one (j = 0, 1, ...)
goes to `test` iff j % 5 == 4, otherwise to `train`. That gives 1442 train and
355 test examples. Examples are stored in `load_digits()` order within each
split (shuffling at write time is disabled), see `split_indices()`.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxgan.data.pipeline import _is_prepared

NAME = "sklearn_digits"
_TEST_EVERY = 5  # within a class, every 5th example goes to `test`


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (uint8 images [N, 8, 8, 1] in 0..255, int64 labels [N])."""
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

    d = load_digits()
    v = np.asarray(d.images).astype(np.int64)  # exact integers 0..16
    images = ((v * 255 + 8) // 16).astype(np.uint8)[..., None]
    return images, np.asarray(d.target, np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices (ascending) of `load_digits()` in each split; see module doc."""
    labels = np.asarray(labels)
    rank_in_class = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rank_in_class[rows] = np.arange(len(rows))
    is_test = rank_in_class % _TEST_EVERY == _TEST_EVERY - 1
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _already_registered() -> bool:
    """Whether a builder named `sklearn_digits` is already registered.

    TFDS registers every concrete builder by name when its class is created and
    raises on a second registration, which happens when this module is executed
    twice (importlib.reload, or imported under two module names). The second
    definition then skips registration; `tfds.builder(NAME)` keeps the first.
    """
    try:
        return NAME in tfds.core.registered.list_imported_builders()
    except AttributeError:  # very old/new TFDS without that helper
        return NAME in tfds.list_builders(with_community_datasets=False)


class SklearnDigits(tfds.core.GeneratorBasedBuilder, skip_registration=_already_registered()):
    """scikit-learn's 8x8 handwritten digits (offline; see module docstring)."""

    # 1.1.0: the same examples in ArrayRecord files, which `tfds.data_source` reads record by record
    # (jaxgan's streaming pipeline); a 1.0.0 folder prepared as TFRecord is left as it was.
    VERSION = tfds.core.Version("1.1.0")
    # TFDS 4.9.10 derives `code_path` via the `importlib_resources` backport,
    # which it only depends on for Python < 3.9, so `download_and_prepare` of a
    # builder defined outside TFDS crashes with ModuleNotFoundError. Pin it.
    code_path = epath.Path(__file__)
    RELEASE_NOTES = {"1.0.0": "Initial release.", "1.1.0": "ArrayRecord files; the same examples."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "scikit-learn load_digits(): 1797 8x8 grayscale digits, values "
                "0..16 scaled to 0..255 as round(v*255/16). Deterministic "
                "stratified split: within each class, every 5th example (in "
                "load_digits order) is test."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the data ships with scikit-learn.
        images, labels = digits_arrays()
        return {
            split: self._generate_examples(images[idx], labels[idx], idx)
            for split, idx in split_indices(labels).items()
        }

    def _generate_examples(self, images, labels, rows):
        for image, label, row in zip(images, labels, rows):
            yield int(row), {"image": image, "label": int(label)}


def build_digits(data_dir: str | os.PathLike[str]) -> SklearnDigits:
    """Returns the `sklearn_digits` builder in `data_dir`, preparing it if needed.

    Offline and quiet (no progress bars); preparing takes about half a second
    once TensorFlow is imported. If another process prepares the same folder
    concurrently, whichever finishes first wins and both get a ready builder.
    """
    data_dir = os.fspath(data_dir)
    builder = SklearnDigits(data_dir=data_dir, file_format="array_record")
    if _is_prepared(builder):
        return builder
    try:
        with _no_progress_bar():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    except Exception:  # pylint: disable=broad-except
        builder = SklearnDigits(data_dir=data_dir, file_format="array_record")
        if not _is_prepared(builder):  # Not a lost race: a real failure.
            raise
    return builder


class _no_progress_bar:  # pylint: disable=invalid-name
    """Temporarily disables TFDS' tqdm bars, restoring the previous setting."""

    def __enter__(self):
        from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top

        self._prev = getattr(tqdm_utils, "_active", True)
        tfds.display_progress_bar(False)

    def __exit__(self, *exc):
        tfds.display_progress_bar(self._prev)
        return False
