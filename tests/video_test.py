"""Video generation (issue 9): nets, moving digits, the step, metrics, the loop.

References are independent of the code under test: Flax's own 3-D convolution,
a step-by-step bouncing simulation, numpy motion and 1-D Frechet formulas, a
1-device run for the 4-device step, a straight run for the resumed one,
held-out clips for what the video D learned, and, for the streamed TFDS clips,
the clips the test builders wrote, the in-memory loader (TFRecord: tf.data) and
StreamOrder's order written out in numpy.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging as std_logging
import os
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from jaxgan.common import to_model_range
from jaxgan.data import video as vdata
from jaxgan.data.digits import split_indices
from tests.helpers import CountingSource, documented_indices
from jaxgan.metrics import video as vmetrics
from jaxgan.train import make_mesh, replicate
from jaxgan.translation.steps import INIT_COMPILER_OPTIONS
from jaxgan.video.nets import ImageDiscriminator, SpaceTimeConv, VideoDiscriminator, VideoGenerator, check_frame_size

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "configs")


def _run_once(fn, *args):
    """fn(*args) compiled without XLA's expensive passes: random init is slow to compile otherwise."""
    return jax.jit(fn).lower(*args).compile(INIT_COMPILER_OPTIONS)(*args)


def _test_config(**overrides):
    from experiments.configs import video_gan  # pylint: disable=g-import-not-at-top

    config = video_gan.get_config("test")
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return config


# ----------------------------------------------------------------------------
# Networks.


@pytest.mark.parametrize("size,frames", [(16, 4), (32, 16), (64, 3)])
def test_network_shapes(size, frames):
    g = VideoGenerator(content_dim=6, motion_dim=3, frame_size=size, channels=1, width=8)
    z = (jnp.zeros((2, 6)), jnp.zeros((2, 3)), jnp.zeros((2, frames, 3)))
    out, variables = jax.eval_shape(lambda: g.init_with_output(jax.random.PRNGKey(0), *z, train=False))
    assert out.shape == (2, frames, size, size, 1)
    assert set(variables["params"]) == {"latents", "frames"}
    videos = jax.ShapeDtypeStruct((2, frames, size, size, 1), jnp.float32)
    dv, di = VideoDiscriminator(frame_size=size, width=8), ImageDiscriminator(frame_size=size, width=8)
    assert jax.eval_shape(lambda v: dv.init_with_output(jax.random.PRNGKey(0), v)[0], videos).shape == (2,)
    frames_in = jax.ShapeDtypeStruct((5, size, size, 1), jnp.float32)
    assert jax.eval_shape(lambda v: di.init_with_output(jax.random.PRNGKey(0), v)[0], frames_in).shape == (5,)


def test_space_time_conv_is_flax_3d_conv():
    for time_stride, frames in ((1, 5), (2, 7)):
        x = jax.random.normal(jax.random.PRNGKey(1), (2, frames, 8, 8, 3))
        layer = SpaceTimeConv(6, time_stride=time_stride)
        reference = nn.Conv(6, (4, 4, 4), strides=(time_stride, 2, 2), padding="SAME")
        ours, theirs = _run_once(
            lambda x: (lambda p: (layer.apply(p, x), reference.apply(p, x)))(layer.init(jax.random.PRNGKey(0), x)), x
        )
        assert theirs.shape == (2, -(-frames // time_stride), 4, 4, 6)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_content_is_shared_and_motion_varies():
    """Same z_C and motion noise across frames -> frames differ only through the GRU's motion codes."""
    g = VideoGenerator(content_dim=4, motion_dim=2, frame_size=8, width=4, bn_axis_name=None)
    key = jax.random.PRNGKey(0)
    z = (jax.random.normal(key, (1, 4)), jnp.zeros((1, 2)), jax.random.normal(key, (1, 5, 2)))
    latents = _run_once(lambda z: g.apply(g.init(key, *z, train=False), *z, method=lambda m, *a: m.latents(*a)), z)
    np.testing.assert_array_equal(latents[0, :, :4], np.repeat(np.asarray(z[0]), 5, axis=0))
    assert np.ptp(np.asarray(latents[0, :, 4:]), axis=0).min() > 0


def test_bad_network_sizes_fail_clearly():
    for bad in (12, 4, 48):
        with pytest.raises(ValueError, match="power of two >= 8"):
            check_frame_size(bad)
    g = VideoGenerator(content_dim=6, motion_dim=3, frame_size=16, width=8)
    with pytest.raises(ValueError, match="z_content"):
        jax.eval_shape(
            lambda: g.init(
                jax.random.PRNGKey(0), jnp.zeros((2, 5)), jnp.zeros((2, 3)), jnp.zeros((2, 4, 3)), train=False
            )
        )
    with pytest.raises(ValueError, match="D_V expects videos"):
        VideoDiscriminator(frame_size=16).init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 16, 1)))


