"""In-memory image loading and a step-indexed, resumable batch source.

Loaders (`load_tfds_images`, `load_npz_images`, `load_image_folder`) read a
whole dataset into host memory and return a dict of numpy arrays:
  image: uint8 [N, image_size, image_size, channels]
  label: int32 [N] (only when asked for, and supported by the source)
All go through `resize_and_convert`: bilinear antialiased resize to a square
`image_size` (aspect ratio is not preserved for non-square inputs), channel
conversion 1->3 (repeat) or 3->1 (ITU-R 601 luma 0.299R + 0.587G + 0.114B),
then round and clip to uint8. Every loader checks `channels` (1 or 3) and
`image_size` before it reads anything, and names the offending file, key or
dataset name in a one-line ValueError.

Nothing here ever downloads: TFDS datasets other than the embedded
`sklearn_digits` must already be prepared in the data dir, otherwise
`load_tfds_images` raises `FileNotFoundError` saying how to prepare them.

`ArrayBatcher` turns the arrays into model batches (images in [-1, 1]) that
are a pure function of (seed, step), so a resumed run sees exactly the batches
of a straight run. TensorFlow is imported lazily, only by the loaders.
"""

from __future__ import annotations

import difflib
import os
import re
import struct
import threading
import zipfile
import zlib
from typing import Any, Iterator, Mapping

import numpy as np

from jaxgan.common import process_batch_slice, to_model_range

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHUNK = 1024  # images per TF resize call
_LUMA_X1000 = (299, 587, 114)  # ITU-R 601 luma weights, times 1000
_NPZ_HOWTO = "write one with np.savez(path, images=<uint8 array [N, H, W, C]>)"


# ----------------------------------------------------------------------------
# Small helpers.


def default_data_dir() -> str:
    """`$JAXGAN_DATA_DIR`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
    for var in ("JAXGAN_DATA_DIR", "TFDS_DATA_DIR"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    return os.path.expanduser(os.path.join("~", "tensorflow_datasets"))


def _one_line(e: BaseException) -> str:
    """'Type: message' of a third-party exception, on one line, to quote inside our own error."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}".rstrip(": ")


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


def _check_target(channels: Any, image_size: Any = 1) -> None:
    """The loaders' first check: the model's channels (1 or 3) and a positive int image_size."""
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels not in (1, 3):
        raise ValueError(
            f"data.channels={channels!r}: jaxgan trains on 1 (grayscale) or 3 (RGB) channels; set "
            "--config.data.channels=1 or 3."
        )
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(
            f"data.image_size={image_size!r}: image_size must be a positive int (the side of the "
            "square training images); set --config.data.image_size, e.g. to 32."
        )


def _check_channels(in_channels: int | None, channels: int) -> None:
    _check_target(channels)
    if in_channels not in (1, 3):
        raise ValueError(
            f"Cannot convert images with {in_channels} channels to {channels}: "
            "only 1->1, 3->3, 1->3 (repeat) and 3->1 (luma) are supported; give the "
            "source 1 (grayscale) or 3 (RGB) channels (e.g. drop alpha with images[..., :3])."
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
    _check_target(channels, image_size)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"Expected uint8 images [N, H, W, C], got {images.dtype} {images.shape}.")
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
        f"--data_dir={data_dir} --file_format=array_record` (or tfds.builder('{name}', "
        f"data_dir='{data_dir}', file_format='array_record').download_and_prepare(); ArrayRecord is "
        "what jaxgan streams), or point $JAXGAN_DATA_DIR "
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
                f"Dataset '{name}' has no split '{base}' (asked for split='{split}'); available splits: {available}."
            )


def _tfds_builder(name: str, data_dir: str):
    """A prepared TFDS builder; `sklearn_digits` is built on first use."""
    if name.split(":")[0] == "sklearn_digits":
        from jaxgan.data.digits import build_digits  # pylint: disable=g-import-not-at-top

        return build_digits(data_dir)
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(_unknown_dataset_message(tfds, name, data_dir)) from e
    except (ValueError, AssertionError) as e:  # a bad /config or :version, or a malformed name
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        first = re.sub(r'^Failed to construct dataset .*?}": ', "", first)  # TFDS' repeat of name and data_dir
        first = re.sub(r"\s*Here are \d+ BuilderConfigs.*$", "", first)  # the list itself is on later lines
        first = first.rstrip(" :.") + "."
        raise ValueError(
            f"TFDS cannot open dataset '{name}': {first} Fix the name (dataset[/config][:version]); the TFDS "
            f"catalog page of '{_base_name(name)}' lists its configs and versions."
        ) from e
    if not _is_prepared(builder):
        raise _not_prepared_error(name, builder, data_dir)
    return builder


