"""Streaming input: record sources and the Grain batcher, against independent references.

References: the in-memory loaders (tested in data_test.py against PIL/numpy), the documented order
computed here with numpy, np.load for .npz archives, and counts of the records each process reads.
"""

import logging as std_logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from jaxgan import config as config_lib
from jaxgan.common import to_model_range
from jaxgan.data import pipeline, sources
from jaxgan.data.stream import StreamBatcher
from tests.helpers import CountingSource, documented_indices


def _write_folder(path, n, *, seed=0):
    """n RGB PNGs of two sizes (so resizing groups by shape), named out of creation order."""
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        side = 12 if i % 3 else 16
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path / f"{(i * 7) % n:03d}.png")
    return path


def test_folder_stream_equals_the_in_memory_loader_in_the_documented_order(tmp_path):
    folder = _write_folder(tmp_path / "png", 23)
    whole = pipeline.load_image_folder(folder, image_size=8, channels=1)["image"]
    batcher = StreamBatcher(sources.FolderSource(folder), batch_size=10, seed=3, image_size=8, channels=1)
    stream = batcher.iterate(1)
    for step in range(1, 8):  # crosses the epoch boundaries at positions 23 and 46
        idx = documented_indices(step, n=23, batch_size=10, seed=3)
        batch = next(stream)
        np.testing.assert_array_equal(batch["image"], to_model_range(whole[idx]))
        np.testing.assert_array_equal(batcher.batch_at(step)["image"], batch["image"])


def test_each_process_reads_only_its_own_records(tmp_path):
    folder = _write_folder(tmp_path / "png", 40)
    whole = pipeline.load_image_folder(folder, image_size=8, channels=3)["image"]
    steps = range(5)
    rows = []
    for p in range(2):
        counting = CountingSource(sources.FolderSource(folder))
        batcher = StreamBatcher(
            counting, batch_size=8, seed=1, image_size=8, channels=3, process_index=p, process_count=2, prefetch=1
        )
        got = [batcher.batch_at(s)["image"] for s in steps]
        expected = [documented_indices(s, n=40, batch_size=8, seed=1, process_index=p, process_count=2) for s in steps]
        assert counting.read == list(np.concatenate(expected))  # its rows, nothing else
        rows.append(got)
    for s in steps:  # the two processes' rows make the one-process global batch
        one = documented_indices(s, n=40, batch_size=8, seed=1)
        np.testing.assert_array_equal(np.concatenate([rows[0][s], rows[1][s]]), to_model_range(whole[one]))


def test_uncompressed_npz_is_read_record_by_record(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (21, 10, 10, 3), dtype=np.uint8), rng.integers(0, 5, 21)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    source = sources.NpzSource(tmp_path / "d.npz", with_labels=True)
    assert "streamed" in repr(source) and source._images is None  # positioned reads, no array in memory
    for i in (0, 7, 20):
        np.testing.assert_array_equal(source[i]["image"], images[i])
        assert source[i]["label"] == labels[i]
    assert source.label_range() == (labels.min(), labels.max())
    batcher = StreamBatcher(source, batch_size=4, seed=2, image_size=8, channels=1)
    whole = pipeline.load_npz_images(tmp_path / "d.npz", image_size=8, channels=1, with_labels=True)
    for step in range(7):
        idx = documented_indices(step, n=21, batch_size=4, seed=2)
        batch = batcher.batch_at(step)
        np.testing.assert_array_equal(batch["image"], to_model_range(whole["image"][idx]))
        np.testing.assert_array_equal(batch["label"], labels[idx])
    with pytest.raises(IndexError):
        source[21]


def test_grayscale_and_compressed_npz(tmp_path, caplog):
    images = np.random.default_rng(1).integers(0, 256, (5, 6, 6), dtype=np.uint8)  # [N, H, W]
    np.savez(tmp_path / "gray.npz", images=images)
    np.testing.assert_array_equal(sources.NpzSource(tmp_path / "gray.npz")[3]["image"], images[3][..., None])
    np.savez_compressed(tmp_path / "z.npz", images=images)
    with caplog.at_level(std_logging.WARNING):
        source = sources.NpzSource(tmp_path / "z.npz")
    assert "in memory" in repr(source) and "np.savez(" in caplog.text
    np.testing.assert_array_equal(source[4]["image"], images[4][..., None])
    np.savez(tmp_path / "f.npz", images=images.astype(np.float32))
    with pytest.raises(ValueError, match=r"f.npz: 'images' must be uint8, got float32"):
        sources.NpzSource(tmp_path / "f.npz")


