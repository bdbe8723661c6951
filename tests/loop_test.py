"""The GAN zoo end to end (`jaxgan.orchestrate` over `jaxgan.runner`) on the tiny test config and the offline digits."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from experiments.configs import test as test_config
from jaxgan import orchestrate, runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(steps, **overrides):
    config = test_config.get_config()
    config.train_steps = steps
    config.data.data_dir = overrides.pop("data_dir")
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def _leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(state))]


def test_writes_samples_checkpoints_events_and_resumes_exactly(tmp_path):
    data_dir = str(tmp_path / "tfds")
    straight = orchestrate.train_and_evaluate(_config(6, data_dir=data_dir), str(tmp_path / "straight"))

    resumed_dir = str(tmp_path / "resumed")
    orchestrate.train_and_evaluate(_config(3, data_dir=data_dir), resumed_dir)
    assert sorted(os.listdir(os.path.join(resumed_dir, "checkpoints"))) == ["3"]
    resumed = orchestrate.train_and_evaluate(_config(6, data_dir=data_dir), resumed_dir)

    assert int(straight.step) == int(resumed.step) == 6
    # The relaunch changed train_steps: the first config.json is kept beside the new one.
    kept = glob.glob(os.path.join(resumed_dir, "config.*.json"))
    assert len(kept) == 1
    with open(kept[0]) as f:
        assert json.load(f)["train_steps"] == 3
    for a, b in zip(_leaves(straight), _leaves(resumed)):
        np.testing.assert_array_equal(a, b)  # bit-exact: same data order, same keys

    work = tmp_path / "straight"
    grids = sorted(os.path.basename(p) for p in glob.glob(str(work / "samples" / "*.png")))
    assert grids == ["ema_000003.png", "ema_000006.png", "g_000003.png", "g_000006.png"]
    grid = np.asarray(Image.open(work / "samples" / "g_000006.png"))
    assert grid.dtype == np.uint8 and grid.ndim == 2 and grid.std() > 0  # 16 grey digits, not blank
    assert glob.glob(str(work / "events.out.tfevents.*"))
    assert sorted(os.listdir(work / "checkpoints")) == ["3", "6"]
    with open(work / "config.json") as f:
        assert json.load(f)["train_steps"] == 6


def test_mismatched_config_on_resume_fails_clearly(tmp_path):
    data_dir = str(tmp_path / "tfds")
    workdir = str(tmp_path / "run")
    orchestrate.train_and_evaluate(_config(3, data_dir=data_dir), workdir)
    wider = _config(6, data_dir=data_dir)
    wider.model.g_width = 16
    with pytest.raises(ValueError, match="does not fit this configuration"):
        orchestrate.train_and_evaluate(wider, workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]  # nothing lost


def test_old_module_names_still_hold_the_same_objects():
    """jaxgan.loop (now jaxgan.orchestrate) and the builders once in jaxgan.config: the same functions."""
    from jaxgan import build, config, loop, run_config
    from jaxgan.translation import loop as translation_loop, orchestrate as translation
    from jaxgan.video import loop as video_loop, orchestrate as video

    assert loop.train_and_evaluate is orchestrate.train_and_evaluate and loop.dry_run is orchestrate.dry_run
    assert loop.build_networks is config.build_networks is build.build_networks
    assert loop.resolve_schedule is config.resolve_schedule and config.Schedule is run_config.Schedule
    assert translation_loop.train_and_evaluate is translation.train_and_evaluate
    assert video_loop.compiled_step is video.compiled_step


def test_bad_batch_size_fails_before_anything_is_written(tmp_path):
    config = _config(2, data_dir=str(tmp_path / "tfds"))
    config.batch_size = jax.device_count() * 2 + 1
    with pytest.raises(ValueError, match="not divisible"):
        orchestrate.train_and_evaluate(config, str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad")


# --- Preemption, crashes and damaged checkpoints -----------------------------------------------


def _launch(workdir, data_dir, *flags):
    # Same XLA_FLAGS (8 CPU devices) as this process, so in-process reference runs match bit for bit.
    env = dict(os.environ, JAXGAN_DATA_DIR=str(data_dir))
    return subprocess.Popen(
        [
            sys.executable,
            "experiments/train.py",
            "--config=experiments/configs/test.py",
            f"--workdir={workdir}",
            *flags,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished_steps(workdir):
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _wait_for(predicate, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the run ended early (rc={process.returncode}): {err[-3000:]}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("timed out waiting for the run")


def _restored_leaves(workdir, like):
    from jaxgan import checkpoint

    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"), async_save=False) as manager:
        state, step = checkpoint.restore_latest(manager, jax.device_get(like))
    return step, _leaves(state)


def test_sigkill_between_checkpoints_then_relaunch_is_bit_exact(tmp_path):
    """A run killed with SIGKILL after a checkpoint and relaunched ends exactly like a straight run."""
    data_dir, workdir = tmp_path / "tfds", str(tmp_path / "killed")
    common = ["--config.checkpoint_every_steps=2", "--config.sample_every_steps=100000"]
    process = _launch(workdir, data_dir, "--config.train_steps=100000", *common)
    _wait_for(lambda: _finished_steps(workdir), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = _finished_steps(workdir)[-1]  # the newest finished checkpoint; later ones may be half-written
    end = killed_at + 2

    relaunched = _launch(workdir, data_dir, f"--config.train_steps={end}", *common)
    out, err = relaunched.communicate(timeout=600)
    assert relaunched.returncode == 0, err[-3000:]
    assert f"writing to workdir {workdir}" in out and "jaxgan: done. Samples in" in out  # the launcher's report

    straight = orchestrate.train_and_evaluate(
        _config(end, data_dir=str(data_dir), checkpoint_every_steps=2, sample_every_steps=100000),
        str(tmp_path / "straight"),
    )
    step, resumed = _restored_leaves(workdir, straight)
    assert step == end
    for a, b in zip(_leaves(straight), resumed):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        logged = [json.loads(line)["step"] for line in f]
    assert logged == sorted(set(logged)) and logged[-1] == end  # one row per step, though steps were re-run
    for name in ("g", "ema"):
        png = f"samples/{name}_{end:06d}.png"
        np.testing.assert_array_equal(
            np.asarray(Image.open(os.path.join(workdir, png))), np.asarray(Image.open(tmp_path / "straight" / png))
        )


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    data_dir, workdir = tmp_path / "tfds", str(tmp_path / "preempted")
    process = _launch(
        workdir,
        data_dir,
        "--config.train_steps=100000",
        "--config.checkpoint_every_steps=100000",
        "--config.sample_every_steps=1",
    )
    _wait_for(lambda: os.path.exists(os.path.join(workdir, "samples", "g_000001.png")), process)
    assert not _finished_steps(workdir)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-3000:]
    saved = _finished_steps(workdir)
    assert len(saved) == 1 and saved[0] >= 1
    assert f"checkpoint saved at step {saved[0]}" in out

    from jaxgan import workdir as workdir_lib

    assert workdir_lib.load_generator(workdir).step == saved[0]  # a complete, readable checkpoint


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    workdir = str(tmp_path / "run")
    straight = orchestrate.train_and_evaluate(_config(6, data_dir=data_dir), str(tmp_path / "straight"))
    orchestrate.train_and_evaluate(_config(6, data_dir=data_dir), workdir)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "6", "default", "d", "*")):
        with open(path, "r+b") as f:  # a disk error: the array data is truncated
            f.truncate(16)
    resumed = orchestrate.train_and_evaluate(_config(6, data_dir=data_dir), workdir)

    assert "checkpoint 6 is damaged (Orbax cannot parse it" in capsys.readouterr().out
    moved = [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.startswith("6.damaged-")]
    assert len(moved) == 1  # kept for inspection, not deleted
    assert _finished_steps(workdir) == [3, 6]  # steps 4..6 were retrained from 3 and saved again
    for a, b in zip(_leaves(straight), _leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_check_finite_looks_at_the_parameters_too():
    state = {"w": np.array([1.0, np.nan], np.float32), "step": np.int32(3)}
    with pytest.raises(
        FloatingPointError, match="parameters or optimizer state at step 7. Last good checkpoint: step 5"
    ):
        runner.check_finite(7, {"d_loss": 0.5}, state, 5)
    runner.check_finite(7, {"d_loss": 0.5}, {"w": np.ones(2, np.float32)}, 5)


# --- Dry run, durations, sampling, evaluators ----------------------------------------------------


def test_dry_run_prints_counts_and_config_without_writing(tmp_path):
    env = dict(os.environ, XLA_FLAGS="")
    result = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "--config=experiments/configs/test.py",
            "--dry_run",
            f"--workdir={tmp_path / 'never'}",
            "--config.train_images=1000",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from jaxgan.build import build_networks
    from jaxgan.state import create_train_state
    import optax

    g, d = build_networks(test_config.get_config())
    state = create_train_state(
        0,
        generator=g,
        discriminator=d,
        example_images=np.zeros((1, 32, 32, 1), np.float32),
        g_tx=optax.sgd(0.1),
        d_tx=optax.sgd(0.1),
    )
    count = lambda tree: sum(x.size for x in jax.tree_util.tree_leaves(tree))
    assert f"Generator {count(state.g.params):,} parameters, discriminator {count(state.d.params):,}" in result.stdout
    assert "63 steps of 16 real images" in result.stdout  # ceil(1000 / 16)
    assert '"train_images": 1000' in result.stdout
    assert not os.path.exists(tmp_path / "never")


def test_dry_run_rejects_a_bad_config():
    config = test_config.get_config()
    config.loss = "nope"
    with pytest.raises(ValueError, match="config.loss='nope' is unknown"):
        orchestrate.dry_run(config)


def test_durations_in_images_round_up_to_steps():
    from jaxgan.config import resolve_schedule

    config = test_config.get_config()  # batch 16
    config.n_critic = 2  # 32 real images per step
    config.train_images = 1000
    config.checkpoint_every_images = 320
    config.sample_every_images = 33
    schedule = resolve_schedule(config)
    assert (schedule.train_steps, schedule.checkpoint_every, schedule.sample_every) == (32, 10, 2)
    assert (schedule.log_every, schedule.eval_every, schedule.images_per_step) == (2, 0, 32)
    assert schedule.due(10, 20) and not schedule.due(10, 21) and schedule.due(10, 32) and not schedule.due(0, 5)


class _RecordingEvaluator:
    def __init__(self):
        self.calls = []

    def __call__(self, sample_fn, step):
        first, again, other = sample_fn(5, 11), sample_fn(5, 11), sample_fn(5, 12)
        self.calls.append((step, first.dtype, first.shape, np.array_equal(first, again), np.array_equal(first, other)))
        return {"mean_pixel": float(first.mean())}


def test_evaluators_sample_export_and_python_api(tmp_path):
    """Evaluators run every eval_every_steps on EMA-G; tools/sample.py and load_generator
    reproduce G(z) of the final state exactly, deterministic in the seed."""
    from jaxgan import workdir as workdir_lib
    from jaxgan.build import build_networks
    from jaxgan.common import to_uint8
    from jaxgan.sampling import generate

    data_dir, workdir = str(tmp_path / "tfds"), str(tmp_path / "run")
    evaluator = _RecordingEvaluator()
    config = _config(4, data_dir=data_dir, eval_every_steps=2)
    state = orchestrate.train_and_evaluate(config, workdir, evaluators=[evaluator])
    assert [c[0] for c in evaluator.calls] == [2, 4]
    assert all(c[1:] == (np.uint8, (5, 32, 32, 1), True, False) for c in evaluator.calls)
    with open(os.path.join(workdir, "version.json")) as f:
        version = json.load(f)
    assert version["jaxgan"] and version["jax"] == jax.__version__ and "git_commit" in version

    # Independent reference: G_ema(z_i) with z_i = N(0, I) keyed by fold_in(PRNGKey(seed), i).
    key = jax.random.PRNGKey(7)
    z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (16,))) for i in range(10)])
    expected = np.asarray(
        to_uint8(
            generate(
                build_networks(config)[0], jax.device_get(state.g_ema_params), jax.device_get(state.g.batch_stats), z
            )
        )
    )

    gan = workdir_lib.load_generator(workdir)
    assert gan.step == 4
    np.testing.assert_array_equal(gan.sample_uint8(10, seed=7, batch_size=4), expected)

    out = tmp_path / "export" / "s.npz"
    env = dict(os.environ, XLA_FLAGS="")
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "tools/sample.py", f"--workdir={workdir}", "--num=10", "--seed=7", f"--out={out}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(out) as f:
            assert sorted(f.files) == ["images"]
            np.testing.assert_array_equal(f["images"], expected)
    grid = np.asarray(Image.open(tmp_path / "export" / "s.png"))
    assert grid.ndim == 2 and grid.shape == (3 * 34 + 2, 4 * 34 + 2)  # 10 images: 3 rows of 4

    raw = workdir_lib.load_generator(workdir, ema=False)
    assert not np.array_equal(raw.sample_uint8(10, seed=7), expected)
    result = subprocess.run(
        [sys.executable, "tools/sample.py", f"--workdir={workdir}", "--num=10", "--seed=7", f"--out={out}", "--no_ema"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "(raw G)" in result.stdout, result.stderr[-3000:]
    with np.load(out) as f:
        np.testing.assert_array_equal(f["images"], raw.sample_uint8(10, seed=7))
    truncated = gan.sample_uint8(10, seed=7, truncation=0.5)  # BigGAN's truncation trick (tests/sampling_test.py)
    assert not np.array_equal(truncated, expected)
    result = subprocess.run(
        [
            sys.executable,
            "tools/sample.py",
            f"--workdir={workdir}",
            "--num=10",
            "--seed=7",
            f"--out={out}",
            "--truncation=0.5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "truncated to +/-0.5" in result.stdout, result.stderr[-3000:]
    with np.load(out) as f:
        np.testing.assert_array_equal(f["images"], truncated)
        assert float(f["truncation"]) == 0.5
    result = subprocess.run(
        [
            sys.executable,
            "tools/sample.py",
            f"--workdir={workdir}",
            "--num=10",
            f"--out={tmp_path / 'bad.npz'}",
            "--truncation=0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "--truncation" in result.stderr and not (tmp_path / "bad.npz").exists()
    with pytest.raises(ValueError, match="unconditional"):
        gan.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="truncation"):
        gan.sample(2, truncation=-1.0)
    with pytest.raises(FileNotFoundError, match="not a jaxgan workdir"):
        workdir_lib.load_generator(str(tmp_path))


def test_prefetch_to_mesh_keeps_order_and_reraises():
    from jaxgan.train import make_mesh, prefetch_to_mesh

    mesh = make_mesh()
    n = jax.device_count()
    batches = [{"image": np.full((1, n, 2), i, np.float32)} for i in range(5)]
    out = list(prefetch_to_mesh(iter(batches), mesh, size=2))
    assert [int(b["image"][0, 0, 0]) for b in out] == [0, 1, 2, 3, 4]
    assert out[0]["image"].sharding.spec == jax.sharding.PartitionSpec(None, "data")

    def broken():
        yield batches[0]
        raise OSError("disk gone")

    it = prefetch_to_mesh(broken(), mesh)
    next(it)
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_conditional_run_uses_labels_and_samples_by_class(tmp_path):
    from jaxgan import workdir as workdir_lib

    config = _config(2, data_dir=str(tmp_path / "tfds"), sample_every_steps=2)
    config.model.num_classes = 10
    config.num_samples = 20
    workdir = str(tmp_path / "cgan")
    orchestrate.train_and_evaluate(config, workdir)
    gan = workdir_lib.load_generator(workdir)
    assert gan.num_classes == 10
    threes = gan.sample(4, seed=1, labels=[3, 3, 3, 3])
    mixed = gan.sample(4, seed=1, labels=[3, 3, 3, 4])
    np.testing.assert_array_equal(threes[:3], mixed[:3])  # same latents and labels -> same images
    assert not np.array_equal(threes[3], mixed[3])  # the label changes the image
    with pytest.raises(ValueError, match="conditional on 10 classes"):
        gan.sample(2)
    bad = _config(2, data_dir=str(tmp_path / "tfds"))
    bad.model.num_classes = 5  # the digits have 10 classes
    with pytest.raises(ValueError, match=r"labels span 0\.\.9, outside \[0, 5\)"):
        orchestrate.train_and_evaluate(bad, str(tmp_path / "bad"))


def _event_scalars(workdir):
    import tensorflow as tf

    values = {}
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    values.setdefault(v.tag, {})[event.step] = v.simple_value
                elif v.HasField("tensor") and tf.make_ndarray(v.tensor).ndim == 0:  # skip image summaries
                    values.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
    return values


def test_config_evaluators_write_eval_scalars(tmp_path):
    from jaxgan import workdir as workdir_lib
    from jaxgan.metrics.evaluator import DigitsFrechetEvaluator

    config = _config(
        4, data_dir=str(tmp_path / "tfds"), eval_every_steps=2, eval_metrics="fcd,msssim", eval_num_samples=16
    )
    workdir = str(tmp_path / "run")
    orchestrate.train_and_evaluate(config, workdir)
    scalars = _event_scalars(workdir)
    for tag in ("eval/fcd", "eval/fcd_floor", "eval/msssim", "eval/msssim_real"):
        assert sorted(scalars[tag]) == [2, 4], (tag, scalars.get(tag))
    # The step-4 FCD is that of the final EMA generator's samples drawn with the config's seed.
    gan = workdir_lib.load_generator(workdir)
    direct = DigitsFrechetEvaluator(num_samples=16, seed=config.seed)(
        lambda num, seed: gan.sample_uint8(num, seed=seed), 4
    )
    np.testing.assert_allclose(scalars["eval/fcd"][4], direct["fcd"], rtol=1e-4)
    assert scalars["eval/fcd"][4] > scalars["eval/fcd_floor"][4]  # 4 steps of training are far from the data


def test_bad_eval_metrics_fail_before_anything_is_written(tmp_path):
    config = _config(2, data_dir=str(tmp_path / "tfds"), eval_every_steps=1, eval_metrics="fcd,fidd")
    with pytest.raises(ValueError, match=r"unknown \['fidd'\]; valid names"):
        orchestrate.train_and_evaluate(config, str(tmp_path / "bad"))
    config = _config(2, data_dir=str(tmp_path / "tfds"), eval_every_steps=1)
    config.data.channels = 3
    with pytest.raises(ValueError, match="needs the 32x32x1 sklearn_digits"):
        orchestrate.train_and_evaluate(config, str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad")


def test_two_dimensional_mixture_run_exports_points(tmp_path):
    """A 2-D ring run: the loop trains on points, draws scatter pictures, and tools/sample.py
    writes `points` equal to the Python API's samples."""
    from jaxgan import workdir as workdir_lib

    config = test_config.get_config()
    config.data.source, config.data.name, config.data.num_examples = "mixture", "ring", 1000
    config.model.name, config.model.g_width, config.model.d_width, config.model.depth = "mlp", 32, 32, 2
    config.train_steps, config.sample_every_steps, config.checkpoint_every_steps = 4, 4, 4
    workdir = str(tmp_path / "ring")
    orchestrate.train_and_evaluate(config, workdir)
    picture = np.asarray(Image.open(os.path.join(workdir, "samples", "ema_000004.png")))
    assert picture.shape == (256, 256) and 0 < (picture == 255).sum() <= config.num_samples
    out = tmp_path / "ring.npz"
    result = subprocess.run(
        [sys.executable, "tools/sample.py", f"--workdir={workdir}", "--num=50", "--seed=3", f"--out={out}"],
        cwd=ROOT,
        env=dict(os.environ, XLA_FLAGS=""),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as f:
        assert f.files == ["points"] and f["points"].dtype == np.float32 and f["points"].shape == (50, 2)
        np.testing.assert_allclose(
            f["points"], workdir_lib.load_generator(workdir).sample(50, seed=3), rtol=1e-5, atol=1e-6
        )
    assert not os.path.exists(tmp_path / "ring.png")  # no image grid for points


def test_scatter_image_places_points_by_hand():
    from jaxgan.sampling import scatter_image

    canvas = scatter_image(np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [5.0, 0.0]]), size=10, extent=2.0)
    # x = 0 -> column floor(2/4 * 10) = 5; y = 0 -> row 9 - 5 = 4; (1, 1) -> column 7, row 2; (-1, -1) -> column 2, row 7.
    assert {tuple(p) for p in np.argwhere(canvas == 255)} == {(4, 5), (2, 7), (7, 2)}  # (5, 0) is outside
    with pytest.raises(ValueError, match=r"points \[N, 2\]"):
        scatter_image(np.zeros((3, 3)))


