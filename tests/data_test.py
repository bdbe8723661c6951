"""Tests for jaxgan.data: offline TFDS digits, loaders, and ArrayBatcher."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib  # noqa: E402
import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from jaxgan.data import digits  # noqa: E402
from jaxgan.data import pipeline  # noqa: E402
from jaxgan.data.pipeline import ArrayBatcher  # noqa: E402
from tests.helpers import write_mock_tfds_metadata  # noqa: E402


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    digits.build_digits(data_dir)
    return str(data_dir)


def _reference_digits():
    """Independent reference: sklearn's 0..16 values scaled to 0..255."""
    d = load_digits()
    return np.round(d.images * 255.0 / 16.0).astype(np.uint8)[..., None], d.target


def _numpy_split(builder, split):
    source = builder.as_data_source(split=split)  # TFDS' own ArrayRecord reader
    records = [source[i] for i in range(len(source))]
    return np.stack([r["image"] for r in records]), np.asarray([r["label"] for r in records])


# ----------------------------------------------------------------------------
# sklearn_digits TFDS builder.


def test_digits_builder_offline_matches_sklearn(digits_dir):
    builder = digits.build_digits(digits_dir)  # Already prepared: a no-op.
    assert builder.info.version == "1.1.0" and builder.info.file_format.value == "array_record"
    assert set(builder.info.splits.keys()) == {"train", "test"}
    ref_images, ref_labels = _reference_digits()
    idx = digits.split_indices(ref_labels)
    total = 0
    for split in ("train", "test"):
        images, labels = _numpy_split(builder, split)
        assert images.shape == (len(idx[split]), 8, 8, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(images, ref_images[idx[split]])
        np.testing.assert_array_equal(labels, ref_labels[idx[split]])
        total += len(images)
    assert total == 1797
    assert builder.info.splits["train"].num_examples == 1442
    assert builder.info.splits["test"].num_examples == 355


def test_digits_splits_are_disjoint_stratified_and_complete():
    _, labels = _reference_digits()
    idx = digits.split_indices(labels)
    assert not set(idx["train"]) & set(idx["test"])
    np.testing.assert_array_equal(np.sort(np.concatenate(list(idx.values()))), np.arange(1797))
    for c in range(10):
        frac = np.mean(labels[idx["test"]] == c) / np.mean(labels == c) * len(idx["test"]) / 1797
        assert 0.17 < frac < 0.23, (c, frac)


def test_digits_module_can_be_executed_twice(digits_dir):
    importlib.reload(digits)  # Would raise "already registered" without the guard.
    builder = digits.build_digits(digits_dir)
    assert builder.info.splits["test"].num_examples == 355
    assert tfds.builder("sklearn_digits", data_dir=digits_dir).is_prepared()


def test_import_jaxgan_data_does_not_import_tensorflow():
    code = "import sys, jaxgan.data; assert 'tensorflow' not in sys.modules, 'TF imported'"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ----------------------------------------------------------------------------
# load_tfds_images.


def test_load_tfds_digits_resized(digits_dir):
    out = pipeline.load_tfds_images(
        "sklearn_digits",
        split="train",
        data_dir=digits_dir,
        image_size=32,
        channels=1,
        with_labels=True,
    )
    assert out["image"].shape == (1442, 32, 32, 1) and out["image"].dtype == np.uint8
    assert out["label"].shape == (1442,) and out["label"].dtype == np.int32
    ref_images, ref_labels = _reference_digits()
    train = digits.split_indices(ref_labels)["train"]
    np.testing.assert_array_equal(out["label"], ref_labels[train])
    # Same size and channels: exactly the stored pixels.
    same = pipeline.load_tfds_images("sklearn_digits", split="test", data_dir=digits_dir, image_size=8, channels=1)
    np.testing.assert_array_equal(same["image"], ref_images[digits.split_indices(ref_labels)["test"]])
    assert set(same) == {"image"}


def test_load_tfds_digits_rgb_and_split_slices(digits_dir):
    out = pipeline.load_tfds_images(
        "sklearn_digits",
        split="train[:10]+test[:5]",
        data_dir=digits_dir,
        image_size=16,
        channels=3,
    )
    assert out["image"].shape == (15, 16, 16, 3)
    np.testing.assert_array_equal(out["image"][..., 0], out["image"][..., 2])


def test_load_tfds_digits_uses_default_data_dir(digits_dir, monkeypatch):
    monkeypatch.setenv("JAXGAN_DATA_DIR", digits_dir)
    out = pipeline.load_tfds_images("sklearn_digits", split="test", image_size=8, channels=1)
    assert out["image"].shape == (355, 8, 8, 1)


def test_load_tfds_unknown_split_lists_available(digits_dir):
    with pytest.raises(ValueError, match=r"no split 'validation'.*\['test', 'train'\]"):
        pipeline.load_tfds_images("sklearn_digits", split="validation", data_dir=digits_dir, image_size=8, channels=1)


def test_load_tfds_bad_channels(digits_dir):
    with pytest.raises(ValueError, match=r"data\.channels=4: jaxgan trains on 1 \(grayscale\) or 3 \(RGB\)"):
        pipeline.load_tfds_images("sklearn_digits", split="test", data_dir=digits_dir, image_size=8, channels=4)


def test_unprepared_dataset_raises_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar10.*tfds build cifar10 --data_dir="):
        pipeline.load_tfds_images("cifar10", split="train", data_dir=str(tmp_path), image_size=32, channels=3)


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mock_metadata")
    write_mock_tfds_metadata(root, "mnist", {"train": 60000, "test": 10000})
    write_mock_tfds_metadata(root, "celeb_a", {"train": 3})  # image, no label
    write_mock_tfds_metadata(root, "imdb_reviews", {"train": 3})  # label, no image
    write_mock_tfds_metadata(root, "tf_flowers", {"train": 3})  # images of varying size
    return str(root)


def _mock(root, n):
    return tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=root)


