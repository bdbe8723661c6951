"""Random-access record sources: a dataset read one record at a time, never whole.

Each source follows Grain's `RandomAccessDataSource` protocol (`len(source)`, `source[i]`), so
`grain.MapDataset.source(source)` reads it, and returns one record as a dict:
  image: uint8 [H, W, 1] or [H, W, 3], as stored (any size; resized per batch by the pipeline)
  label: int (only when the source was opened with labels)

- `FolderSource`: the PNG/JPEG files directly in a folder, sorted by name (the rules of
  `jaxgan.data.pipeline.load_image_folder`); a file is decoded when its record is read.
- `NpzSource`: the `images` array of an .npz. An uncompressed archive (`np.savez`) is read record by
  record at the array's offset inside the zip; a compressed one (`np.savez_compressed`) cannot be
  read that way and is loaded into memory, with a warning saying how to stream it.
- `TfdsSource`: a TFDS split prepared in ArrayRecord format, through `tfds.data_source`; a split
  prepared only as TFRecord fails with the `tfds build ... --file_format=array_record` command.

Every source checks what it can before the first record (the folder, the archive's header, the
dataset's features and format) and names the file or dataset in a one-line error.
"""

from __future__ import annotations

import os
import threading
import zipfile
from typing import Any, Protocol

import numpy as np
from absl import logging

from jaxgan.data import pipeline