def _base_name(name: str) -> str:
    return re.split(r"[/:]", name, maxsplit=1)[0]


def _unknown_dataset_message(tfds, name: str, data_dir: str) -> str:
    """One line for a name TFDS does not know, with close matches among its registered datasets
    (the same list and difflib matcher as TFDS' own 'Did you mean' hint)."""
    try:
        names = tfds.list_builders(with_community_datasets=False)
    except Exception:  # pylint: disable=broad-except  # the hint is optional
        names = []
    close = difflib.get_close_matches(_base_name(name), names, n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return (
        f"Unknown TFDS dataset '{name}': TFDS has no dataset of that name and none is prepared in data_dir "
        f"'{data_dir}'; {hint}Check the name against tfds.list_builders() or "
        "https://www.tensorflow.org/datasets/catalog (prepare it with `tfds build NAME`), or use "
        "data.source='npz' or 'folder' for your own images."
    )


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
    ValueError for channels not 1 or 3, an unknown dataset name (with close
    matches), an unknown split, a missing 'image'/'label' feature or an image
    format that cannot be converted.
    """
    _check_target(channels, image_size)
    tf = _tf()
    data_dir = os.fspath(data_dir) if data_dir else default_data_dir()
    builder = _tfds_builder(name, data_dir)
    _check_split(name, builder, split)
    keys = _check_features(name, builder, with_labels)
    from jaxgan.data.sources import TfdsSource, is_array_record  # pylint: disable=g-import-not-at-top

    if is_array_record(builder):  # no tf.data reader: read its records
        source = TfdsSource.of_builder(builder, name, split=split, keys=keys, data_dir=data_dir)
        return read_records(source, range(len(source)), image_size=image_size, channels=channels)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    spec = ds.element_spec["image"]
    if spec.dtype != tf.uint8 or spec.shape.rank != 3:
        raise ValueError(f"Dataset '{name}': 'image' must be uint8 [H, W, C], got {spec.dtype.name} {spec.shape}.")
    _check_channels(spec.shape[-1], channels)
    return _materialize(ds, keys, spec.shape.is_fully_defined(), image_size, channels)


def _check_features(name: str, builder, with_labels: bool) -> list[str]:
    """The features to read ('image', and 'label' with labels), or a ValueError naming the missing one."""
    features = builder.info.features
    keys = ["image"] + (["label"] if with_labels else [])
    for key in keys:
        if key not in features:
            raise ValueError(
                f"Dataset '{name}' has no '{key}' feature"
                + (" (labels were requested with with_labels=True)" if key == "label" else "")
                + f"; its features are {sorted(features.keys())}."
            )
    return keys


def read_records(source, indices, *, image_size: int, channels: int) -> dict[str, np.ndarray]:
    """Records `indices` of a random-access source (`jaxgan.data.sources`) as {'image': uint8 [n, image_size,
    image_size, channels], ['label': int32 [n]]}: decoded one by one, resized and converted together per
    stored shape by `resize_and_convert` (so identical to the in-memory loaders)."""
    records = [source[int(i)] for i in indices]
    if not records:
        raise ValueError(f"No records to read from {source!r}.")
    out = {"image": np.zeros((len(records), image_size, image_size, channels), np.uint8)}
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, r in enumerate(records):
        by_shape.setdefault(np.shape(r["image"]), []).append(i)
    for rows in by_shape.values():
        batch = np.stack([records[i]["image"] for i in rows])
        out["image"][rows] = resize_and_convert(batch, image_size=image_size, channels=channels)
    if "label" in records[0]:
        out["label"] = np.asarray([r["label"] for r in records], np.int32)
    return out


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


def as_nhwc_shape(shape: tuple[int, ...], dtype: Any, source: str) -> tuple[int, int, int]:
    """The [H, W, C] of one image of a stored 'images' array of `shape` and `dtype`, or a one-line
    ValueError naming `source` (wrong dtype, rank or channels, no images, or one image saved alone)."""
    shape = tuple(int(d) for d in shape)
    if np.dtype(dtype) != np.uint8:
        raise ValueError(
            f"{source}: 'images' must be uint8, got {np.dtype(dtype)}; scale the pixels to 0..255 and "
            "save images.astype(np.uint8)."
        )
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[1] > shape[-1]:
        # [N, H, W] with W = 3 or 4 is no plausible training set; it is one colour image.
        raise ValueError(
            f"{source}: 'images' has shape {shape}, which looks like one [H, W, C] image; "
            "save a batch [N, H, W, C] (images[None] for a single image)."
        )
    if int(np.prod(shape)) == 0:
        raise ValueError(f"{source}: 'images' holds no images (shape {shape}); {_NPZ_HOWTO}.")
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4:
        raise ValueError(f"{source}: 'images' must be [N, H, W] or [N, H, W, C], got shape {shape}.")
    if shape[-1] not in (1, 3):
        raise ValueError(
            f"{source}: 'images' has {shape[-1]} channels (shape {shape}); jaxgan "
            "reads 1 (grayscale) or 3 (RGB): drop alpha with images[..., :3] before saving."
        )
    return shape[1:]


def as_nhwc_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """A stored 'images' array as uint8 [N, H, W, C] (C 1 or 3), checked by `as_nhwc_shape`."""
    images = np.asarray(images)
    return images.reshape((len(images), *as_nhwc_shape(images.shape, images.dtype, source)))


def _open_npz(path: str):
    """np.load of an .npz (never unpickling), or a one-line ValueError saying what the file is instead."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path}: a .npy array file, not an .npz archive; {_NPZ_HOWTO}.")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip archive's first bytes
        what = "the file is empty" if not head else "it is not a zip file"
        raise ValueError(f"{path}: not a numpy .npz archive ({what}); {_NPZ_HOWTO}.")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: damaged .npz archive ({_one_line(e)}); {_NPZ_HOWTO}.") from e