# ----------------------------------------------------------------------------
# Moving digits.


def _simulate_bounce(start: float, velocity: float, limit: int, steps: int) -> list[float]:
    """A ball between 0 and limit, moved one frame at a time, reversing at each wall."""
    x, v, out = start, velocity, [start]
    for _ in range(steps - 1):
        x += v
        while x < 0 or x > limit:
            if x > limit:
                x, v = 2 * limit - x, -v
            if x < 0:
                x, v = -x, -v
        out.append(x)
    return out


def test_reflect_matches_a_step_by_step_bounce():
    rng = np.random.default_rng(0)
    for _ in range(50):
        limit, start, v = int(rng.integers(1, 40)), None, rng.uniform(-3, 3)
        start = rng.uniform(0, limit)
        expected = _simulate_bounce(start, v, limit, 30)
        np.testing.assert_allclose(vdata.reflect(start + v * np.arange(30), limit), expected, atol=1e-9)


def test_moving_digits_are_seeded_and_stay_in_frame():
    source = vdata.MovingDigits(frame_size=32, num_frames=16, num_digits=1)
    sprites, _ = vdata.digit_sprites(16)
    a, labels_a = source.clips([0, 7, 123])
    b, labels_b = source.clips([0, 7, 123])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(labels_a, labels_b)
    assert not np.array_equal(a, vdata.MovingDigits(seed=1).clips([0, 7, 123])[0])
    assert a.shape == (3, 16, 32, 32, 1) and a.dtype == np.uint8
    for i in range(40):
        video, _ = source.clip(i)
        rows, positions = source.trajectory(i)
        assert positions.min() >= 0 and positions.max() <= 32 - 16  # the whole digit inside the frame
        steps = np.abs(np.diff(positions[0], axis=0))
        assert steps.max() <= 3 + 1  # at most max_speed (+ rounding) per frame
        for t, (y, x) in enumerate(positions[0]):  # the digit is drawn there, and nothing else
            np.testing.assert_array_equal(video[t, y : y + 16, x : x + 16, 0], sprites[rows[0]])
            outside = video[t, ..., 0].copy()
            outside[y : y + 16, x : x + 16] = 0
            assert not outside.any()
    moving = [np.abs(np.diff(source.clip(i)[0].astype(int), axis=0)).sum() for i in range(20)]
    assert min(moving) > 0


def test_train_and_test_clips_use_disjoint_digits():
    _, labels = vdata.digit_sprites(16)
    pools = split_indices(labels)
    train_rows = {int(r) for i in range(30) for r in vdata.MovingDigits(num_digits=2).trajectory(i)[0]}
    test_rows = {int(r) for i in range(30) for r in vdata.MovingDigits(split="test", num_digits=2).trajectory(i)[0]}
    assert train_rows <= set(pools["train"].tolist()) and test_rows <= set(pools["test"].tolist())


def test_batches_are_step_indexed_and_split_over_processes():
    source = vdata.MovingDigits(frame_size=16, num_frames=4)
    whole = vdata.MovingDigitsBatcher(source, batch_size=4).batch_at(3)["video"]
    np.testing.assert_array_equal(whole, source.clips(np.arange(12, 16))[0].astype(np.float32) / 127.5 - 1)
    halves = [
        vdata.MovingDigitsBatcher(source, batch_size=4, process_index=p, process_count=2).batch_at(3)["video"]
        for p in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate(halves), whole)