def test_load_tfds_mnist_with_mock_data(mock_root, tmp_path):
    with _mock(mock_root, 6):
        # mock_data ignores the data_dir argument (it injects its own).
        out = pipeline.load_tfds_images(
            "mnist",
            split="train",
            data_dir=str(tmp_path),
            image_size=32,
            channels=3,
            with_labels=True,
        )
        assert out["image"].shape == (6, 32, 32, 3) and out["image"].dtype == np.uint8
        assert out["label"].shape == (6,) and out["label"].dtype == np.int32
        assert ((out["label"] >= 0) & (out["label"] < 10)).all()
        with pytest.raises(ValueError, match=r"no split 'validation'"):
            pipeline.load_tfds_images("mnist", split="validation", data_dir=str(tmp_path), image_size=28, channels=1)


def test_load_tfds_variable_size_images_with_mock_data(mock_root):
    with _mock(mock_root, 2):
        out = pipeline.load_tfds_images("tf_flowers", split="train", image_size=16, channels=1)
    assert out["image"].shape == (2, 16, 16, 1) and out["image"].dtype == np.uint8


def test_load_tfds_missing_label_and_image_features(mock_root, tmp_path):
    with _mock(mock_root, 2):
        with pytest.raises(ValueError, match=r"'celeb_a' has no 'label' feature.*with_labels"):
            pipeline.load_tfds_images(
                "celeb_a",
                split="train",
                data_dir=str(tmp_path),
                image_size=8,
                channels=3,
                with_labels=True,
            )
        with pytest.raises(ValueError, match=r"'imdb_reviews' has no 'image' feature"):
            pipeline.load_tfds_images("imdb_reviews", split="train", data_dir=str(tmp_path), image_size=8, channels=1)


# ----------------------------------------------------------------------------
# resize_and_convert.