def _npz_array(z, key: str, path: str) -> np.ndarray:
    """z[key], with a one-line ValueError for object (pickled) arrays and damaged members."""
    try:
        return z[key]
    except ValueError as e:
        if "allow_pickle" in str(e):  # numpy refuses object arrays when allow_pickle=False
            raise ValueError(
                f"{path}: '{key}' holds pickled Python objects, which jaxgan never loads; save a "
                f"numeric array: {_NPZ_HOWTO}."
            ) from e
        raise ValueError(f"{path}: cannot read '{key}' ({_one_line(e)}); {_NPZ_HOWTO}.") from e
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: damaged .npz archive, '{key}' is unreadable ({_one_line(e)}); {_NPZ_HOWTO}.") from e


def load_npz_images(
    path: str | os.PathLike[str],
    *,
    image_size: int,
    channels: int,
    with_labels: bool = False,
) -> dict[str, np.ndarray]:
    """Loads `images` (uint8 NHWC or NHW) and optional `labels` from a .npz file.

    Pickled (object) arrays are never loaded. Raises ValueError naming the path
    for a file that is not an .npz archive, a missing key, or a wrong dtype or
    shape (including C not 1 or 3, and a single [H, W, C] image).
    """
    _check_target(channels, image_size)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path}")
    with _open_npz(path) as z:
        if "images" not in z.files:
            raise ValueError(f"{path}: has no 'images' array; its keys are {z.files}; {_NPZ_HOWTO}.")
        images = as_nhwc_uint8(_npz_array(z, "images", path), path)
        labels = _npz_array(z, "labels", path) if "labels" in z.files else None
    out = {"image": resize_and_convert(images, image_size=image_size, channels=channels)}
    if with_labels:
        if labels is None:
            raise ValueError(f"with_labels=True but {path} has no 'labels' array.")
        out["label"] = npz_labels(labels, len(images), path)
    return out