def test_bad_data_arguments_fail_clearly():
    with pytest.raises(ValueError, match="split"):
        vdata.MovingDigits(split="validation")
    with pytest.raises(ValueError, match="num_frames"):
        vdata.MovingDigits(num_frames=1)
    with pytest.raises(ValueError, match="digit_size"):
        vdata.MovingDigits(frame_size=16, digit_size=20)
    with pytest.raises(ValueError, match="uint8"):
        vdata.ArrayVideoBatcher(np.zeros((4, 2, 8, 8, 1), np.float32), batch_size=2, seed=0)


def test_tfds_builder_reads_back_the_stream(tmp_path):
    config = vdata.moving_digits_config(
        frame_size=16, num_digits=2, num_frames=4, train_clips=3, test_clips=2, name="tiny_test"
    )
    builder = vdata.build_moving_digits(tmp_path, config=config)
    assert builder.info.file_format.value == "array_record"  # random access: streamed
    records = builder.as_data_source(split="test")
    expected, labels = vdata.MovingDigits(split="test", frame_size=16, num_digits=2, num_frames=4).clips([0, 1])
    np.testing.assert_array_equal(np.stack([np.stack(records[i]["video"]) for i in range(2)]), expected)
    np.testing.assert_array_equal(np.stack([records[i]["label"] for i in range(2)]), labels)
    # By name, cut to 3 frames and converted to RGB (gray repeated).
    rgb = vdata.load_tfds_videos(
        "moving_digits/tiny_test", split="test", num_frames=3, frame_size=16, channels=3, data_dir=tmp_path
    )
    np.testing.assert_array_equal(rgb, np.repeat(expected[:, :3], 3, axis=-1))
    with pytest.raises(FileNotFoundError, match="tfds build moving_mnist"):
        vdata.load_tfds_videos("moving_mnist", split="test", num_frames=4, frame_size=16, channels=1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="no split 'validation'"):
        vdata.load_tfds_videos(
            "moving_digits/tiny_test", split="validation", num_frames=3, frame_size=16, channels=1, data_dir=tmp_path
        )
    with pytest.raises(ValueError, match="at least 9 frames"):
        vdata.load_tfds_videos(
            "moving_digits/tiny_test", split="test", num_frames=9, frame_size=16, channels=1, data_dir=tmp_path
        )


# ----------------------------------------------------------------------------
# TFDS videos streamed from ArrayRecord.


def _variable_clips():
    """Nine 8x8 gray clips of 2..6 frames: five have >= 4 (clips 0, 2, 4, 6, 8)."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (t, 8, 8, 1), dtype=np.uint8) for t in (4, 2, 5, 3, 6, 2, 4, 3, 5)]


class JaxganVariableVideos(tfds.core.GeneratorBasedBuilder):
    """`_variable_clips()` as a TFDS video dataset of variable length, prepared by the tests."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = epath.Path(__file__)  # TFDS' own lookup needs a package (see jaxgan.data.digits)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({"video": tfds.features.Video(shape=(None, 8, 8, 1))}),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, clip in enumerate(_variable_clips()):
            yield i, {"video": clip}


@pytest.fixture(scope="module")
def variable_videos(tmp_path_factory):
    """{file format: data_dir} of JaxganVariableVideos prepared offline in ArrayRecord and in TFRecord."""
    dirs = {}
    for file_format in ("array_record", "tfrecord"):
        dirs[file_format] = str(tmp_path_factory.mktemp(file_format))
        builder = JaxganVariableVideos(data_dir=dirs[file_format], file_format=file_format)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return dirs