def test_digits_stream_equals_the_tfds_split(tmp_path):
    source = sources.TfdsSource("sklearn_digits", split="train", data_dir=tmp_path, with_labels=True)
    assert len(source) == 1442 and source.label_range() == (0, 9)
    whole = pipeline.load_tfds_images(
        "sklearn_digits", split="train", data_dir=tmp_path, image_size=16, channels=1, with_labels=True
    )
    from jaxgan.data import digits

    ref_images, ref_labels = digits.digits_arrays()  # scikit-learn's own arrays, the split by its rule
    train = digits.split_indices(ref_labels)["train"]
    np.testing.assert_array_equal(whole["label"], ref_labels[train])
    batcher = StreamBatcher(source, batch_size=64, seed=0, image_size=16, channels=1)
    stream = batcher.iterate(21)  # crosses the first epoch boundary (1442 / 64 = 22.5)
    for step in range(21, 25):
        idx = documented_indices(step, n=1442, batch_size=64, seed=0)
        batch = next(stream)
        np.testing.assert_array_equal(batch["image"], to_model_range(whole["image"][idx]))
        np.testing.assert_array_equal(batch["label"], ref_labels[train][idx])
        np.testing.assert_array_equal(source[int(idx[0])]["image"], ref_images[train][idx[0]])


