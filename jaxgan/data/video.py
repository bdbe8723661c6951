"""Video data: "moving digits" made on the fly (offline), its TFDS builder, and TFDS videos by name.

Moving digits (after Moving MNIST, Srivastava et al. 2015, arXiv:1502.04681,
with scikit-learn's 8x8 digits so nothing is downloaded): each clip shows
`num_digits` digits, upscaled to `digit_size` px, moving in straight lines in
a `frame_size` x `frame_size` black frame and bouncing off its edges, for
`num_frames` frames; overlapping digits combine by maximum.

Clip `i` of a split is a pure function of (seed, split, i): its random draws
come from np.random.default_rng([seed, split number, i]):
  digit rows     uniform among that split's digits (jaxgan.data.digits' split:
                 train clips use train digits, test clips held-out digits);
  start (x, y)   uniform in [0, L]^2, L = frame_size - digit_size;
  velocity       angle uniform in [0, 2 pi), speed uniform in [1, max_speed] px/frame.
Positions bounce exactly: p(t) = reflect(p0 + v t) with reflect(u) = L - |(u mod 2L) - L|,
rounded to whole pixels, so every digit stays entirely inside the frame.

The stream is endless (any index), so training draws fresh clips every step:
`MovingDigitsBatcher.batch_at(step)` holds clips [step*B, (step+1)*B). The
TFDS builder `moving_digits/<config>` writes the first clips of the same
stream (seed 0), so it reads back exactly what the on-the-fly source makes.

Any other TFDS video dataset (moving_mnist, ucf101, ...) is read by name where
it is prepared (jaxgan never downloads; the error says how to prepare it). One
prepared in ArrayRecord is streamed: `TfdsVideoSource` reads one clip at a time
(only its first `num_frames` frames decoded) and `StreamVideoBatcher` reads only
this process's clips of each batch, in `ArrayVideoBatcher`'s order, so host
memory does not grow with the dataset. `load_tfds_videos` reads a whole split
into memory (evaluation clips; TFRecord-only datasets, through tf.data); both
paths skip clips shorter than `num_frames` and resize every frame with
`jaxgan.data.pipeline._resize_convert_tf`, so they give the same clips bit for
bit. `moving_digits/<config>` is prepared in ArrayRecord. TensorFlow is
imported lazily, only by the TFDS paths.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterator

import numpy as np
from absl import logging

from jaxgan.common import check_reading_options, process_batch_slice, to_model_range
from jaxgan.data.digits import digits_arrays, split_indices
from jaxgan.data.pipeline import resize_and_convert
from jaxgan.data.stream import StreamBatcher

NAME = "moving_digits"
SPLITS = ("train", "test")
VIDEO_FEATURES = ("video", "image_sequence", "frames")  # tried in this order by `load_tfds_videos`


# ----------------------------------------------------------------------------
# Moving digits, on the fly.


def reflect(u: np.ndarray, limit: int) -> np.ndarray:
    """Folds positions onto [0, limit] as a ball bouncing between 0 and limit: L - |(u mod 2L) - L|."""
    if limit == 0:
        return np.zeros_like(u)
    return limit - np.abs(np.mod(u, 2 * limit) - limit)


@functools.lru_cache(maxsize=4)
def digit_sprites(digit_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits as uint8 [N, digit_size, digit_size] (bilinear upscale) and labels [N]."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    images, labels = digits_arrays()
    sprites = np.stack(
        [
            np.asarray(Image.fromarray(im[..., 0]).resize((digit_size, digit_size), Image.Resampling.BILINEAR))
            for im in images
        ]
    )
    return sprites.astype(np.uint8), labels


@dataclasses.dataclass(frozen=True)
class MovingDigits:
    """The endless moving-digits stream of one split; `clips(indices)` -> (uint8 [N, T, S, S, 1], labels [N, K])."""

    split: str = "train"
    seed: int = 0
    num_frames: int = 16
    frame_size: int = 32
    num_digits: int = 1
    digit_size: int = 0  # 0: frame_size // 2 (Moving MNIST's 28 px digits in 64 px frames)
    max_speed: float = 3.0

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}.")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (a video needs motion), got {self.num_frames}.")
        if self.num_digits not in (1, 2, 3):
            raise ValueError(f"num_digits must be 1, 2 or 3, got {self.num_digits}.")
        if not 8 <= self.size_of_digit <= self.frame_size:
            raise ValueError(f"digit_size={self.size_of_digit} must lie in [8, frame_size={self.frame_size}].")
        if not self.max_speed >= 1.0:
            raise ValueError(f"max_speed must be >= 1 px/frame, got {self.max_speed}.")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}.")

    @property
    def size_of_digit(self) -> int:
        return self.digit_size or self.frame_size // 2

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.frame_size, self.frame_size, 1)

    def trajectory(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(digit rows [K] into `digit_sprites`, top-left positions int [K, T, 2] as (y, x)) of clip `index`."""
        if index < 0:
            raise ValueError(f"clip index must be >= 0, got {index}.")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
        pool = split_indices(digit_sprites(self.size_of_digit)[1])[self.split]
        rows = pool[rng.integers(0, len(pool), self.num_digits)]
        limit = self.frame_size - self.size_of_digit
        start = rng.uniform(0, limit, (self.num_digits, 2))
        angle = rng.uniform(0, 2 * np.pi, self.num_digits)
        speed = rng.uniform(1.0, self.max_speed, self.num_digits)
        velocity = np.stack([np.sin(angle), np.cos(angle)], -1) * speed[:, None]
        t = np.arange(self.num_frames)[None, :, None]
        positions = np.rint(reflect(start[:, None] + velocity[:, None] * t, limit)).astype(np.int64)
        return rows, positions

    def clip(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Clip `index`: uint8 [T, S, S, 1] and its digits' labels int64 [K]."""
        sprites, labels = digit_sprites(self.size_of_digit)
        rows, positions = self.trajectory(index)
        d = self.size_of_digit
        video = np.zeros(self.shape, np.uint8)
        for row, path in zip(rows, positions):
            for t, (y, x) in enumerate(path):
                window = video[t, y : y + d, x : x + d, 0]
                np.maximum(window, sprites[row], out=window)
        return video, labels[rows]

    def clips(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """Clips at `indices`: uint8 [N, T, S, S, 1] and labels int64 [N, K]."""
        out = [self.clip(int(i)) for i in np.asarray(indices).reshape(-1)]
        if not out:
            return np.zeros((0, *self.shape), np.uint8), np.zeros((0, self.num_digits), np.int64)
        return np.stack([v for v, _ in out]), np.stack([y for _, y in out])


class MovingDigitsBatcher:
    """Step-indexed batches of fresh clips: global batch `step` = clips [step*B, (step+1)*B) of the stream.

    `batch_at(step)` -> {"video": float32 [B_local, T, S, S, 1] in [-1, 1]}, this
    process's rows; a pure function of (source, batch_size, step, process), so a
    resumed run sees exactly the batches of a straight run.
    """

    def __init__(self, source: MovingDigits, *, batch_size: int, process_index: int = 0, process_count: int = 1):
        self.source = source
        self.batch_size = batch_size
        self._rows = process_batch_slice(batch_size, process_index, process_count)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}.")
        start = step * self.batch_size
        videos, _ = self.source.clips(np.arange(start + self._rows.start, start + self._rows.stop))
        return {"video": to_model_range(videos)}

    def iterate(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        step = start_step
        while True:
            yield self.batch_at(step)
            step += 1


class ArrayVideoBatcher:
    """Step-indexed batches over in-memory uint8 videos [N, T, S, S, C]: `jaxgan.data.ArrayBatcher`'s
    order (epoch e = permutation of default_rng([seed, e])), as {"video": float32 [B_local, ...] in [-1, 1]}."""

    def __init__(
        self, videos: np.ndarray, *, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1
    ):
        from jaxgan.data.pipeline import ArrayBatcher  # pylint: disable=g-import-not-at-top

        videos = np.asarray(videos)
        if videos.ndim != 5 or videos.dtype != np.uint8:
            raise ValueError(f"videos must be uint8 [N, T, H, W, C], got {videos.dtype} {videos.shape}.")
        self._batcher = ArrayBatcher(
            {"image": videos},
            batch_size=batch_size,
            seed=seed,
            process_index=process_index,
            process_count=process_count,
        )

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        return {"video": self._batcher.batch_at(step)["image"]}

    def iterate(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        return ({"video": batch["image"]} for batch in self._batcher.iterate(start_step))


# ----------------------------------------------------------------------------
# The moving-digits TFDS builder.


def _tfds():
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from jaxgan.data.pipeline import _tf  # hides GPUs from TF first  # pylint: disable=g-import-not-at-top

    _tf()
    return tfds


def _config_name(frame_size: int, num_digits: int) -> str:
    return f"{frame_size}px_{num_digits}digit"


@functools.lru_cache(maxsize=1)
def _builder_class():
    """The `moving_digits` GeneratorBasedBuilder, defined (and registered with TFDS) on first use."""
    tfds = _tfds()
    from etils import epath  # pylint: disable=g-import-not-at-top

    class MovingDigitsConfig(tfds.core.BuilderConfig):
        """frame_size, num_digits, num_frames and the clips per split of one `moving_digits` variant."""

        def __init__(
            self,
            *,
            frame_size: int,
            num_digits: int,
            num_frames: int = 16,
            train_clips: int = 2048,
            test_clips: int = 256,
            name: str | None = None,
            **kwargs,
        ):
            super().__init__(name=name or _config_name(frame_size, num_digits), version="1.0.0", **kwargs)
            self.frame_size, self.num_digits, self.num_frames = frame_size, num_digits, num_frames
            self.clips = {"train": train_clips, "test": test_clips}

    try:
        registered = NAME in tfds.core.registered.list_imported_builders()
    except AttributeError:
        registered = False

    class MovingDigitsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=registered):
        """Moving scikit-learn digits (offline; see jaxgan.data.video): clips 0..n-1 of each split, seed 0."""

        VERSION = tfds.core.Version("1.0.0")
        code_path = epath.Path(__file__)  # see jaxgan.data.digits: TFDS 4.9.10 cannot derive it here
        BUILDER_CONFIGS = [MovingDigitsConfig(frame_size=s, num_digits=k) for s in (32, 64) for k in (1, 2)]
        name = NAME

        def _info(self):
            c = self.builder_config
            return self.dataset_info_from_configs(
                description=(
                    "Moving scikit-learn digits: digits bouncing in a black frame (jaxgan.data.video); "
                    "clip i of a split is MovingDigits(split, seed=0, ...).clip(i)."
                ),
                features=tfds.features.FeaturesDict(
                    {
                        "video": tfds.features.Video(shape=(c.num_frames, c.frame_size, c.frame_size, 1)),
                        "label": tfds.features.Tensor(shape=(c.num_digits,), dtype=np.int64),
                    }
                ),
                disable_shuffling=True,
            )

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download
            return {split: self._generate_examples(split) for split in SPLITS}

        def _generate_examples(self, split):
            c = self.builder_config
            source = MovingDigits(
                split=split, seed=0, num_frames=c.num_frames, frame_size=c.frame_size, num_digits=c.num_digits
            )
            for i in range(c.clips[split]):
                video, labels = source.clip(i)
                yield i, {"video": video, "label": labels}

    return MovingDigitsBuilder, MovingDigitsConfig


def build_moving_digits(data_dir: str | os.PathLike[str], *, config: Any = "32px_1digit"):
    """The `moving_digits` builder for `config` (a name such as "64px_2digit", or a MovingDigitsConfig)
    in `data_dir`, prepared offline (in ArrayRecord, so it streams) on first use."""
    from jaxgan.data.digits import _no_progress_bar  # pylint: disable=g-import-not-at-top
    from jaxgan.data.pipeline import _is_prepared  # pylint: disable=g-import-not-at-top

    tfds = _tfds()
    builder_cls, _ = _builder_class()
    names = [c.name for c in builder_cls.BUILDER_CONFIGS] + sorted(_CUSTOM_CONFIGS)
    if isinstance(config, str) and config not in names:
        raise ValueError(f"Unknown moving_digits config {config!r}; valid: {names} (or a MovingDigitsConfig).")
    config = _CUSTOM_CONFIGS.get(config, config) if isinstance(config, str) else config
    builder = builder_cls(data_dir=os.fspath(data_dir), config=config)
    if not _is_prepared(builder):  # prepared as ArrayRecord, so it streams; a TFRecord folder is used as it is
        builder = builder_cls(data_dir=os.fspath(data_dir), config=config, file_format="array_record")
        with _no_progress_bar():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


_CUSTOM_CONFIGS: dict[str, Any] = {}


def moving_digits_config(**kwargs: Any):
    """A custom MovingDigitsConfig (frame_size, num_digits, num_frames, train_clips, test_clips, name),
    known by its name from then on (`moving_digits/<name>` in `load_tfds_videos`)."""
    config = _builder_class()[1](**kwargs)
    _CUSTOM_CONFIGS[config.name] = config
    return config


# ----------------------------------------------------------------------------
# TFDS videos by name.


def _video_builder(name: str, data_dir: str):
    base, _, config = name.partition("/")
    if base.split(":")[0] == NAME:
        return build_moving_digits(data_dir, config=config.split(":")[0] or "32px_1digit")
    from jaxgan.data.pipeline import _tfds_builder  # pylint: disable=g-import-not-at-top

    _tfds()
    return _tfds_builder(name, data_dir)  # FileNotFoundError saying how to prepare it


def video_feature(name: str, features: Any) -> str:
    """The key of the video feature ([T, H, W, C]) of a TFDS dataset."""
    for key in VIDEO_FEATURES:
        if key in features:
            return key
    raise ValueError(
        f"Dataset '{name}' has none of the video features {VIDEO_FEATURES}; its features are {sorted(features.keys())}."
    )


def _check_video_args(num_frames: int, frame_size: int, max_clips: int | None) -> None:
    if num_frames < 2 or frame_size < 1 or (max_clips is not None and max_clips < 1):
        raise ValueError(
            f"Need num_frames >= 2, frame_size >= 1 and max_clips >= 1 (or None); got {num_frames}, "
            f"{frame_size}, {max_clips}."
        )


def _open_video_dataset(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> tuple[Any, str, str]:
    """(prepared builder, video feature key, data_dir) of a TFDS video dataset, its split checked."""
    from jaxgan.data.pipeline import _check_split, default_data_dir  # pylint: disable=g-import-not-at-top

    data_dir = os.fspath(data_dir) if data_dir else default_data_dir()
    builder = _video_builder(name, data_dir)
    _check_split(name, builder, split)
    return builder, video_feature(name, builder.info.features), data_dir


def _no_clip_error(name: str, split: str, num_frames: int) -> ValueError:
    return ValueError(f"Dataset '{name}' split '{split}' has no clip of at least {num_frames} frames.")


class FirstFrames:
    """A TFDS decoder of the video feature for `builder.as_data_source(decoders=...)`: the first `num`
    frames, only those decoded; `num=None`: the clip's frame count, no frame decoded.

    TFDS calls `decode_batch_example_np` with a sequence feature's (Video's) encoded frames and
    `decode_example_np` with a whole [T, H, W, C] tensor. Duck-typed (not a `tfds.decode.Decoder`
    subclass), so it pickles into Grain's worker processes without importing TFDS here.
    """

    def __init__(self, num: int | None):
        self.num, self.feature = num, None

    def setup(self, *, feature) -> None:
        self.feature = feature

    def decode_example(self, serialized):  # tf.data's path: never used by data sources
        raise NotImplementedError("FirstFrames decodes for tfds data sources (NumPy) only.")

    def decode_example_np(self, serialized):
        video = self.feature.decode_example_np(serialized)
        return len(video) if self.num is None else np.asarray(video)[: self.num]

    def decode_batch_example_np(self, frames):
        if self.num is None:
            return len(frames)
        return np.stack([np.asarray(self.feature.decode_example_np(f)) for f in frames[: self.num]])

    def __getstate__(self):
        return {"num": self.num, "feature": None}


class TfdsVideoSource:
    """The clips of a TFDS video split prepared in ArrayRecord that have >= `num_frames` frames (the first
    `max_clips` of them), read one at a time: `source[i]` -> uint8 [num_frames, H, W, C], the first frames
    of the i-th such clip, only those decoded.

    Which clips qualify needs no reading when the feature's length is fixed; a variable length is read
    once here, per clip, without decoding any frame. A split prepared only as TFRecord raises
    FileNotFoundError with the command that prepares it in ArrayRecord.
    """

    def __init__(
        self,
        name: str,
        *,
        split: str,
        num_frames: int,
        data_dir: str | os.PathLike[str] | None = None,
        max_clips: int | None = None,
    ):
        _check_video_args(num_frames, 1, max_clips)
        builder, key, data_dir = _open_video_dataset(name, split, data_dir)
        self._open(builder, name, split=split, key=key, num_frames=num_frames, max_clips=max_clips, data_dir=data_dir)

    @classmethod
    def of_builder(
        cls, builder, name: str, *, split: str, key: str, num_frames: int, max_clips: int | None, data_dir: str
    ) -> "TfdsVideoSource":
        """A source over a prepared builder whose split and video feature were found already."""
        source = cls.__new__(cls)
        source._open(builder, name, split=split, key=key, num_frames=num_frames, max_clips=max_clips, data_dir=data_dir)
        return source

    def _open(self, builder, name, *, split, key, num_frames, max_clips, data_dir) -> None:
        from jaxgan.data.sources import is_array_record, not_array_record_message  # pylint: disable=g-import-not-at-top

        if not is_array_record(builder):
            raise FileNotFoundError(not_array_record_message(builder, name, data_dir))
        feature = builder.info.features[key]
        shape, dtype = tuple(feature.shape), np.dtype(feature.np_dtype)
        if len(shape) != 4 or dtype != np.uint8:
            raise ValueError(f"Dataset '{name}': '{key}' must be uint8 [T, H, W, C], got {dtype.name} {list(shape)}.")
        self.name, self.split, self.key, self.num_frames = name, split, key, num_frames
        self._source = builder.as_data_source(split=split, decoders={key: FirstFrames(num_frames)})
        count = len(self._source)
        if shape[0] is not None:  # every clip has shape[0] frames
            clips = np.arange(count if shape[0] >= num_frames else 0)
        else:
            clips = self._long_enough(builder.as_data_source(split=split, decoders={key: FirstFrames(None)}), max_clips)
        self._clips = np.asarray(clips[:max_clips] if max_clips else clips, np.int64)
        if not len(self._clips):
            raise _no_clip_error(name, split, num_frames)

    def _long_enough(self, lengths, max_clips: int | None, chunk: int = 256) -> np.ndarray:
        """The records of `lengths` (a source giving each clip's frame count) with >= num_frames frames."""
        found: list[int] = []
        for start in range(0, len(lengths), chunk):
            rows = list(range(start, min(start + chunk, len(lengths))))
            found += [i for i, r in zip(rows, lengths.__getitems__(rows)) if r[self.key] >= self.num_frames]
            if max_clips and len(found) >= max_clips:
                break
        return np.asarray(found, np.int64)

    def __len__(self) -> int:
        return len(self._clips)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self._source[int(self._clips[int(index)])][self.key], np.uint8)

    def __repr__(self) -> str:
        return f"TfdsVideoSource({self.name!r}, split={self.split!r}, {len(self)} clips of {self.num_frames} frames)"


def read_clips(source: Any, indices: Any, *, frame_size: int, channels: int) -> np.ndarray:
    """Clips `indices` of `source` (`source[i]` -> uint8 [T, H, W, C]) as uint8 [n, T, frame_size,
    frame_size, channels]: every frame resized and converted by `resize_and_convert`, per stored shape."""
    clips = [source[int(i)] for i in indices]
    if not clips:
        raise ValueError(f"No clips to read from {source!r}.")
    out = np.zeros((len(clips), len(clips[0]), frame_size, frame_size, channels), np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, clip in enumerate(clips):
        by_shape.setdefault(clip.shape, []).append(i)
    for shape, rows in by_shape.items():
        frames = np.stack([clips[i] for i in rows]).reshape(-1, *shape[1:])
        resized = resize_and_convert(frames, image_size=frame_size, channels=channels)
        out[rows] = resized.reshape(len(rows), shape[0], frame_size, frame_size, channels)
    return out


class StreamVideoBatcher(StreamBatcher):
    """`ArrayVideoBatcher`'s batches (the same `StreamOrder`, the same resize, so the same numbers) read
    from a `TfdsVideoSource`: batch `step` reads only this process's clips of it, so the dataset is never
    held in memory, and is a pure function of (seed, step, process). `iterate` reads ahead through Grain
    (`num_threads` threads, `prefetch` batches, `worker_count` decoding processes): `StreamBatcher`'s
    order, options and read-ahead, with clips for records (`frame_size` is its `image_size`).
    """

    def __init__(self, source: TfdsVideoSource, *, frame_size: int, channels: int, **order_and_reading: Any):
        super().__init__(source, image_size=frame_size, channels=channels, **order_and_reading)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's part of global batch `step`, read from the source now."""
        clips = read_clips(self.source, self.indices_at(step), frame_size=self.image_size, channels=self.channels)
        return {"video": to_model_range(clips)}


def load_tfds_videos(
    name: str,
    *,
    split: str,
    num_frames: int,
    frame_size: int,
    channels: int,
    data_dir: str | os.PathLike[str] | None = None,
    max_clips: int | None = None,
) -> np.ndarray:
    """Clips of a prepared TFDS video dataset as uint8 [N, num_frames, frame_size, frame_size, channels].

    Each clip is its first `num_frames` frames (clips with fewer are skipped),
    every frame resized bilinearly (antialiased) to a square and converted to
    `channels` as `jaxgan.data.pipeline.resize_and_convert` does. `moving_digits[/config]`
    is prepared offline on first use; any other name must be prepared already.
    ArrayRecord datasets are read through `TfdsVideoSource` (as streamed), TFRecord ones through tf.data.
    """
    _check_video_args(num_frames, frame_size, max_clips)
    builder, key, data_dir = _open_video_dataset(name, split, data_dir)
    from jaxgan.data.sources import is_array_record  # pylint: disable=g-import-not-at-top

    if is_array_record(builder):  # no tf.data reader: read its clips as the streamed batches do
        source = TfdsVideoSource.of_builder(
            builder, name, split=split, key=key, num_frames=num_frames, max_clips=max_clips, data_dir=data_dir
        )
        chunks = range(0, len(source), 256)  # bounds the decoded, not yet resized, frames held at once
        kw = dict(frame_size=frame_size, channels=channels)
        return np.concatenate([read_clips(source, range(i, min(i + 256, len(source))), **kw) for i in chunks])
    return _load_tfrecord_videos(builder, name, key, split, num_frames, frame_size, channels, max_clips)


def _load_tfrecord_videos(builder, name, key, split, num_frames, frame_size, channels, max_clips) -> np.ndarray:
    """`load_tfds_videos` of a TFRecord dataset: the clips through tf.data, each resized by `_resize_convert_tf`
    (the function `resize_and_convert` runs)."""
    from jaxgan.data.pipeline import _resize_convert_tf  # pylint: disable=g-import-not-at-top

    tf = _tfds() and __import__("tensorflow")
    ds = builder.as_dataset(split=split, shuffle_files=False).map(lambda ex: ex[key])
    spec = ds.element_spec
    if spec.dtype != tf.uint8 or spec.shape.rank != 4:
        raise ValueError(f"Dataset '{name}': '{key}' must be uint8 [T, H, W, C], got {spec.dtype.name} {spec.shape}.")
    ds = ds.filter(lambda v: tf.shape(v)[0] >= num_frames)
    if max_clips is not None:
        ds = ds.take(max_clips)
    ds = ds.map(lambda v: _resize_convert_tf(v[:num_frames], frame_size, channels))
    clips = [v.numpy() for v in ds]
    if not clips:
        raise _no_clip_error(name, split, num_frames)
    return np.stack(clips)


def tfds_video_batcher(
    name: str,
    *,
    split: str,
    num_frames: int,
    frame_size: int,
    channels: int,
    batch_size: int,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    max_clips: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    **reading: int,
) -> StreamVideoBatcher | ArrayVideoBatcher:
    """Training batches of a TFDS video split: streamed (`StreamVideoBatcher`, `reading`: its worker_count,
    num_threads, prefetch) when prepared in ArrayRecord; a TFRecord-only dataset is read into memory
    (`ArrayVideoBatcher`, the same batches) with a warning giving the command that makes it stream."""
    _check_video_args(num_frames, frame_size, max_clips)
    check_reading_options(**reading)
    builder, key, data_dir = _open_video_dataset(name, split, data_dir)
    from jaxgan.data.sources import is_array_record, not_array_record_message  # pylint: disable=g-import-not-at-top

    clips = dict(split=split, num_frames=num_frames, max_clips=max_clips)
    order = dict(batch_size=batch_size, seed=seed, process_index=process_index, process_count=process_count)
    if is_array_record(builder):
        source = TfdsVideoSource.of_builder(builder, name, key=key, data_dir=data_dir, **clips)
        return StreamVideoBatcher(source, frame_size=frame_size, channels=channels, **order, **reading)
    how = not_array_record_message(builder, name, data_dir)
    if name.split("/")[0].split(":")[0] == NAME:  # not a TFDS catalog dataset: `tfds build` cannot make it
        how += f" For {NAME}, delete {builder.data_path} instead: jaxgan prepares it again, in ArrayRecord."
    logging.warning("TFDS video dataset '%s' split '%s' is held in memory, not streamed: %s", name, split, how)
    videos = _load_tfrecord_videos(builder, name, key, split, num_frames, frame_size, channels, max_clips)
    return ArrayVideoBatcher(videos, **order)