@pytest.mark.parametrize("size", [3, 8, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_constant_image_stays_constant(size, channels):
    images = np.full((2, 8, 8, channels), 77, np.uint8)
    out = pipeline.resize_and_convert(images, image_size=size, channels=channels)
    assert out.shape == (2, size, size, channels) and out.dtype == np.uint8
    assert (out == 77).all()


def test_channel_conversion_matches_numpy():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (3, 5, 5, 1), dtype=np.uint8)
    np.testing.assert_array_equal(
        pipeline.resize_and_convert(gray, image_size=5, channels=3), np.repeat(gray, 3, axis=-1)
    )
    rgb = rng.integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    # 0.299R + 0.587G + 0.114B evaluated exactly, rounded half to even.
    luma = np.round((299 * r + 587 * g + 114 * b) / 1000)[..., None].astype(np.uint8)
    np.testing.assert_array_equal(pipeline.resize_and_convert(rgb, image_size=5, channels=1), luma)
    approx = 0.299 * r + 0.587 * g + 0.114 * b
    assert np.abs(luma[..., 0] - approx).max() <= 0.5 + 1e-9
    # An exact tie: 0.114 * 250 = 28.5 -> 28 (half to even), like np.round.
    tie = np.array([[[[0, 0, 250]]]], np.uint8)
    assert pipeline.resize_and_convert(tie, image_size=1, channels=1).item() == 28


def test_channel_conversion_bad_combinations():
    with pytest.raises(ValueError, match="4 channels to 3"):
        pipeline.resize_and_convert(np.zeros((1, 4, 4, 4), np.uint8), image_size=4, channels=3)
    with pytest.raises(ValueError, match=r"data\.channels=2: .* set --config\.data\.channels=1 or 3"):
        pipeline.resize_and_convert(np.zeros((1, 4, 4, 1), np.uint8), image_size=4, channels=2)
    with pytest.raises(ValueError, match="uint8"):
        pipeline.resize_and_convert(np.zeros((1, 4, 4, 1), np.float32), image_size=4, channels=1)


# ----------------------------------------------------------------------------
# npz and image-folder loaders.


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    labels = np.arange(5, dtype=np.int64)
    path = tmp_path / "d.npz"
    np.savez(path, images=images, labels=labels)
    out = pipeline.load_npz_images(path, image_size=6, channels=1, with_labels=True)
    np.testing.assert_array_equal(out["image"], images[..., None])
    assert out["label"].dtype == np.int32
    np.testing.assert_array_equal(out["label"], labels)
    rgb = rng.integers(0, 256, (4, 10, 10, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=rgb)
    out = pipeline.load_npz_images(tmp_path / "rgb.npz", image_size=16, channels=3)
    assert set(out) == {"image"} and out["image"].shape == (4, 16, 16, 3)


def test_npz_bad_inputs(tmp_path):
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4), np.float32))
    np.savez(tmp_path / "rank.npz", images=np.zeros((2, 4), np.uint8))
    np.savez(tmp_path / "key.npz", pictures=np.zeros((2, 4, 4), np.uint8))
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 4, 4), np.uint8))
    np.savez(tmp_path / "badlabels.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(3))
    np.save(tmp_path / "plain.npy", np.zeros((2, 4, 4), np.uint8))
    kw = dict(image_size=4, channels=1)
    with pytest.raises(ValueError, match="must be uint8, got float32"):
        pipeline.load_npz_images(tmp_path / "float.npz", **kw)
    with pytest.raises(ValueError, match=r"\[N, H, W\] or \[N, H, W, C\]"):
        pipeline.load_npz_images(tmp_path / "rank.npz", **kw)
    with pytest.raises(ValueError, match=r"no 'images' array.*pictures"):
        pipeline.load_npz_images(tmp_path / "key.npz", **kw)
    with pytest.raises(ValueError, match="no 'labels' array"):
        pipeline.load_npz_images(tmp_path / "nolabels.npz", with_labels=True, **kw)
    with pytest.raises(ValueError, match="'labels' must be integers"):
        pipeline.load_npz_images(tmp_path / "badlabels.npz", with_labels=True, **kw)
    with pytest.raises(ValueError, match="not an .npz archive"):
        pipeline.load_npz_images(tmp_path / "plain.npy", **kw)
    with pytest.raises(FileNotFoundError):
        pipeline.load_npz_images(tmp_path / "missing.npz", **kw)


def test_image_folder_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.png")
    Image.fromarray(np.full((10, 10), 200, np.uint8)).save(tmp_path / "a.PNG")  # grayscale
    Image.fromarray(np.full((12, 8, 3), 90, np.uint8)).save(tmp_path / "c.jpg", quality=100)
    (tmp_path / "notes.txt").write_text("not an image")
    out = pipeline.load_image_folder(tmp_path, image_size=10, channels=3)
    assert set(out) == {"image"}
    assert out["image"].shape == (3, 10, 10, 3) and out["image"].dtype == np.uint8
    assert (out["image"][0] == 200).all()  # a.PNG first (sorted), gray -> RGB
    np.testing.assert_array_equal(out["image"][1], rgb)
    assert np.abs(out["image"][2].astype(int) - 90).max() <= 2  # JPEG, resized 12x8 -> 10x10
    gray = pipeline.load_image_folder(tmp_path, image_size=5, channels=1)
    assert gray["image"].shape == (3, 5, 5, 1)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        pipeline.load_image_folder(tmp_path / "missing", image_size=8, channels=1)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="No PNG/JPEG files"):
        pipeline.load_image_folder(tmp_path, image_size=8, channels=1)