class JaxganTinyTfrecord(tfds.core.GeneratorBasedBuilder):
    """Four 4x4 images, prepared as TFRecord by the test."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = epath.Path(__file__)  # TFDS' own lookup needs a package (see jaxgan.data.digits)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(4, 4, 1))})
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(4):
            yield i, {"image": np.full((4, 4, 1), i, np.uint8)}


def test_tfrecord_dataset_fails_with_the_conversion_command(tmp_path):
    builder = JaxganTinyTfrecord(data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    name = builder.name
    with pytest.raises(FileNotFoundError) as e:
        sources.TfdsSource(name, split="train", data_dir=tmp_path)
    message = str(e.value)
    assert "\n" not in message
    assert f"`tfds build {name} --data_dir={tmp_path} --file_format=array_record`" in message
    # The in-memory loader still reads TFRecord (evaluation sets, small data).
    assert pipeline.load_tfds_images(name, split="train", data_dir=tmp_path, image_size=4, channels=1)[
        "image"
    ].shape == (
        4,
        4,
        4,
        1,
    )


def test_worker_process_gives_the_same_batches(tmp_path):
    folder = _write_folder(tmp_path / "png", 12)
    whole = pipeline.load_image_folder(folder, image_size=8, channels=3)["image"]
    batcher = StreamBatcher(
        sources.FolderSource(folder), batch_size=4, seed=0, image_size=8, channels=3, worker_count=1
    )
    stream = batcher.iterate(2)
    for step in range(2, 6):
        np.testing.assert_array_equal(
            next(stream)["image"], to_model_range(whole[documented_indices(step, n=12, batch_size=4, seed=0)])
        )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("worker_count", -1, r"config.data.worker_count=-1 must be an int >= 0"),
        ("read_threads", 0, r"config.data.read_threads=0 must be an int >= 1"),
    ],
)
def test_bad_reading_options_are_refused_with_the_config(field, value, message):
    config = config_lib.base_config()
    config.data[field] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config, 1)


def test_streamed_labels_are_checked_against_num_classes(tmp_path):
    from jaxgan.orchestrate import check_label_range

    np.savez(tmp_path / "d.npz", images=np.zeros((3, 4, 4), np.uint8), labels=np.array([0, 4, 2]))
    source = sources.NpzSource(tmp_path / "d.npz", with_labels=True)
    check_label_range(source, 5)
    with pytest.raises(ValueError, match=r"labels span 0..4, outside \[0, 3\); set config.model.num_classes=5"):
        check_label_range(source, 3)
    with pytest.raises(ValueError, match="needs labels"):
        check_label_range(sources.FolderSource(_write_folder(tmp_path / "png", 2)), 3)


def test_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such image folder"):
        sources.FolderSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No PNG/JPEG files"):
        sources.FolderSource(tmp_path / "empty")
    folder = _write_folder(tmp_path / "png", 3)
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    source = sources.FolderSource(folder)
    with pytest.raises(ValueError, match=r"Cannot decode image .*zz_broken.png"):
        source[3]
    assert os.path.basename(source.names[-1]) == "zz_broken.png"


def test_runs_from_a_folder_and_from_an_npz_of_the_same_images_end_equal(tmp_path):
    """Two readers (PNG decoding, positioned .npz reads) of one dataset, streamed through the orchestrator:
    the same batches, so the same final state; and both differ from a run on other images."""
    import jax

    from experiments.configs import test as test_config
    from jaxgan import orchestrate

    size = test_config.get_config().data.image_size
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (24, size, size, 1), dtype=np.uint8)
    (tmp_path / "png").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(tmp_path / "png" / f"{i:02d}.png")
    np.savez(tmp_path / "same.npz", images=images)
    np.savez(tmp_path / "other.npz", images=images[::-1])

    def final_state(source, name):
        config = test_config.get_config()
        config.train_steps, config.data.source, config.data.name, config.data.channels = 3, source, name, 1
        state = orchestrate.train_and_evaluate(config, str(tmp_path / f"run-{source}-{os.path.basename(name)}"))
        return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(state))]

    folder = final_state("folder", str(tmp_path / "png"))
    npz = final_state("npz", str(tmp_path / "same.npz"))
    for a, b in zip(folder, npz):
        np.testing.assert_array_equal(a, b)
    other = final_state("npz", str(tmp_path / "other.npz"))
    assert any(not np.array_equal(a, b) for a, b in zip(folder, other))


def test_translation_domains_from_files_are_read_on_demand_and_batch_like_arrays(tmp_path):
    from jaxgan.data import translation as tdata

    rng = np.random.default_rng(2)
    (tmp_path / "pairs").mkdir()
    pairs = [rng.integers(0, 256, (10, 20, 3), dtype=np.uint8) for _ in range(5)]
    for i, pair in enumerate(pairs):
        Image.fromarray(pair).save(tmp_path / "pairs" / f"{i}.png")
    a, b = tdata.load_translation_data(
        source="side_by_side", paired=True, load_size=12, channels_a=3, channels_b=3, path=str(tmp_path / "pairs")
    )
    assert isinstance(a, tdata.FileDomain) and a.shape == (5, 12, 12, 3)
    # Reference: PIL's bicubic resize of each half, as the papers' code.
    left = np.asarray(Image.fromarray(pairs[3][:, :10]).resize((12, 12), Image.BICUBIC))
    np.testing.assert_array_equal(a[3], left)
    np.testing.assert_array_equal(
        b[np.array([3])][0], np.asarray(Image.fromarray(pairs[3][:, 10:]).resize((12, 12), Image.BICUBIC))
    )
    kw = dict(batch_size=2, crop_size=8, seed=4, paired=True)
    lazy = tdata.TranslationBatcher(a, b, **kw)
    whole = tdata.TranslationBatcher(a[:], b[:], **kw)
    stream = lazy.iterate(3)
    for step in range(3, 7):
        got, want = next(stream), whole.batch_at(step)
        for k in ("a", "b"):
            np.testing.assert_array_equal(got[k], want[k])
    Image.fromarray(rng.integers(0, 256, (10, 21), dtype=np.uint8)).save(tmp_path / "pairs" / "odd.png")
    with pytest.raises(ValueError, match=r"odd.png: .*channel"):  # a gray file among RGB pairs: header check
        tdata.FileDomain(tdata.list_images(str(tmp_path / "pairs")), load_size=12, channels=3, half="left")


def test_the_evaluation_reference_is_read_in_chunks_or_as_a_random_subset(tmp_path):
    from jaxgan.orchestrate import streamed_reference

    folder = _write_folder(tmp_path / "png", 23)
    whole = pipeline.load_image_folder(folder, image_size=8, channels=3)["image"]
    counting = CountingSource(sources.FolderSource(folder))
    reference = streamed_reference(counting, seed=4, image_size=8, channels=3, chunk=10)
    chunks = reference(batched=True)
    assert counting.read == []  # nothing read until iterated
    first = next(chunks)
    assert counting.read == list(range(10))  # one chunk at a time
    np.testing.assert_array_equal(np.concatenate([first, *chunks]), whole)
    subset = np.sort(np.random.default_rng(4).choice(23, 7, replace=False))
    np.testing.assert_array_equal(reference(7), whole[subset])
