"""Data for image-to-image translation: two unpaired domains, or pairs; random crop and flip.

Sources (each gives uint8 [N, load_size, load_size, C] domains, resized with
PIL bicubic as the papers' reference code does before its random crop):

- `FileDomain`: the images of a folder (or the left/right halves of a folder of
  side-by-side pairs, the pix2pix convention), read from disk when a batch needs
  them (`load_translation_data` trains from these); `load_image_folder_domain` and
  `load_side_by_side_pairs` read them whole.
- `load_cycle_gan_tfds`: TFDS `cycle_gan/<name>` (horse2zebra, monet2photo, ...),
  splits trainA/trainB (testA/testB), prepared in ArrayRecord and read on demand
  (`RecordDomain`); never downloaded at run time.
- `demo_unpaired`, `demo_paired`: offline DEMO domains cut from the two
  photographs that ship with scikit-learn (china.jpg: a temple among trees under
  a blue sky; flower.jpg: an orange dahlia on dark teal leaves). Unpaired: A = china
  patches, B = flower patches, a real difference in palette and texture (what a
  CycleGAN can learn from 2 x 170 patches is mostly the colour shift; this shows
  the pipeline working, it is not a benchmark). Paired: A = the patch in
  grayscale (ITU-R 601 luma, 1 channel), B = the colour patch (colorization).

`TranslationBatcher` makes step-indexed batches: batch s is a pure function of
(domains, seed, s), random crop offsets and flips included, so a resumed run sees
exactly the batches of a straight run; `iterate` reads ahead in a Grain pipeline.

Every error names the file and the problem: wrong channel count, a pair whose
halves differ, an empty folder.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np

from jaxgan.common import process_batch_slice, to_model_range
from jaxgan.data.pipeline import _IMAGE_SUFFIXES, StreamOrder, _image_to_array, _tfds_builder, default_data_dir

_CHANNELS_OF_MODE = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "I;16L": 1,
    "I;16B": 1,
    "I;16N": 1,
    "F": 1,
    "LA": 2,
    "RGB": 3,
    "YCbCr": 3,
    "RGBA": 4,
    "CMYK": 4,
}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, C] -> [size, size, C], PIL bicubic (aspect ratio not kept, as the reference code)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    if image.shape[:2] == (size, size):
        return image
    squeeze = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((size, size), Image.BICUBIC), np.uint8)
    return out[..., None] if squeeze else out


def _check_mode(im, path: str, channels: int, fix: str | None = None) -> str:
    """The image's PIL mode (palette read as RGB/RGBA), or a ValueError when its channels are not `channels`;
    reads only the header."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    mode = im.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
    found = _CHANNELS_OF_MODE.get(mode)
    if found != channels:
        convert = f"Convert it (e.g. PIL's .convert('{'L' if channels == 1 else 'RGB'}'))"
        raise ValueError(
            f"{path}: the image has {found if found else 'an unsupported number of'} channel(s) (PIL mode "
            f"{im.mode}), expected {channels}. {convert}"
            + (fix or f", or set the domain's channels to {found} if the whole domain is like this.")
        )
    return mode


def read_image(path: str, *, channels: int, fix: str | None = None) -> np.ndarray:
    """Decodes one file to uint8 [H, W, channels]; a file with another channel count is an error.

    Palette images count as RGB. Grayscale is not silently turned into colour, nor
    colour into grayscale, nor alpha dropped: a domain's images must agree.
    `fix` replaces the suggested fix after "Convert it" in the error.
    """
    from PIL import Image  # pylint: disable=g-import-not-at-top

    try:
        with Image.open(path) as im:
            mode = _check_mode(im, path, channels, fix)
            if mode in ("I", "F") or mode.startswith("I;16"):  # 16-bit gray scaled, not clipped; float refused
                im.load()
                return _image_to_array(im, path)
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), np.uint8)
    except OSError as e:
        raise ValueError(f"{path}: not a readable image ({e}).") from e
    return arr[..., None] if channels == 1 else arr