def test_streamed_moving_digits_equal_the_in_memory_batches(tmp_path, monkeypatch):
    """A fixed-length dataset (moving_digits, ArrayRecord): no clip length is read; the streamed batches, read
    ahead across two epoch boundaries, are ArrayVideoBatcher's over load_tfds_videos, in the documented order."""
    config = vdata.moving_digits_config(
        frame_size=16, num_digits=1, num_frames=4, train_clips=6, test_clips=2, name="stream_test"
    )
    vdata.build_moving_digits(tmp_path, config=config)
    monkeypatch.setattr(vdata.TfdsVideoSource, "_long_enough", lambda *a: pytest.fail("scanned a fixed length"))
    name, kw = "moving_digits/stream_test", dict(split="train", num_frames=3, data_dir=tmp_path)
    clips = vdata.MovingDigits(frame_size=16, num_frames=4).clips(range(6))[0][:, :3]  # what the builder wrote
    np.testing.assert_array_equal(vdata.load_tfds_videos(name, frame_size=16, channels=1, **kw), clips)
    whole = vdata.load_tfds_videos(name, frame_size=8, channels=3, **kw)  # resized and converted
    batcher = vdata.tfds_video_batcher(name, frame_size=8, channels=3, batch_size=4, seed=3, **kw)
    assert isinstance(batcher, vdata.StreamVideoBatcher) and len(batcher.source) == 6
    memory = vdata.ArrayVideoBatcher(whole, batch_size=4, seed=3)
    stream = batcher.iterate(1)
    for step in range(1, 5):  # epochs of 6 clips end inside steps 1 and 4
        got = next(stream)["video"]
        np.testing.assert_array_equal(got, memory.batch_at(step)["video"])
        np.testing.assert_array_equal(got, to_model_range(whole[documented_indices(step, n=6, batch_size=4, seed=3)]))
        np.testing.assert_array_equal(batcher.batch_at(step)["video"], got)


def test_streamed_variable_length_videos_skip_short_clips_as_the_in_memory_loader(variable_videos):
    """Variable length: the clips with >= num_frames frames (first max_clips of them), their first frames; the
    TFRecord copy read through tf.data gives the same resized clips, bit for bit; the streamed batches equal
    the in-memory ones across an epoch boundary."""
    name = JaxganVariableVideos.name
    usable = np.stack([c[:4] for c in _variable_clips() if len(c) >= 4])  # [5, 4, 8, 8, 1]
    kw = dict(split="train", num_frames=4, data_dir=variable_videos["array_record"])
    np.testing.assert_array_equal(vdata.load_tfds_videos(name, frame_size=8, channels=1, **kw), usable)
    np.testing.assert_array_equal(vdata.load_tfds_videos(name, frame_size=8, channels=1, **kw, max_clips=2), usable[:2])
    source = vdata.TfdsVideoSource(name, **kw)
    assert len(source) == 5 and len(vdata.TfdsVideoSource(name, **kw, max_clips=3)) == 3
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(source))[4], usable[4])  # as Grain's workers get it
    for size, channels in ((4, 3), (16, 1)):  # down- and upscaled: tf.data and the data source agree
        resized = vdata.load_tfds_videos(name, frame_size=size, channels=channels, **kw)
        tfrecord = dict(kw, data_dir=variable_videos["tfrecord"])
        np.testing.assert_array_equal(
            resized, vdata.load_tfds_videos(name, frame_size=size, channels=channels, **tfrecord)
        )
    batcher = vdata.StreamVideoBatcher(source, batch_size=4, seed=2, frame_size=16, channels=1)
    memory = vdata.ArrayVideoBatcher(resized, batch_size=4, seed=2)
    stream = batcher.iterate(0)
    for step in range(3):  # epoch boundaries inside steps 1 and 2
        np.testing.assert_array_equal(next(stream)["video"], memory.batch_at(step)["video"])
    with pytest.raises(ValueError, match="no clip of at least 7 frames"):
        vdata.TfdsVideoSource(name, **dict(kw, num_frames=7))