def test_call_sizes_stop_at_every_periodic_action():
    from jaxgan.run_config import Schedule

    schedule = Schedule(
        train_steps=23, log_every=10, sample_every=0, checkpoint_every=7, eval_every=0, images_per_step=1
    )
    sizes = list(schedule.call_sizes(0, 3))
    # Events after steps 7, 10, 14, 20, 21 and 23 (the end): calls end exactly there, never inside.
    assert sizes == [3, 3, 1, 3, 3, 1, 3, 3, 1, 1, 1]  # 0-6-7 | 10 | 13-14 | 17-20 | 21 | 22-23
    ends = np.cumsum(sizes)
    assert {7, 10, 14, 20, 21, 23} <= set(ends.tolist()) and ends[-1] == 23
    assert list(schedule.call_sizes(21, 3)) == [1, 1]  # a resume between events
    assert list(schedule.call_sizes(0, 1)) == [1] * 23


def test_steps_per_call_trains_the_same_run(tmp_path):
    """K steps per compiled call (lax.scan) == one step per call: same final state,
    same checkpoints (taken at their steps, inside K-blocks' boundaries)."""
    config = test_config.get_config()
    config.data.source, config.data.name, config.data.num_examples = "mixture", "grid", 1000
    config.model.name, config.model.g_width, config.model.d_width, config.model.depth = "mlp", 32, 32, 2
    config.train_steps, config.sample_every_steps, config.checkpoint_every_steps = 13, 13, 6
    config.log_every_steps = 13
    config.eval_metrics, config.eval_every_steps, config.eval_num_samples = "modes", 13, 2500
    states = {}
    for k in (1, 4):
        config.steps_per_call, config.step_loop = k, "scan"
        workdir = tmp_path / f"k{k}"
        states[k] = orchestrate.train_and_evaluate(config, str(workdir))
        assert sorted(os.listdir(workdir / "checkpoints")) == ["12", "13", "6"]
    assert int(states[4].step) == 13
    for a, b in zip(_leaves(states[4]), _leaves(states[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The "modes" evaluator scored the final EMA generator's 2,500 float points (not uint8 images).
    from jaxgan import workdir as workdir_lib
    from jaxgan.metrics import modes

    scalars = _event_scalars(str(tmp_path / "k4"))
    points = workdir_lib.load_generator(str(tmp_path / "k4")).sample(2500, seed=config.seed)
    direct = modes.mode_coverage(points, "grid")
    assert scalars["eval/modes"][13] == direct["modes"]
    np.testing.assert_allclose(scalars["eval/high_quality"][13], direct["high_quality"], rtol=1e-5)


def test_last_step_metrics_keeps_a_non_finite_value():
    values = runner.last_step_metrics({"d_loss": np.array([1.0, np.nan, 2.0]), "g_loss": np.array([3.0, 4.0, 5.0])}, 3)
    assert values["g_loss"] == 5.0 and np.isnan(values["d_loss"])
    assert runner.last_step_metrics({"d_loss": np.float32(0.5)}, 1) == {"d_loss": 0.5}
