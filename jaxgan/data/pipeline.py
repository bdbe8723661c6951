"""In-memory image loading and a step-indexed, resumable batch source.

Loaders (`load_tfds_images`, `load_npz_images`, `load_image_folder`) read a
whole dataset into host memory and return a dict of numpy arrays:
  image: uint8 [N, image_size, image_size, channels]
  label: int32 [N] (only when asked for, and supported by the source)
All go through `resize_and_convert`: bilinear antialiased resize to a square
`image_size` (aspect ratio is not preserved for non-square inputs), channel
conversion 1->3 (repeat) or 3->1 (ITU-R 601 luma 0.299R + 0.587G + 0.114B),
then round and clip to uint8.

Nothing here ever downloads: TFDS datasets other than the embedded
`sklearn_digits` must already be prepared in the data dir, otherwise
`load_tfds_images` raises `FileNotFoundError` saying how to prepare them.

`ArrayBatcher` turns the arrays into model batches (images in [-1, 1]) that
are a pure function of (seed, step), so a resumed run sees exactly the batches
of a straight run. TensorFlow is imported lazily, only by the loaders.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator, Mapping

import numpy as np

from jaxgan.common import process_batch_slice, to_model_range

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHUNK = 1024  # images per TF resize call
_LUMA_X1000 = (299, 587, 114)  # ITU-R 601 luma weights, times 1000


# ----------------------------------------------------------------------------
# Small helpers.


def default_data_dir() -> str:
    """`$JAXGAN_DATA_DIR`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
    for var in ("JAXGAN_DATA_DIR", "TFDS_DATA_DIR"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    return os.path.expanduser(os.path.join("~", "tensorflow_datasets"))


_TF_READY = False


def _tf():
    """Imports TensorFlow, hiding GPUs from it so it never grabs JAX's memory."""
    global _TF_READY
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if not _TF_READY:
        try:
            tf.config.set_visible_devices([], "GPU")
        except (RuntimeError, ValueError):  # TF already initialized its devices.
            pass
        _TF_READY = True
    return tf


# ----------------------------------------------------------------------------
# Resizing and channel conversion (one implementation for every source).


def _check_channels(in_channels: int | None, channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    if in_channels not in (1, 3):
        raise ValueError(
            f"Cannot convert images with {in_channels} channels to {channels}: "
            "only 1->1, 3->3, 1->3 (repeat) and 3->1 (luma) are supported."
        )


def _resize_convert_tf(images, image_size: int, channels: int):
    """TF core of `resize_and_convert` on a uint8 [B, H, W, C] tensor."""
    tf = _tf()
    in_channels = images.shape[-1]
    _check_channels(in_channels, channels)
    x = tf.cast(images, tf.float32)
    if in_channels == 3 and channels == 1:
        # Integer-weighted sum then /1000: exact for uint8 inputs, so a .5 tie
        # rounds the same way as numpy's np.round (half to even).
        w = tf.constant(_LUMA_X1000, tf.float32)
        x = tf.reduce_sum(x * w, axis=-1, keepdims=True) / 1000.0
    if tuple(images.shape[1:3]) != (image_size, image_size):
        x = tf.image.resize(x, [image_size, image_size], method="bilinear", antialias=True)
    if in_channels == 1 and channels == 3:
        x = tf.repeat(x, 3, axis=-1)
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def resize_and_convert(images: np.ndarray, *, image_size: int, channels: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> uint8 [N, image_size, image_size, channels]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"Expected uint8 images [N, H, W, C], got {images.dtype} {images.shape}."
        )
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}.")
    _check_channels(images.shape[-1], channels)
    if images.shape[1:] == (image_size, image_size, channels):
        return images.copy()
    if len(images) == 0:
        return np.zeros((0, image_size, image_size, channels), np.uint8)
    tf = _tf()
    out = [
        _resize_convert_tf(tf.constant(images[i : i + _CHUNK]), image_size, channels).numpy()
        for i in range(0, len(images), _CHUNK)
    ]
    return np.concatenate(out)


# ----------------------------------------------------------------------------
# TFDS.


def _is_prepared(builder) -> bool:
    """`builder.is_prepared()` without TFDS' warning for a missing folder."""
    info = os.path.join(os.fspath(builder.data_path), "dataset_info.json")
    return os.path.exists(info) and builder.is_prepared()


def _not_prepared_error(name: str, builder, data_dir: str) -> FileNotFoundError:
    msg = (
        f"TFDS dataset '{name}' is not prepared in data_dir '{data_dir}' (no "
        f"dataset at {builder.data_path}); jaxgan never downloads data. Prepare "
        f"it once where there is internet with `tfds build {name} "
        f"--data_dir={data_dir}` (or tfds.builder('{name}', "
        f"data_dir='{data_dir}').download_and_prepare()), or point $JAXGAN_DATA_DIR "
        "/ data_dir at a folder where it is prepared. Manual-download datasets "
        "need download_and_prepare(download_config=tfds.download.DownloadConfig("
        "manual_dir=DIR)) with the files placed in DIR."
    )
    if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
        msg += f" Manual download instructions: {builder.MANUAL_DOWNLOAD_INSTRUCTIONS}"
    return FileNotFoundError(msg)


def _check_split(name: str, builder, split: str) -> None:
    available = sorted(builder.info.splits.keys())
    for part in split.split("+"):
        base = re.sub(r"\[.*\]$", "", part.strip())
        if base not in available:
            raise ValueError(
                f"Dataset '{name}' has no split '{base}' (asked for split='{split}'); "
                f"available splits: {available}."
            )


def _tfds_builder(name: str, data_dir: str):
    """A prepared TFDS builder; `sklearn_digits` is built on first use."""
    if name.split(":")[0] == "sklearn_digits":
        from jaxgan.data.digits import build_digits  # pylint: disable=g-import-not-at-top

        return build_digits(data_dir)
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = tfds.builder(name, data_dir=data_dir)
    if not _is_prepared(builder):
        raise _not_prepared_error(name, builder, data_dir)
    return builder


def load_tfds_images(
    name: str,
    *,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int,
    channels: int,
    with_labels: bool = False,
) -> dict[str, np.ndarray]:
    """Loads a whole TFDS split into memory as {'image': uint8, ['label': int32]}.

    `name` must be prepared in `data_dir` (default: `default_data_dir()`),
    except `sklearn_digits`, which is built offline on first use. Raises
    FileNotFoundError for an unprepared dataset (never downloads) and
    ValueError for an unknown split, a missing 'image'/'label' feature or an
    image format that cannot be converted.
    """
    tf = _tf()
    data_dir = os.fspath(data_dir) if data_dir else default_data_dir()
    builder = _tfds_builder(name, data_dir)
    _check_split(name, builder, split)
    features = builder.info.features
    keys = ["image"] + (["label"] if with_labels else [])
    for key in keys:
        if key not in features:
            raise ValueError(
                f"Dataset '{name}' has no '{key}' feature"
                + (" (labels were requested with with_labels=True)" if key == "label" else "")
                + f"; its features are {sorted(features.keys())}."
            )
    ds = builder.as_dataset(split=split, shuffle_files=False)
    spec = ds.element_spec["image"]
    if spec.dtype != tf.uint8 or spec.shape.rank != 3:
        raise ValueError(
            f"Dataset '{name}': 'image' must be uint8 [H, W, C], got {spec.dtype.name} "
            f"{spec.shape}."
        )
    _check_channels(spec.shape[-1], channels)
    return _materialize(ds, keys, spec.shape.is_fully_defined(), image_size, channels)


def _materialize(ds, keys, fixed_shape: bool, image_size: int, channels: int):
    """Runs the resize in tf.data and collects the whole split as numpy."""
    tf = _tf()
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options).map(lambda ex: {k: ex[k] for k in keys})

    def convert(ex, batched: bool):
        x = ex["image"] if batched else ex["image"][None]
        x = _resize_convert_tf(x, image_size, channels)
        return {**ex, "image": x if batched else x[0]}

    if fixed_shape:
        ds = ds.batch(_CHUNK).map(lambda ex: convert(ex, True))
    else:  # Variable image sizes: resize each example before batching.
        ds = ds.map(lambda ex: convert(ex, False)).batch(_CHUNK)
    chunks = [{k: v.numpy() for k, v in ex.items()} for ex in ds]
    if not chunks:
        out = {"image": np.zeros((0, image_size, image_size, channels), np.uint8)}
        if "label" in keys:
            out["label"] = np.zeros((0,), np.int32)
        return out
    out = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
    if "label" in out:
        out["label"] = out["label"].astype(np.int32)
    return out