def test_each_process_streams_only_its_own_clips(variable_videos):
    name = JaxganVariableVideos.name
    kw = dict(split="train", num_frames=4, data_dir=variable_videos["array_record"])
    whole = vdata.load_tfds_videos(name, frame_size=8, channels=1, **kw)
    memory = vdata.ArrayVideoBatcher(whole, batch_size=4, seed=1)
    steps, rows = range(4), []
    for p in range(2):
        counting = CountingSource(vdata.TfdsVideoSource(name, **kw))
        batcher = vdata.StreamVideoBatcher(
            counting, batch_size=4, seed=1, frame_size=8, channels=1, process_index=p, process_count=2
        )
        rows.append([batcher.batch_at(s)["video"] for s in steps])
        expected = [documented_indices(s, n=5, batch_size=4, seed=1, process_index=p, process_count=2) for s in steps]
        assert counting.read == list(np.concatenate(expected))  # its clips, nothing else
    for s in steps:  # together: the one-process batch
        np.testing.assert_array_equal(np.concatenate([rows[0][s], rows[1][s]]), memory.batch_at(s)["video"])


def test_tfrecord_video_dataset_is_held_in_memory_with_the_command(variable_videos, caplog):
    from jaxgan.video import orchestrate  # pylint: disable=g-import-not-at-top

    name = JaxganVariableVideos.name
    config = lambda data_dir: _test_config(
        **{"data.source": "tfds", "data.name": name, "data.split": "train", "data.data_dir": data_dir}
    )
    with caplog.at_level(std_logging.WARNING):
        memory = orchestrate.load_batcher(config(variable_videos["tfrecord"]))
    assert isinstance(memory, vdata.ArrayVideoBatcher)
    (warning,) = [r.getMessage() for r in caplog.records if "held in memory" in r.getMessage()]  # one line
    assert "held in memory" in warning and "\n" not in warning
    assert f"`tfds build {name} --data_dir={variable_videos['tfrecord']} --file_format=array_record`" in warning
    caplog.clear()
    with caplog.at_level(std_logging.WARNING):
        streamed = orchestrate.load_batcher(config(variable_videos["array_record"]))
    assert isinstance(streamed, vdata.StreamVideoBatcher) and "held in memory" not in caplog.text
    for step in range(2):
        np.testing.assert_array_equal(streamed.batch_at(step)["video"], memory.batch_at(step)["video"])


# ----------------------------------------------------------------------------
# Metrics, against numpy.


def test_motion_and_temporal_score_by_hand():
    clip = np.zeros((2, 4, 2, 2, 1), np.uint8)
    clip[0, 1] = 255  # 0 -> 255 -> 0 -> 0: changes 1, 1, 0 -> motion 2/3
    np.testing.assert_allclose(vmetrics.clip_motion(clip), [2 / 3, 0.0])
    still = np.zeros((3, 4, 2, 2, 1), np.uint8)
    score = vmetrics.temporal_score(still, clip)
    np.testing.assert_allclose(
        [
            score["motion_real"],
            score["motion_spread_real"],
            score["motion_fake"],
            score["motion_gap"],
            score["motion_spread_gap"],
        ],
        [1 / 3, 1 / 3, 0, 1 / 3, 1 / 3],
    )


def test_frame_frechet_distance_is_the_1d_formula_over_frames():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 3, 4, 4, 1), dtype=np.uint8)
    b = rng.integers(0, 128, (4, 3, 4, 4, 1), dtype=np.uint8)
    brightness = lambda frames: frames.reshape(len(frames), -1).mean(axis=1, keepdims=True)
    fa, fb = brightness(a.reshape(-1, 4, 4, 1))[:, 0], brightness(b.reshape(-1, 4, 4, 1))[:, 0]
    va, vb = fa.var(ddof=1), fb.var(ddof=1)
    expected = (fa.mean() - fb.mean()) ** 2 + va + vb - 2 * np.sqrt(va * vb)
    np.testing.assert_allclose(vmetrics.frame_frechet_distance(a, b, features=brightness), expected, rtol=1e-9)
    evaluator = vmetrics.VideoEvaluator(b, features=brightness, num_clips=4)
    same = evaluator.evaluate_videos(b)
    assert abs(same["frame_fd"]) < 1e-9 and same["motion_gap"] == 0.0
    assert evaluator(lambda num, seed: a[:num], step=0)["frame_fd"] > 0


