"""Bad inputs to jaxgan.data's loaders fail early with one line naming the value and the fix."""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from jaxgan.data import pipeline  # noqa: E402


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value), str(excinfo.value)


def _write_png(path, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)


# ----------------------------------------------------------------------------
# data.channels.

_CHANNELS_MSG = (
    r"data\.channels=%s: jaxgan trains on 1 \(grayscale\) or 3 \(RGB\) channels; "
    r"set --config\.data\.channels=1 or 3"
)


@pytest.mark.parametrize("channels", [0, 2, 4, True, 3.0])
def test_bad_channels_refused_by_every_loader_before_reading(tmp_path, channels):
    # Each source is unreadable, so the channels check must come first to be seen.
    (tmp_path / "bad.npz").write_text("not an npz")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    msg = _CHANNELS_MSG % repr(channels).replace(".", r"\.")
    calls = [
        lambda: pipeline.load_tfds_images(
            "no_such_dataset", split="train", data_dir=str(tmp_path), image_size=8, channels=channels
        ),
        lambda: pipeline.load_npz_images(tmp_path / "bad.npz", image_size=8, channels=channels),
        lambda: pipeline.load_image_folder(tmp_path / "folder", image_size=8, channels=channels),
        lambda: pipeline.resize_and_convert(np.zeros((1, 4, 4, 3), np.uint8), image_size=8, channels=channels),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=msg) as e:
            call()
        _one_line(e)


# ----------------------------------------------------------------------------
# Image folders.


def test_truncated_png_error_names_the_file(tmp_path):
    _write_png(tmp_path / "a_good.png")
    _write_png(tmp_path / "b_cut.png", seed=1)
    data = (tmp_path / "b_cut.png").read_bytes()
    (tmp_path / "b_cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"b_cut\.png.*truncated.*re-save it or remove it") as e:
        pipeline.load_image_folder(tmp_path, image_size=8, channels=3)
    _one_line(e)
    assert str(tmp_path / "b_cut.png") in str(e.value)


def test_file_that_is_not_an_image_names_the_file(tmp_path):
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(ValueError, match=r"fake\.jpg.*re-save it or remove it") as e:
        pipeline.load_image_folder(tmp_path, image_size=8, channels=3)
    _one_line(e)


# ----------------------------------------------------------------------------
# TFDS names.


def test_unknown_tfds_name_is_one_line_with_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"'mnits'.*did you mean 'mnist'.*tfds\.list_builders\(\)") as e:
        pipeline.load_tfds_images("mnits", split="train", data_dir=str(tmp_path), image_size=8, channels=1)
    _one_line(e)
    with pytest.raises(ValueError, match=r"'no_such_dataset'.*data_dir.*tfds\.list_builders\(\)") as e:
        pipeline.load_tfds_images("no_such_dataset", split="train", data_dir=str(tmp_path), image_size=8, channels=1)
    _one_line(e)


def test_bad_tfds_version_or_config_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist:9\.9\.9'.*9\.9\.9.*only: 3\.0\.1") as e:
        pipeline.load_tfds_images("mnist:9.9.9", split="train", data_dir=str(tmp_path), image_size=8, channels=1)
    _one_line(e)
    with pytest.raises(ValueError, match=r"'mnist/no_config'.*no_config not found") as e:
        pipeline.load_tfds_images("mnist/no_config", split="train", data_dir=str(tmp_path), image_size=8, channels=1)
    _one_line(e)


# ----------------------------------------------------------------------------
# .npz files.

_NPZ_HOWTO = r"np\.savez\(path, images=<uint8 array \[N, H, W, C\]>\)"


@pytest.mark.parametrize("content", [b"just some text\n", bytes(range(256)) * 4, b""])
def test_file_that_is_not_an_npz(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not a numpy \.npz archive.*{_NPZ_HOWTO}") as e:
        pipeline.load_npz_images(path, image_size=8, channels=1)
    _one_line(e)


def test_truncated_npz(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, images=np.zeros((4, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: damaged \.npz archive.*{_NPZ_HOWTO}") as e:
        pipeline.load_npz_images(path, image_size=8, channels=1)
    _one_line(e)


class _Unpickled:
    """Unpickling this creates `marker` (a directory): proof that pickled data was run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_npz_with_pickled_objects_is_refused_not_unpickled(tmp_path):
    marker = str(tmp_path / "unpickled")
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.array([_Unpickled(marker)], dtype=object))
    pattern = rf"{re.escape(str(path))}: 'images' holds pickled Python objects.*{_NPZ_HOWTO}"
    with pytest.raises(ValueError, match=pattern) as e:
        pipeline.load_npz_images(path, image_size=8, channels=1)
    _one_line(e)
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    "name,arrays,pattern",
    [
        (
            "key",
            dict(image=np.zeros((2, 4, 4), np.uint8)),
            r"has no 'images' array; its keys are \['image'\].*" + _NPZ_HOWTO,
        ),
        (
            "float",
            dict(images=np.zeros((2, 4, 4), np.float32)),
            r"'images' must be uint8, got float32; scale the pixels to 0\.\.255",
        ),
        (
            "rgba",
            dict(images=np.zeros((2, 4, 4, 4), np.uint8)),
            r"'images' has 4 channels.*1 \(grayscale\) or 3 \(RGB\).*images\[\.\.\., :3\]",
        ),
        (
            "single",
            dict(images=np.zeros((32, 32, 3), np.uint8)),
            r"'images' has shape \(32, 32, 3\), which looks like one \[H, W, C\] image.*images\[None\]",
        ),
        ("empty", dict(images=np.zeros((0, 4, 4), np.uint8)), r"'images' holds no images \(shape \(0, 4, 4\)\)"),
    ],
)
def test_npz_wrong_key_dtype_or_shape(tmp_path, name, arrays, pattern):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: .*{pattern}") as e:
        pipeline.load_npz_images(path, image_size=4, channels=1)
    _one_line(e)