def npz_labels(labels: np.ndarray, num_images: int, path: str) -> np.ndarray:
    """An .npz's 'labels' as int32, or a one-line ValueError unless they are `num_images` integers."""
    if labels.shape != (num_images,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: 'labels' must be integers of shape ({num_images},), got {labels.dtype} {labels.shape}."
        )
    return labels.astype(np.int32)


_GRAY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # PIL's 16-bit grayscale modes
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """16-bit samples -> uint8 by linear scaling, round(v * 255 / 65535) (= round(v / 257), never a tie).

    This is the linear depth reduction of ImageMagick (-depth 8) and libpng's png_set_scale_16; PIL's
    convert("L") would instead clip every value above 255 to white.
    """
    v = values.astype(np.int64)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _image_to_array(im, path: str) -> np.ndarray:
    """A decoded PIL image -> uint8 [H, W, 1] (grayscale modes) or [H, W, 3] (colour modes).

    The rules per PIL mode are listed in `load_image_folder`; modes without a
    faithful 8-bit gray/RGB reading raise a one-line ValueError naming `path`.
    """
    mode = im.mode
    if mode in ("1", "L", "LA"):  # "1" reads as 0/255; LA drops alpha.
        return np.asarray(im.convert("L"), np.uint8)[..., None]
    if mode in _GRAY16_MODES:
        return _scale_16_to_8(np.asarray(im))[..., None]
    if mode == "I":  # 32-bit ints, as PIL may open 16-bit grayscale: must hold 16-bit values.
        v = np.asarray(im)
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi > 65535:
            raise ValueError(
                f"{path}: PIL mode 'I' (32-bit integer) values span {lo}..{hi}, outside the 16-bit "
                "range 0..65535 that jaxgan scales to 8 bits; save it as an 8- or 16-bit PNG."
            )
        return _scale_16_to_8(v)[..., None]
    if mode == "F":
        raise ValueError(
            f"{path}: PIL mode 'F' (32-bit float) pixels have no agreed 0..255 scale, so jaxgan does "
            "not guess one; save it as a uint8 (or 16-bit) PNG, e.g. np.round(x * 255).astype(np.uint8) "
            "for values in [0, 1]."
        )
    if mode in ("P", "PA"):  # Palette lookup; the palette's transparency is dropped like alpha.
        return np.asarray(im.convert("RGBA"), np.uint8)[..., :3]
    if mode in ("CMYK", "YCbCr"):  # PIL's conversion; CMYK naively (no ICC profile).
        return np.asarray(im.convert("RGB"), np.uint8)
    if mode in ("RGB", "RGBA", "RGBX"):
        return np.asarray(im, np.uint8)[..., :3]
    raise ValueError(
        f"{path}: PIL mode {mode!r} has no faithful 8-bit grayscale or RGB reading in jaxgan; save it "
        "as an 8- or 16-bit grayscale, RGB or RGBA PNG."
    )


def _png_bit_depth(path: str) -> int | None:
    """The bit depth in a PNG's IHDR header (fixed at byte 24 by the PNG spec), None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" else None


def _read_png16(path: str) -> np.ndarray:
    """A 16-bit colour or gray+alpha PNG, which PIL reduces to 8 bits by dropping the low byte: decoded at
    16 bits by TF and scaled like 16-bit grayscale; alpha dropped."""
    tf = _tf()
    with open(path, "rb") as f:
        data = f.read()
    try:
        v = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as e:
        raise ValueError(
            f"{path}: cannot decode this 16-bit PNG ({_one_line(e)}); re-save it or remove it from the folder."
        ) from e
    return _scale_16_to_8(v[..., :1] if v.shape[-1] in (1, 2) else v[..., :3])


def read_image(path: str) -> np.ndarray:
    """Decodes one file to uint8 [H, W, 1] (grayscale) or [H, W, 3] (colour); see `load_image_folder`."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    im = None
    try:
        im = Image.open(path)
        im.load()  # Decodes now, so a truncated or corrupt file fails here, with its name.
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError) as e:
        if im is not None:
            im.close()
        raise ValueError(
            f"Cannot decode image {path} ({_one_line(e)}); the file may be truncated or corrupt: "
            "re-save it or remove it from the folder."
        ) from e
    with im:
        if im.format == "PNG" and im.mode not in _GRAY16_MODES + ("I",) and _png_bit_depth(path) == 16:
            return _read_png16(path)
        return _image_to_array(im, path)