def list_images(folder: str) -> list[str]:
    """Sorted PNG/JPEG paths directly in `folder`; an error if there are none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No such image folder: {folder}")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_SUFFIXES))
    if not names:
        raise ValueError(
            f"{folder}: the folder holds no PNG/JPEG files ({', '.join(_IMAGE_SUFFIXES)}); "
            "point the path at a folder of images."
        )
    return [os.path.join(folder, n) for n in names]


def load_image_folder_domain(folder: str, *, load_size: int, channels: int) -> np.ndarray:
    """Every image in `folder`, resized to load_size x load_size, in memory: uint8 [N, L, L, C]."""
    return FileDomain(list_images(folder), load_size=load_size, channels=channels)[:]


def split_side_by_side(image: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) = left and right halves of a side-by-side pair; the halves must be the same size."""
    h, w = image.shape[:2]
    if w % 2:
        raise ValueError(
            f"{path}: a side-by-side pair must be an even number of pixels wide (A left, B right, "
            f"equal halves), but it is {w}x{h}; its halves would differ. Re-save the pair with two "
            "halves of one size."
        )
    return image[:, : w // 2], image[:, w // 2 :]


def load_side_by_side_pairs(folder: str, *, load_size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """pix2pix's paired format, in memory: each file holds A (left half) and B (right half)."""
    paths = list_images(folder)
    return tuple(FileDomain(paths, load_size=load_size, channels=channels, half=h)[:] for h in ("left", "right"))


def paired_paths(folder_a: str, folder_b: str) -> list[tuple[str, str]]:
    """Paired folders: (A path, B path) matched by file name (any extension), in A's name order.

    Every image in A needs a partner with the same name in B, and back.
    """
    stems = lambda folder: {os.path.splitext(os.path.basename(p))[0]: p for p in list_images(folder)}
    a, b = stems(folder_a), stems(folder_b)
    for mine, other, other_dir in ((a, b, folder_b), (b, a, folder_a)):
        for stem in sorted(mine):
            if stem not in other:
                raise ValueError(
                    f"{mine[stem]}: no partner named '{stem}.*' in {other_dir}; paired folders need "
                    "one image of each pair in each folder under the same name."
                )
    return [(a[stem], b[stem]) for stem in sorted(a)]


class LazyDomain:
    """One domain's images, read when indexed (record i decoded and resized to load_size), so the domain is
    never held in memory. Quacks like the uint8 [N, L, L, C] array the demo sources return (`shape`, `len`,
    `x[i]`, `x[indices]`); subclasses say how record i is read (`_read`)."""

    def __init__(self, count: int, *, load_size: int, channels: int):
        self.load_size, self.channels = load_size, channels
        self.shape = (count, load_size, load_size, channels)
        self.dtype, self.ndim = np.dtype(np.uint8), 4

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._read(int(index))
        return np.stack([self._read(int(i)) for i in np.arange(len(self))[index]])


class FileDomain(LazyDomain):
    """The images of a list of files (or their left/right `half`, for side-by-side pairs), read on demand.

    Every file's header is checked when the domain is made (channels, and an even width for pairs), so a
    wrong file fails before training; a file that cannot be decoded fails when read, naming it.
    """

    def __init__(self, paths: Sequence[str], *, load_size: int, channels: int, half: str | None = None):
        from PIL import Image  # pylint: disable=g-import-not-at-top

        if half not in (None, "left", "right"):
            raise ValueError(f"half={half!r}; valid: None, 'left', 'right'.")
        self.paths, self.half = list(paths), half
        for path in self.paths:
            try:
                with Image.open(path) as im:
                    _check_mode(im, path, channels)
                    if half:
                        split_side_by_side(np.zeros((im.size[1], im.size[0], 0)), path)  # the width check only
            except OSError as e:
                raise ValueError(f"{path}: not a readable image ({e}).") from e
        super().__init__(len(self.paths), load_size=load_size, channels=channels)

    def _read(self, index: int) -> np.ndarray:
        path = self.paths[index]
        image = read_image(path, channels=self.channels)
        if self.half:
            image = split_side_by_side(image, path)[0 if self.half == "left" else 1]
        return _resize(image, self.load_size)


class RecordDomain(LazyDomain):
    """The 'image' records of a random-access source (`jaxgan.data.sources.TfdsSource`), read on demand."""

    def __init__(self, source, *, load_size: int, channels: int):
        self.source = source
        super().__init__(len(source), load_size=load_size, channels=channels)

    def _read(self, index: int) -> np.ndarray:
        image = np.asarray(self.source[index]["image"], np.uint8)
        if image.ndim != 3 or image.shape[-1] != self.channels:
            raise ValueError(
                f"{self.source!r} record {index}: the image is {image.shape}, expected [H, W, {self.channels}]."
            )
        return _resize(image, self.load_size)

    def __repr__(self) -> str:
        return f"RecordDomain({self.source!r}, load_size={self.load_size})"


def cycle_gan_name(name: str) -> str:
    """'horse2zebra' or 'cycle_gan/horse2zebra' -> 'cycle_gan/horse2zebra'."""
    return name if name.startswith("cycle_gan/") else f"cycle_gan/{name}"


# TFDS cycle_gan/<name> holds the domains as splits trainA, trainB, testA and testB.
CYCLE_GAN_SPLITS = ("train", "test")


def cycle_gan_datasets() -> list[str]:
    """The names TFDS' cycle_gan offers (horse2zebra, monet2photo, ...), from its installed code."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    return [c.name for c in tfds.builder_cls("cycle_gan").BUILDER_CONFIGS]


def load_cycle_gan_tfds(
    name: str, *, split: str = "train", load_size: int, data_dir: str | None = None, channels: int = 3
) -> tuple[RecordDomain, RecordDomain]:
    """TFDS `cycle_gan/<name>`, splits `<split>A` and `<split>B`, as the domains A and B, read on demand.

    `split` is 'train' or 'test'. The dataset must be prepared in ArrayRecord format (random access); one
    that is not prepared, or prepared only as TFRecord, fails with the `tfds build` command that prepares
    it (jaxgan never downloads at run time).
    """
    if channels != 3:
        raise ValueError(f"cycle_gan datasets are RGB; channels must be 3, got {channels}.")
    full = cycle_gan_name(name)
    known = cycle_gan_datasets()
    if full[len("cycle_gan/") :].split(":")[0] not in known:
        raise ValueError(
            f"data.name={name!r} is not a TFDS cycle_gan dataset; set it to one of {known} "
            "(source='tfds' reads cycle_gan/<name>), or use source='folders' for your own images."
        )
    if split not in CYCLE_GAN_SPLITS:
        raise ValueError(
            f"data.split={split!r}: cycle_gan/<name> splits are {CYCLE_GAN_SPLITS} (read as "
            f"<split>A and <split>B, the two domains); set data.split='train' or 'test'."
        )
    from jaxgan.data.sources import TfdsSource  # pylint: disable=g-import-not-at-top

    data_dir = data_dir or default_data_dir()
    builder = _tfds_builder(full, data_dir)
    domains = []
    for suffix in ("A", "B"):
        if f"{split}{suffix}" not in builder.info.splits:
            raise ValueError(
                f"Dataset '{full}' has no split '{split}{suffix}'; available: {sorted(builder.info.splits.keys())}."
            )
        source = TfdsSource.of_builder(builder, full, split=f"{split}{suffix}", keys=["image"], data_dir=data_dir)
        domains.append(RecordDomain(source, load_size=load_size, channels=channels))
    return domains[0], domains[1]


# ----------------------------------------------------------------------------
# The offline demo domains.


def _sample_photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top

    data = load_sample_images()
    return {
        os.path.splitext(os.path.basename(f))[0]: np.asarray(im, np.uint8) for f, im in zip(data.filenames, data.images)
    }


def photo_patches(photo: np.ndarray, *, patch: int, stride: int, load_size: int) -> np.ndarray:
    """All patch x patch windows of `photo` at `stride`, each resized to load_size."""
    h, w = photo.shape[:2]
    out = [
        _resize(photo[y : y + patch, x : x + patch], load_size)
        for y in range(0, h - patch + 1, stride)
        for x in range(0, w - patch + 1, stride)
    ]
    return np.stack(out)


def demo_unpaired(*, load_size: int, patch: int = 128, stride: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """DEMO: A = china.jpg patches, B = flower.jpg patches (see the module docstring)."""
    photos = _sample_photos()
    return (
        photo_patches(photos["china"], patch=patch, stride=stride, load_size=load_size),
        photo_patches(photos["flower"], patch=patch, stride=stride, load_size=load_size),
    )


def to_gray(images: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> uint8 luma [..., 1] (ITU-R 601 weights, rounded)."""
    return np.clip(np.round(images.astype(np.float32) @ _LUMA), 0, 255).astype(np.uint8)[..., None]


def demo_paired(*, load_size: int, patch: int = 128, stride: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """DEMO pairs (colorization): A = grayscale patch (1 channel), B = the colour patch, both photos."""
    photos = _sample_photos()
    color = np.concatenate(
        [photo_patches(photos[k], patch=patch, stride=stride, load_size=load_size) for k in ("china", "flower")]
    )
    return to_gray(color), color


# ----------------------------------------------------------------------------
# Batching with the papers' random crop and flip.


def crop_and_flip(image: np.ndarray, top: int, left: int, size: int, flip: bool) -> np.ndarray:
    out = image[top : top + size, left : left + size]
    return out[:, ::-1] if flip else out


class TranslationBatcher:
    """Step-indexed batches {"a", "b"} of random crops (and horizontal flips) in [-1, 1].

    Unpaired: A and B are drawn by two independent step-indexed permutations
    (`ArrayBatcher` with seeds 2*seed and 2*seed + 1) and cropped independently.
    Paired: one permutation, and A and B of a pair get the same crop and flip.
    Example i of global batch s crops with np.random.default_rng([seed, s, i]),
    as the papers do: resize to load_size, random crop_size crop, random flip
    (Isola et al. 2017 sec. 6.2: 286 -> 256; Zhu et al. 2017 sec. 7.1).
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        *,
        batch_size: int,
        crop_size: int,
        seed: int,
        paired: bool,
        flip: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ):
        for name, x in (("A", a), ("B", b)):
            if x.dtype != np.uint8 or x.ndim != 4 or len(x) == 0:
                raise ValueError(f"Domain {name} must be non-empty uint8 [N, H, W, C], got {x.dtype} {x.shape}.")
            if min(x.shape[1:3]) < crop_size:
                raise ValueError(
                    f"Domain {name}'s images are {x.shape[1]}x{x.shape[2]}, smaller than the crop "
                    f"{crop_size}; use a load_size >= crop_size."
                )
        if paired and (len(a) != len(b) or a.shape[1:3] != b.shape[1:3]):
            raise ValueError(f"Paired data needs as many A as B images of one size; got {a.shape} and {b.shape}.")
        self.a, self.b, self.paired, self.flip = a, b, paired, flip
        self.crop_size, self.seed, self.batch_size = crop_size, int(seed), batch_size
        kw = dict(batch_size=batch_size, process_index=process_index, process_count=process_count)
        self._order_a = StreamOrder(len(a), seed=2 * self.seed, **kw)
        self._order_b = self._order_a if paired else StreamOrder(len(b), seed=2 * self.seed + 1, **kw)
        self._rows = process_batch_slice(batch_size, process_index, process_count)

    def _crops(self, images: np.ndarray, idx: np.ndarray, draws: Sequence[tuple[int, int, bool]]) -> np.ndarray:
        return np.stack(
            [crop_and_flip(images[i], top, left, self.crop_size, f) for i, (top, left, f) in zip(idx, draws)]
        )

    def _draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[int, int, bool]:
        top = int(rng.integers(0, shape[0] - self.crop_size + 1))
        left = int(rng.integers(0, shape[1] - self.crop_size + 1))
        return top, left, bool(self.flip and rng.random() < 0.5)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch `step`: {"a", "b"} float32 [B_local, crop, crop, C]."""
        idx_a, idx_b = self._order_a.indices_at(step), self._order_b.indices_at(step)
        draws_a, draws_b = [], []
        for row in range(self._rows.start, self._rows.stop):
            rng = np.random.default_rng([self.seed, step, row])
            draws_a.append(self._draw(rng, self.a.shape[1:3]))
            draws_b.append(draws_a[-1] if self.paired else self._draw(rng, self.b.shape[1:3]))
        return {
            "a": to_model_range(self._crops(self.a, idx_a, draws_a)),
            "b": to_model_range(self._crops(self.b, idx_b, draws_b)),
        }

    def iterate(
        self, start_step: int = 0, *, num_threads: int = 2, prefetch: int = 4
    ) -> Iterator[dict[str, np.ndarray]]:
        """batch_at(s) for s = start_step, start_step + 1, ..., read ahead by a Grain pipeline (images from
        files are decoded by its threads)."""
        from jaxgan.data.stream import read_ahead  # pylint: disable=g-import-not-at-top

        return read_ahead(self.batch_at, start_step, num_threads=num_threads, prefetch=prefetch)


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of uint8 [N, H, W, C] (for fixed sample grids)."""
    h, w = images.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return images[:, top : top + size, left : left + size]


def load_translation_data(
    *,
    source: str,
    paired: bool,
    load_size: int,
    channels_a: int,
    channels_b: int,
    name: str = "",
    path_a: str = "",
    path_b: str = "",
    path: str = "",
    split: str = "train",
    data_dir: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatches on `source` ('demo', 'folders', 'side_by_side', 'tfds'); returns the uint8 (A, B) domains."""

    def check_channels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if (a.shape[-1], b.shape[-1]) != (channels_a, channels_b):
            raise ValueError(
                f"source={source!r} gives A with {a.shape[-1]} and B with {b.shape[-1]} channels; set "
                f"data.channels_a={a.shape[-1]} and data.channels_b={b.shape[-1]}."
            )
        return a, b

    if source == "demo":
        return check_channels(*(demo_paired if paired else demo_unpaired)(load_size=load_size))
    if source == "folders":
        if not path_a or not path_b:
            raise ValueError("source='folders' needs data.path_a and data.path_b (one folder of images per domain).")
        if paired:
            pairs = paired_paths(path_a, path_b)
            return (
                FileDomain([pa for pa, _ in pairs], load_size=load_size, channels=channels_a),
                FileDomain([pb for _, pb in pairs], load_size=load_size, channels=channels_b),
            )
        return (
            FileDomain(list_images(path_a), load_size=load_size, channels=channels_a),
            FileDomain(list_images(path_b), load_size=load_size, channels=channels_b),
        )
    if source == "side_by_side":
        if not path:
            raise ValueError("source='side_by_side' needs data.path, a folder of A|B side-by-side images.")
        if channels_a != channels_b:
            raise ValueError("Side-by-side pairs share one image, so channels_a must equal channels_b.")
        paths = list_images(path)
        return tuple(FileDomain(paths, load_size=load_size, channels=channels_a, half=h) for h in ("left", "right"))
    if source == "tfds":
        if paired:
            raise ValueError("TFDS cycle_gan/<name> datasets are unpaired; use source='side_by_side' for pix2pix.")
        return check_channels(*load_cycle_gan_tfds(name, split=split, load_size=load_size, data_dir=data_dir))
    raise ValueError(f"data.source={source!r}; valid: 'demo', 'folders', 'side_by_side', 'tfds'.")