# ----------------------------------------------------------------------------
# User files.


def _as_nhwc_uint8(images: np.ndarray, source: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{source}: 'images' must be uint8, got {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{source}: 'images' must be [N, H, W] or [N, H, W, C], got shape {images.shape}."
        )
    return images


def load_npz_images(
    path: str | os.PathLike[str],
    *,
    image_size: int,
    channels: int,
    with_labels: bool = False,
) -> dict[str, np.ndarray]:
    """Loads `images` (uint8 NHWC or NHW) and optional `labels` from a .npz file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path}")
    z = np.load(path, allow_pickle=False)
    if not hasattr(z, "files"):
        raise ValueError(f"{path} is not an .npz archive (write it with np.savez).")
    with z:
        if "images" not in z.files:
            raise ValueError(f"{path} has no 'images' array; its keys are {z.files}.")
        images = _as_nhwc_uint8(z["images"], path)
        labels = z["labels"] if "labels" in z.files else None
    out = {"image": resize_and_convert(images, image_size=image_size, channels=channels)}
    if with_labels:
        if labels is None:
            raise ValueError(f"with_labels=True but {path} has no 'labels' array.")
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{path}: 'labels' must be integers of shape ({len(images)},), got "
                f"{labels.dtype} {labels.shape}."
            )
        out["label"] = labels.astype(np.int32)
    return out


def _read_image(path: str) -> np.ndarray:
    """Decodes one file to uint8 [H, W, 1] (grayscale) or [H, W, 3] (otherwise)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    with Image.open(path) as im:
        gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
        arr = np.asarray(im.convert("L" if gray else "RGB"), np.uint8)
    return arr[..., None] if gray else arr


def load_image_folder(
    path: str | os.PathLike[str], *, image_size: int, channels: int
) -> dict[str, np.ndarray]:
    """Loads every PNG/JPEG directly in `path` (sorted by file name)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No such image folder: {path}")
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(_IMAGE_SUFFIXES))
    if not names:
        raise ValueError(f"No PNG/JPEG files ({', '.join(_IMAGE_SUFFIXES)}) in {path}.")
    decoded = [_read_image(os.path.join(path, n)) for n in names]
    out = np.zeros((len(names), image_size, image_size, channels), np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, arr in enumerate(decoded):
        by_shape.setdefault(arr.shape, []).append(i)
    for idx in by_shape.values():
        batch = np.stack([decoded[i] for i in idx])
        out[idx] = resize_and_convert(batch, image_size=image_size, channels=channels)
    return {"image": out}


# ----------------------------------------------------------------------------
# Batching.


class ArrayBatcher:
    """Deterministic, step-indexed batches over in-memory arrays.

    The example order is an endless stream: epoch e is the permutation
    `np.random.default_rng([seed, e]).permutation(N)`, and the epochs follow
    each other. Global batch `step` is stream positions [step * B, (step + 1) * B),
    so every batch is full (the step needs equal shards), a batch at an epoch
    boundary takes the end of epoch e and continues with the start of epoch
    e + 1, and each N consecutive positions hold every example exactly once.

    Process p of P gets rows [p*B/P, (p+1)*B/P) of the global batch. Images
    ('image', uint8) come out as float32 in [-1, 1] (float32 samples, such as 2-D
    points, as they are), 'label' as int32; other
    arrays are passed through. `batch_at(step)` depends only on
    (arrays, batch_size, seed, step, process_index, process_count).
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self._arrays = {k: np.asarray(v) for k, v in arrays.items()}
        sizes = {k: len(v) for k, v in self._arrays.items()}
        if not sizes or len(set(sizes.values())) != 1 or 0 in sizes.values():
            raise ValueError(f"arrays must be non-empty with one common length, got {sizes}.")
        if "image" in self._arrays and self._arrays["image"].dtype not in (np.uint8, np.float32):
            raise ValueError(f"'image' must be uint8 images or float32 samples already in the model's range "
                             f"(e.g. 2-D points), got {self._arrays['image'].dtype}.")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count}).")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self._rows = process_batch_slice(batch_size, process_index, process_count)
        self.local_batch_size = self._rows.stop - self._rows.start
        self.batch_size = batch_size
        self.num_examples = next(iter(sizes.values()))
        self._seed = int(seed)
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 4:
                self._perms.pop(next(iter(self._perms)))
            self._perms[epoch] = np.random.default_rng([self._seed, epoch]).permutation(
                self.num_examples
            )
        return self._perms[epoch]

    def indices_at(self, step: int) -> np.ndarray:
        """Rows of `arrays` in this process's part of global batch `step`."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}.")
        start = step * self.batch_size + self._rows.start
        pos = np.arange(start, start + self.local_batch_size, dtype=np.int64)
        epochs, offsets = np.divmod(pos, self.num_examples)
        out = np.empty_like(pos)
        for e in np.unique(epochs):
            mask = epochs == e
            out[mask] = self._perm(int(e))[offsets[mask]]
        return out

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's part of global batch number `step` (see class doc)."""
        idx = self.indices_at(step)
        out: dict[str, Any] = {}
        for key, arr in self._arrays.items():
            rows = arr[idx]
            if key == "image" and rows.dtype == np.uint8:
                rows = to_model_range(rows)
            elif key == "label":
                rows = rows.astype(np.int32)
            out[key] = rows
        return out

    def iterate(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Yields batch_at(s) for s = start_step, start_step + 1, ... forever."""
        step = start_step
        while True:
            yield self.batch_at(step)
            step += 1

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.iterate(0)