def image_file_names(path: str) -> list[str]:
    """The PNG/JPEG file names directly in folder `path`, sorted; a ValueError when there are none."""
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(_IMAGE_SUFFIXES))
    if not names:
        raise ValueError(f"No PNG/JPEG files ({', '.join(_IMAGE_SUFFIXES)}) in {path}.")
    return names


def load_image_folder(path: str | os.PathLike[str], *, image_size: int, channels: int) -> dict[str, np.ndarray]:
    """Loads every PNG/JPEG directly in `path` (sorted by file name) as {'image': uint8}.

    Each file is read as grayscale or RGB by its PIL mode, then converted to
    `channels` like every source (see the module doc):
      L, 1 (bilevel: 0 / 255): grayscale.
      16-bit grayscale (I;16*, or I holding values 0..65535): scaled linearly,
        round(v * 255 / 65535); 16-bit colour PNGs likewise.
      RGB, YCbCr: RGB. CMYK (JPEG): PIL's naive conversion, no ICC profile:
        R = round((255 - C) * (255 - K) / 255), and so on.
      P (palette): the palette's colours.
      LA, RGBA, PA and palette transparency: alpha is dropped (not composited),
        so the stored colour of transparent pixels is what trains.
      F (float) and other modes: refused with a ValueError naming the file.
    A file that cannot be decoded (truncated, corrupt, not an image) raises a
    ValueError naming it. `channels` and `image_size` are checked first.
    """
    _check_target(channels, image_size)
    from jaxgan.data.sources import FolderSource  # pylint: disable=g-import-not-at-top

    source = FolderSource(path)
    return read_records(source, range(len(source)), image_size=image_size, channels=channels)


# ----------------------------------------------------------------------------
# Batching.


class StreamOrder:
    """Which examples form each batch: a pure function of (num_examples, batch_size, seed, step, process).

    The example order is an endless stream: epoch e is the permutation
    `np.random.default_rng([seed, e]).permutation(N)`, and the epochs follow
    each other. Global batch `step` is stream positions [step * B, (step + 1) * B),
    so every batch is full (the step needs equal shards), a batch at an epoch
    boundary takes the end of epoch e and continues with the start of epoch
    e + 1, and each N consecutive positions hold every example exactly once.
    Process p of P gets rows [p*B/P, (p+1)*B/P) of the global batch, and reads only those.
    """

    def __init__(
        self, num_examples: int, *, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1
    ):
        if num_examples < 1:
            raise ValueError(f"need at least one example, got {num_examples}.")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count}).")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self._rows = process_batch_slice(batch_size, process_index, process_count)
        self.local_batch_size = self._rows.stop - self._rows.start
        self.batch_size = batch_size
        self.num_examples = int(num_examples)
        self._seed = int(seed)
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # the streaming pipeline reads batches from several threads

    def __getstate__(self):
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _perm(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._perms:
                if len(self._perms) >= 4:
                    self._perms.pop(next(iter(self._perms)))
                self._perms[epoch] = np.random.default_rng([self._seed, epoch]).permutation(self.num_examples)
            return self._perms[epoch]

    def indices_at(self, step: int) -> np.ndarray:
        """The examples in this process's part of global batch `step`."""
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


class ArrayBatcher:
    """Deterministic, step-indexed batches over in-memory arrays, in `StreamOrder`.

    Images ('image', uint8) come out as float32 in [-1, 1] (float32 samples, such as 2-D
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
            raise ValueError(
                f"'image' must be uint8 images or float32 samples already in the model's range "
                f"(e.g. 2-D points), got {self._arrays['image'].dtype}."
            )
        self.order = StreamOrder(
            next(iter(sizes.values())),
            batch_size=batch_size,
            seed=seed,
            process_index=process_index,
            process_count=process_count,
        )
        self.local_batch_size = self.order.local_batch_size
        self.batch_size = batch_size
        self.num_examples = self.order.num_examples

    def indices_at(self, step: int) -> np.ndarray:
        """Rows of `arrays` in this process's part of global batch `step`."""
        return self.order.indices_at(step)

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