class RecordSource(Protocol):
    """What the streaming pipeline reads: `len(source)` records, `source[i]` -> {'image', ['label']}."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def label_range(self) -> tuple[int, int] | None:
        """(lowest, highest) label without reading the images, or None without labels."""
        ...


class FolderSource:
    """The PNG/JPEG files directly in `path`, sorted by file name; each decoded when read."""

    def __init__(self, path: str | os.PathLike[str]):
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"No such image folder: {path}")
        self.path = path
        self.names = pipeline.image_file_names(path)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": pipeline.read_image(os.path.join(self.path, self.names[index]))}

    def label_range(self) -> None:
        return None  # a folder of images has no labels

    def __repr__(self) -> str:
        return f"FolderSource({self.path!r}, {len(self)} images)"


def _stored_member_offset(path: str, info: zipfile.ZipInfo) -> int:
    """The byte offset of an uncompressed zip member's data: after its local header (PKWARE APPNOTE 4.3.7:
    30 fixed bytes, then the file name and the extra field, whose lengths are at bytes 26 and 28)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if header[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: damaged .npz archive (no local header for {info.filename!r}).")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


class NpzSource:
    """Row i of an .npz's `images` (uint8 [N, H, W] or [N, H, W, C]) and, with labels, of `labels`.

    Uncompressed archives are read record by record (one positioned read each, from any process or
    thread); the labels (N integers) are read whole.
    """

    def __init__(self, path: str | os.PathLike[str], *, with_labels: bool = False):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such .npz file: {path}")
        self.path = path
        self._fd: dict[int, int] = {}  # per process id: an fd opened after a fork is that process's own
        self._lock = threading.Lock()
        with pipeline._open_npz(path) as z:  # the same checks and messages as the in-memory loader
            if "images" not in z.files:
                raise ValueError(f"{path}: has no 'images' array; its keys are {z.files}; {pipeline._NPZ_HOWTO}.")
            labels = None
            if with_labels:
                if "labels" not in z.files:
                    raise ValueError(f"with_labels=True but {path} has no 'labels' array.")
                labels = pipeline._npz_array(z, "labels", path)
        self._images = None
        self._offset = None
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("images.npy")
            if info.compress_type == zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = {
                        (1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0,
                    }.get(version)
                    if read_header is None:  # .npy 3.0 (utf-8 field names): not written by np.savez for images
                        raise ValueError(f"{path}: .npy format {version} of 'images'; save it with np.savez.")
                    shape, fortran, dtype = read_header(member)
                    header_len = member.tell()
                if fortran or dtype != np.uint8:
                    self._images = self._load_all()  # the loader's own check names the dtype/layout
                else:
                    self._shape = (shape[0], *pipeline.as_nhwc_shape(shape, dtype, path))
                    self._offset = _stored_member_offset(path, info) + header_len
            else:
                logging.warning(
                    "%s is a compressed .npz, which cannot be read record by record: its images are loaded into "
                    "memory. To stream it, save it uncompressed: np.savez(path, images=..., labels=...).",
                    path,
                )
                self._images = self._load_all()
        if self._images is not None:
            self._shape = self._images.shape
        self._labels = None if labels is None else pipeline.npz_labels(labels, self._shape[0], path)
        self._record_bytes = int(np.prod(self._shape[1:]))

    def _load_all(self) -> np.ndarray:
        with pipeline._open_npz(self.path) as z:
            return pipeline.as_nhwc_uint8(pipeline._npz_array(z, "images", self.path), self.path)

    def _file(self) -> int:
        pid = os.getpid()
        with self._lock:
            if pid not in self._fd:
                self._fd[pid] = os.open(self.path, os.O_RDONLY)
            return self._fd[pid]

    def __getstate__(self):  # worker processes open their own file descriptor
        state = dict(self.__dict__)
        state["_fd"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} of {len(self)} in {self.path}")
        if self._images is not None:
            image = self._images[index]
        else:
            data = os.pread(self._file(), self._record_bytes, self._offset + index * self._record_bytes)
            if len(data) != self._record_bytes:
                raise ValueError(f"{self.path}: damaged .npz archive (image {index} is cut short).")
            image = np.frombuffer(data, np.uint8).reshape(self._shape[1:])
        record = {"image": image}
        if self._labels is not None:
            record["label"] = self._labels[index]
        return record

    def label_range(self) -> tuple[int, int] | None:
        labels = self._labels
        return None if labels is None else (int(labels.min()), int(labels.max()))

    def __repr__(self) -> str:
        how = "in memory" if self._images is not None else "streamed"
        return f"NpzSource({self.path!r}, {len(self)} images, {how})"


class TfdsSource:
    """A TFDS split prepared in ArrayRecord format, read with `tfds.data_source` (random access).

    `sklearn_digits` is prepared on first use (offline). Raises FileNotFoundError for an unprepared
    dataset (never downloads) or one prepared only as TFRecord (with the command that converts it),
    and ValueError for an unknown dataset or split or a missing 'image'/'label' feature.
    """

    def __init__(
        self,
        name: str,
        *,
        split: str,
        data_dir: str | os.PathLike[str] | None = None,
        with_labels: bool = False,
    ):
        data_dir = os.fspath(data_dir) if data_dir else pipeline.default_data_dir()
        builder = pipeline._tfds_builder(name, data_dir)
        pipeline._check_split(name, builder, split)
        self._open(builder, name, split, pipeline._check_features(name, builder, with_labels), data_dir)

    @classmethod
    def of_builder(cls, builder, name: str, *, split: str, keys: list[str], data_dir: str) -> "TfdsSource":
        """A source over a prepared builder whose split and features were checked already."""
        source = cls.__new__(cls)
        source._open(builder, name, split, keys, data_dir)
        return source

    def _open(self, builder, name: str, split: str, keys: list[str], data_dir: str) -> None:
        self.keys = keys
        if not is_array_record(builder):
            raise FileNotFoundError(not_array_record_message(builder, name, data_dir))
        self.name, self.split = name, split
        self._builder = builder
        self._source = builder.as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self._source[int(index)]
        return {k: np.asarray(record[k]) if k == "image" else int(record[k]) for k in self.keys}

    def label_range(self) -> tuple[int, int] | None:
        """(lowest, highest) label: from the ClassLabel feature's class count, else read from every record."""
        if "label" not in self.keys:
            return None
        num_classes = getattr(self._builder.info.features["label"], "num_classes", None)
        if num_classes:
            return 0, int(num_classes) - 1
        labels = [int(self._source[i]["label"]) for i in range(len(self))]
        return min(labels), max(labels)

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, split={self.split!r}, {len(self)} records)"


def not_array_record_message(builder, name: str, data_dir: str) -> str:
    """Why a prepared TFDS dataset cannot be streamed, with the command that prepares it in ArrayRecord."""
    config = f" --config={name.split('/')[1].split(':')[0]}" if "/" in name else ""
    return (
        f"TFDS dataset '{name}' in '{data_dir}' is prepared as {builder.info.file_format.value}, which has "
        "no random access; jaxgan streams ArrayRecord. Prepare it once more in that format with "
        f"`tfds build {pipeline._base_name(name)} --data_dir={data_dir} --file_format=array_record{config}` "
        "(the TFRecord files stay where they are)."
    )


def is_array_record(builder) -> bool:
    """Whether a prepared TFDS builder's files are ArrayRecord (random access)."""
    return getattr(builder.info.file_format, "value", str(builder.info.file_format)) == "array_record"