def test_frame_fid_uses_inception_features_of_every_gray_frame_as_rgb():
    """features="inception": every frame of every clip, gray repeated to RGB, through the FID Inception
    (random weights at 64-d here: the real ones are not shipped); the statistics are numpy's mean and
    covariance of those features (the Frechet formula itself is tested above and in fid_test)."""
    from jaxgan.metrics import fid  # pylint: disable=g-import-not-at-top
    from tests.helpers import random_inception_variables  # pylint: disable=g-import-not-at-top

    extractor = fid.InceptionFeatures(random_inception_variables(), weights_meta={}, feature_dim=64, batch_size=8)
    features = vmetrics.inception_frame_features(extractor)
    clips = np.random.default_rng(1).integers(0, 256, (3, 4, 16, 16, 1), dtype=np.uint8)
    rgb_frames = np.repeat(clips.reshape(-1, 16, 16, 1), 3, axis=-1)
    direct = np.asarray(extractor(rgb_frames), np.float64)
    got = vmetrics.frame_stats(clips, features)
    assert got.n == 12
    np.testing.assert_allclose(got.mean, direct.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.cov, np.cov(direct, rowvar=False), rtol=1e-4, atol=1e-6)


def test_metrics_reject_bad_videos():
    with pytest.raises(TypeError, match="uint8"):
        vmetrics.clip_motion(np.zeros((2, 4, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="leading batch axis"):
        vmetrics.clip_motion(np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="T >= 2"):
        vmetrics.clip_motion(np.zeros((2, 1, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="Unknown frame features"):
        vmetrics.VideoEvaluator(np.zeros((2, 2, 8, 8, 1), np.uint8), features="i3d")


def test_digits_frame_distance_separates_digits_from_noise():
    real = vdata.MovingDigits(frame_size=16, num_frames=4).clips(range(16))[0]
    other = vdata.MovingDigits(frame_size=16, num_frames=4, seed=5).clips(range(16))[0]
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    evaluator = vmetrics.VideoEvaluator(real, features="digits")
    assert evaluator.evaluate_videos(other)["frame_fd_digits"] < evaluator.evaluate_videos(noise)["frame_fd_digits"]


# ----------------------------------------------------------------------------
# The video D sees temporal order.


def _shuffled(videos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each clip with its frames in a random order that is neither the original nor its reverse."""
    t = videos.shape[1]
    orders = [p for p in itertools.permutations(range(t)) if p != tuple(range(t)) and p != tuple(range(t))[::-1]]
    return np.stack([v[list(orders[rng.integers(len(orders))])] for v in videos])


def test_video_discriminator_learns_temporal_order():
    """Trained shortly to tell clips from their frame-shuffled copies, D_V ranks held-out real clips
    above the same clips shuffled: it sees the order of frames, which a per-frame D cannot."""
    train = vdata.MovingDigits(frame_size=16, num_frames=4)
    test = vdata.MovingDigits(split="test", frame_size=16, num_frames=4)
    d = VideoDiscriminator(frame_size=16, width=8)
    rng = np.random.default_rng(0)
    params = _run_once(d.init, jax.random.PRNGKey(0), jnp.zeros((1, 4, 16, 16, 1)))
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @functools.partial(jax.jit, compiler_options=INIT_COMPILER_OPTIONS)  # compiles fast, runs fast enough
    def update(params, opt, real, shuffled):
        def loss(p):
            return jnp.mean(
                optax.sigmoid_binary_cross_entropy(
                    jnp.concatenate([d.apply(p, real), d.apply(p, shuffled)]),
                    jnp.concatenate([jnp.ones(len(real)), jnp.zeros(len(shuffled))]),
                )
            )

        grads = jax.grad(loss)(params)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt

    for step in range(60):
        clips = train.clips(np.arange(step * 16, (step + 1) * 16))[0].astype(np.float32) / 127.5 - 1
        params, opt = update(params, opt, clips, _shuffled(clips, rng))
    held_out = test.clips(np.arange(64))[0].astype(np.float32) / 127.5 - 1
    real_scores = np.asarray(d.apply(params, held_out))
    shuffled_scores = np.asarray(d.apply(params, _shuffled(held_out, rng)))
    assert real_scores.mean() > shuffled_scores.mean()
    assert (real_scores > shuffled_scores).mean() >= 0.8, (real_scores > shuffled_scores).mean()


# ----------------------------------------------------------------------------
# The step and the loop.


def test_step_device_count_invariant_and_checks_batches():
    from jaxgan.video import orchestrate  # pylint: disable=g-import-not-at-top

    config = _test_config()
    batches = [orchestrate.load_batcher(config).batch_at(s) for s in range(2)]
    finals = {}
    for n in (1, 4):
        compiled = orchestrate.compiled_step(config, make_mesh(jax.devices()[:n]))
        state = replicate(compiled.init(0), make_mesh(jax.devices()[:n]))
        for batch in batches:
            state, metrics = compiled.train(state, batch)
        finals[n] = jax.device_get(state)
        assert all(np.isfinite(float(v)) for v in metrics.values())
    # The same step under jax.pmap (same axis name) on 4 devices.
    from jaxgan.video.steps import pmap_video_step  # pylint: disable=g-import-not-at-top

    pmapped = pmap_video_step(compiled.step, jax.local_devices()[:4])
    host_state = jax.device_get(compiled.init(0))
    for batch in batches:
        host_state, metrics = pmapped(host_state, batch)
    finals["pmap"] = jax.device_get(host_state)
    for other in (4, "pmap"):
        for a, b in zip(jax.tree_util.tree_leaves(finals[1]), jax.tree_util.tree_leaves(finals[other])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert int(finals[4].step) == int(finals["pmap"].step) == 2
    train = compiled.train
    with pytest.raises(ValueError, match="not divisible by the device count 4"):
        train(state, {"video": batches[0]["video"][:6]})
    with pytest.raises(ValueError, match="expected float32"):
        train(state, {"video": batches[0]["video"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"expected \[B, 4, 16, 16, 1\]"):
        train(state, {"video": batches[0]["video"][:, :3]})


def test_bad_configs_fail_before_compiling():
    from jaxgan.video import orchestrate  # pylint: disable=g-import-not-at-top

    for overrides, message in [
        ({"data.frame_size": 24}, "power of two"),
        ({"batch_size": 6}, "multiple of the device count 4"),
        ({"data.source": "folder"}, "valid: "),
        ({"data.source": "tfds"}, "needs config.data.name"),
        ({"data.channels": 3}, "grayscale"),
        ({"compile": "fast"}, "config.compile"),
        ({"loss": "nope"}, "Unknown loss"),
    ]:
        with pytest.raises(ValueError, match=message):
            config = _test_config(**overrides)
            orchestrate.validate(config, 4)
            orchestrate.build_step(config)


def test_training_resumes_exactly_writes_samples_and_closes_the_gap(tmp_path):
    """8 steps straight == 4 steps, stop, resume, 4 steps (bit-exact), with GIF + PNG samples; a 40-step
    run keeps losses finite and lowers the gap between G's clips and real ones from its start
    (per-frame digits Frechet distance to held-out clips, and mean brightness)."""
    from jaxgan.video import orchestrate  # pylint: disable=g-import-not-at-top

    mesh = make_mesh(jax.devices()[:1])
    config = _test_config()
    straight = orchestrate.train_and_evaluate(config, str(tmp_path / "straight"), mesh=mesh)
    orchestrate.train_and_evaluate(config, str(tmp_path / "resumed"), stop_at=4, mesh=mesh)
    resumed = orchestrate.train_and_evaluate(config, str(tmp_path / "resumed"), mesh=mesh)
    assert int(straight.step) == int(resumed.step) == 8
    for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(straight)), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(x, y)

    samples = tmp_path / "straight" / "samples"
    assert sorted(os.listdir(samples)) == sorted(
        f"{n}_{s:06d}.{e}" for n in ("g", "ema") for s in (0, 4, 8) for e in ("gif", "png")
    )
    clips = np.asarray(
        jax.device_get(
            orchestrate.compiled_step(config, mesh).sample(
                straight.g_ema_params, straight.g.batch_stats, config.seed + 1
            )
        )
    )
    clips = np.clip(np.round((clips + 1) * 127.5), 0, 255).astype(np.uint8)  # [2, 4, 16, 16, 1]
    with Image.open(samples / "ema_000008.gif") as gif:
        assert gif.n_frames == 4
        gif.seek(2)
        frame = np.asarray(gif.convert("L"))
    np.testing.assert_array_equal(frame[2:18, 2:18], clips[0, 2, ..., 0])  # clip 0, frame 2, top left
    grid = np.asarray(Image.open(samples / "ema_000008.png"))
    for i, t in ((0, 0), (1, 3)):  # row = clip, column = frame, 2 px padding
        np.testing.assert_array_equal(
            grid[2 + i * 18 : 2 + i * 18 + 16, 2 + t * 18 : 2 + t * 18 + 16], clips[i, t, ..., 0]
        )
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "straight"))
    # A relaunch that repeats a step never overwrites that step's samples.
    assert orchestrate.unused_name(str(samples), "ema", 8) == "ema-rerun1"
    assert orchestrate.unused_name(str(samples), "ema", 12) == "ema"

    # A short run closes the gap between generated and real clips.
    config = _test_config(train_steps=40, log_every_steps=1, sample_every_steps=40, checkpoint_every_steps=40)
    state = orchestrate.train_and_evaluate(config, str(tmp_path / "long"), mesh=mesh)
    with open(tmp_path / "long" / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f]
    assert len(logged) == 40 and all(np.isfinite(v) for row in logged for v in row.values())
    compiled = orchestrate.compiled_step(config, mesh)
    start = compiled.init(config.seed)
    real = orchestrate.reference_clips(config, 16)
    as_uint8 = lambda x: np.clip(np.round((np.asarray(x) + 1) * 127.5), 0, 255).astype(np.uint8)
    clips = lambda s: np.concatenate(
        [as_uint8(compiled.sample(s.g.params, s.g.batch_stats, seed)) for seed in range(8)]
    )  # 16 clips, 64 frames
    evaluator = vmetrics.VideoEvaluator(real, features="digits")
    before, after = clips(start), clips(state)
    fd_before = evaluator.evaluate_videos(before)["frame_fd_digits"]
    fd_after = evaluator.evaluate_videos(after)["frame_fd_digits"]
    assert fd_after < 0.75 * fd_before, (fd_before, fd_after)
    brightness_gap = lambda x: abs(x.mean() - real.mean())
    assert brightness_gap(after) < 0.75 * brightness_gap(before), (before.mean(), after.mean(), real.mean())


def test_launcher_trains_the_test_preset_and_says_where_the_samples_are(tmp_path):
    """experiments/video_gan.py through the shared experiments/launcher.py, as a user runs it."""
    import subprocess  # pylint: disable=g-import-not-at-top
    import sys  # pylint: disable=g-import-not-at-top

    root = os.path.join(os.path.dirname(__file__), os.pardir)
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/video_gan.py",
            "--config=experiments/configs/video_gan.py:test",
            f"--workdir={workdir}",
            "--config.train_steps=4",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"jaxgan: writing to workdir {workdir}" in result.stdout
    assert f"jaxgan: stopped at step 4. Samples (GIF + frame grids) in {workdir / 'samples'}" in result.stdout
    assert {"g_000004.gif", "ema_000004.png"} <= set(os.listdir(workdir / "samples"))


def test_launcher_exit_status_tells_a_scheduler_whether_the_run_finished():
    """143 (128 + SIGTERM) only when a preemption stopped the run before its end (the schedule's last step or
    --stop_at), as experiments/train.py does; a scheduler requeues on it."""
    from experiments.launcher import exit_status
    from jaxgan.translation.config import base_config

    config = base_config("cyclegan")  # train_steps 1000
    assert exit_status(1000, config, None) == 0
    assert exit_status(999, config, None) == 143
    assert exit_status(10, config, 10) == 0  # --stop_at reached: done as asked
    assert exit_status(9, config, 10) == 143
    assert exit_status(1000, config, 5000) == 0  # a --stop_at past the end: the end counts