# ----------------------------------------------------------------------------
# Image modes in an image folder (references computed here with numpy).


def _luma(rgb):
    """ITU-R 601 luma of uint8 RGB, evaluated exactly and rounded half to even (as the loaders do)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return np.round((299 * r + 587 * g + 114 * b) / 1000).astype(np.uint8)[..., None]


def _load_one(tmp_path, name, image, size, channels, **save_kw):
    """Saves `image` (a PIL image) alone in a fresh folder and loads it at `size`."""
    folder = tmp_path / name.replace(".", "_")
    folder.mkdir()
    image.save(folder / name, **save_kw)
    return pipeline.load_image_folder(folder, image_size=size, channels=channels)["image"][0]


def test_image_folder_16bit_gray_png_is_scaled_linearly(tmp_path):
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once
    image = Image.fromarray(values)
    image.save(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode in ("I;16", "I") and np.asarray(im).max() == 65535  # really a 16-bit file
    expected = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)[..., None]
    out = pipeline.load_image_folder(tmp_path, image_size=256, channels=1)["image"][0]
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 0] == 0 and out[128, 0, 0] == 128 and out[-1, -1, 0] == 255
    rgb = pipeline.load_image_folder(tmp_path, image_size=256, channels=3)["image"][0]
    np.testing.assert_array_equal(rgb, np.repeat(expected, 3, axis=-1))


@pytest.mark.parametrize("channels_in", [2, 3, 4])  # gray+alpha, RGB, RGBA
def test_image_folder_16bit_color_png_is_scaled_linearly(tmp_path, channels_in):
    import tensorflow as tf  # PIL cannot write 16-bit colour PNGs; TF's encoder can.

    values = np.random.default_rng(channels_in).integers(0, 65536, (16, 16, channels_in), dtype=np.uint16)
    (tmp_path / "c.png").write_bytes(tf.io.encode_png(values).numpy())
    scaled = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    color = scaled[..., :1] if channels_in == 2 else scaled[..., :3]  # alpha dropped
    out = pipeline.load_image_folder(tmp_path, image_size=16, channels=color.shape[-1])["image"][0]
    np.testing.assert_array_equal(out, color)


def test_image_folder_palette_png(tmp_path):
    palette = np.array([[10, 20, 30], [200, 100, 50], [0, 255, 0], [255, 255, 255]], np.uint8)
    index = np.random.default_rng(3).integers(0, 4, (6, 6), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.ravel().tolist())
    image.info["transparency"] = 1  # a transparent palette entry: its colour is kept (transparency ignored)
    rgb = _load_one(tmp_path, "p.png", image, 6, 3, transparency=1)
    np.testing.assert_array_equal(rgb, palette[index])
    gray = _load_one(tmp_path, "p2.png", image, 6, 1, transparency=1)
    np.testing.assert_array_equal(gray, _luma(palette[index]))


def test_image_folder_alpha_is_dropped(tmp_path):
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (5, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(_load_one(tmp_path, "rgba.png", Image.fromarray(rgba, "RGBA"), 5, 3), rgba[..., :3])
    la = rng.integers(0, 256, (5, 5, 2), dtype=np.uint8)
    np.testing.assert_array_equal(_load_one(tmp_path, "la.png", Image.fromarray(la, "LA"), 5, 1), la[..., :1])


def test_image_folder_bilevel_png(tmp_path):
    bits = np.random.default_rng(5).integers(0, 2, (7, 7)).astype(bool)
    image = Image.fromarray(bits)
    assert image.mode == "1"
    out = _load_one(tmp_path, "b.png", image, 7, 1)
    np.testing.assert_array_equal(out, np.where(bits, 255, 0).astype(np.uint8)[..., None])


def test_image_folder_cmyk_jpeg(tmp_path):
    cmyk = np.random.default_rng(6).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    out = _load_one(tmp_path, "c.jpg", Image.fromarray(cmyk, "CMYK"), 8, 3, quality=100)
    with Image.open(tmp_path / "c_jpg" / "c.jpg") as im:  # the CMYK values the JPEG decodes to
        assert im.mode == "CMYK"
        decoded = np.asarray(im).astype(np.int64)
    # Naive CMYK -> RGB (no ICC profile): R = (255 - C) * (255 - K) / 255, rounded (never a tie).
    expected = np.round((255 - decoded[..., :3]) * (255 - decoded[..., 3:]) / 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_image_mode_i_is_16bit_range_and_float_is_refused():
    values = np.array([[0, 257, 32768, 65535]], np.int32)
    image = Image.fromarray(values)
    assert image.mode == "I"
    out = pipeline._image_to_array(image, "x.png")
    np.testing.assert_array_equal(out[..., 0], [[0, 1, 128, 255]])
    with pytest.raises(ValueError, match=r"x\.png: PIL mode 'I'.*-1\.\.70000.*0\.\.65535") as e:
        pipeline._image_to_array(Image.fromarray(np.array([[-1, 70000]], np.int32)), "x.png")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"y\.png: PIL mode 'F'.*uint8") as e:
        pipeline._image_to_array(Image.fromarray(np.array([[0.5]], np.float32)), "y.png")
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------
# Small helpers.


def test_default_data_dir(monkeypatch):
    monkeypatch.delenv("JAXGAN_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert pipeline.default_data_dir() == os.path.expanduser("~/tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", "/tfds")
    assert pipeline.default_data_dir() == "/tfds"
    monkeypatch.setenv("JAXGAN_DATA_DIR", "/jaxgan")
    assert pipeline.default_data_dir() == "/jaxgan"


def test_to_model_range():
    out = pipeline.to_model_range(np.array([0, 127, 255], np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-1.0, 127 / 127.5 - 1, 1.0], atol=1e-7)
    with pytest.raises(TypeError, match="uint8"):
        pipeline.to_model_range(np.zeros(3, np.float32))


def test_process_batch_slice_via_batcher_sizes():
    assert ArrayBatcher(_ids(10), batch_size=8, seed=0, process_count=4).local_batch_size == 2
    with pytest.raises(ValueError, match=r"global batch size 6 is not divisible by the process count 4"):
        ArrayBatcher(_ids(10), batch_size=6, seed=0, process_count=4)


# ----------------------------------------------------------------------------
# ArrayBatcher.


def _ids(n):
    """Arrays whose 'label' is the example index, to see which rows were taken."""
    return {"label": np.arange(n), "image": np.arange(n, dtype=np.uint8)[:, None, None, None]}


def _perm(seed, epoch, n):
    return np.random.default_rng([seed, epoch]).permutation(n)


def test_batcher_determinism_and_types():
    a = ArrayBatcher(_ids(50), batch_size=8, seed=3)
    b = ArrayBatcher(_ids(50), batch_size=8, seed=3)
    c = ArrayBatcher(_ids(50), batch_size=8, seed=4)
    for step in (0, 7, 100):
        for key in ("image", "label"):
            np.testing.assert_array_equal(a.batch_at(step)[key], b.batch_at(step)[key])
    assert not np.array_equal(a.batch_at(0)["label"], c.batch_at(0)["label"])
    batch = a.batch_at(0)
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (8, 1, 1, 1)
    assert batch["label"].dtype == np.int32
    np.testing.assert_allclose(batch["image"][:, 0, 0, 0], batch["label"] / 127.5 - 1.0, atol=1e-6)


@pytest.mark.parametrize("n,batch_size", [(10, 4), (12, 4), (7, 3), (3, 8)])
def test_batcher_stream_each_example_once_per_epoch(n, batch_size):
    seed = 11
    batcher = ArrayBatcher(_ids(n), batch_size=batch_size, seed=seed)
    epochs = 5
    steps = -(-epochs * n // batch_size)
    stream = np.concatenate([batcher.batch_at(s)["label"] for s in range(steps)])
    for e in range(epochs):
        epoch = stream[e * n : (e + 1) * n]
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))  # each exactly once
        np.testing.assert_array_equal(epoch, _perm(seed, e, n))
    assert all(len(batcher.batch_at(s)["label"]) == batch_size for s in range(steps))


def test_batcher_epoch_boundary_straddles():
    batcher = ArrayBatcher(_ids(10), batch_size=4, seed=5)
    p0, p1 = _perm(5, 0, 10), _perm(5, 1, 10)
    np.testing.assert_array_equal(batcher.batch_at(2)["label"], np.concatenate([p0[8:], p1[:2]]))
    np.testing.assert_array_equal(batcher.batch_at(3)["label"], p1[2:6])


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_batcher_process_shards_concatenate_to_global_batch(process_count):
    arrays = _ids(21)
    kw = dict(batch_size=8, seed=9)
    full = ArrayBatcher(arrays, **kw)
    shards = [ArrayBatcher(arrays, process_index=p, process_count=process_count, **kw) for p in range(process_count)]
    for step in range(12):  # crosses several epoch boundaries
        parts = [s.batch_at(step) for s in shards]
        assert all(len(part["label"]) == 8 // process_count for part in parts)
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([part[key] for part in parts]), full.batch_at(step)[key])


def test_batcher_resume_equals_straight_run():
    batcher = ArrayBatcher(_ids(13), batch_size=4, seed=1, process_index=1, process_count=2)
    straight = list(itertools.islice(iter(batcher), 15))
    resumed = list(itertools.islice(batcher.iterate(6), 9))
    fresh = list(
        itertools.islice(ArrayBatcher(_ids(13), batch_size=4, seed=1, process_index=1, process_count=2).iterate(6), 9)
    )
    for a, b, c in zip(straight[6:], resumed, fresh, strict=True):
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(a["label"], c["label"])
        np.testing.assert_array_equal(a["image"], c["image"])


def test_batcher_errors():
    with pytest.raises(ValueError, match="common length"):
        ArrayBatcher({"image": np.zeros((3, 1, 1, 1), np.uint8), "label": np.zeros(4)}, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="process_index"):
        ArrayBatcher(_ids(10), batch_size=4, seed=0, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="'image' must be uint8 images or float32 samples"):
        ArrayBatcher({"image": np.zeros((3, 1, 1, 1), np.float64)}, batch_size=2, seed=0)
    # float32 samples (2-D points) pass through unchanged.
    points = np.arange(8, dtype=np.float32).reshape(4, 2)
    batch = ArrayBatcher({"image": points}, batch_size=4, seed=0).batch_at(0)["image"]
    assert batch.dtype == np.float32 and sorted(map(tuple, batch)) == sorted(map(tuple, points))
    with pytest.raises(ValueError, match="step must be >= 0"):
        ArrayBatcher(_ids(10), batch_size=4, seed=0).batch_at(-1)
