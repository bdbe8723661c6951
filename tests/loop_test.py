"""The loop end to end on the tiny test config and the offline digits."""

import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from experiments.configs import test as test_config
from jaxgan import loop

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
    straight = loop.train_and_evaluate(_config(6, data_dir=data_dir), str(tmp_path / "straight"))

    resumed_dir = str(tmp_path / "resumed")
    loop.train_and_evaluate(_config(3, data_dir=data_dir), resumed_dir)
    assert sorted(os.listdir(os.path.join(resumed_dir, "checkpoints"))) == ["3"]
    resumed = loop.train_and_evaluate(_config(6, data_dir=data_dir), resumed_dir)

    assert int(straight.step) == int(resumed.step) == 6
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
    loop.train_and_evaluate(_config(3, data_dir=data_dir), workdir)
    wider = _config(6, data_dir=data_dir)
    wider.model.g_width = 16
    with pytest.raises(ValueError, match="does not fit this configuration"):
        loop.train_and_evaluate(wider, workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]  # nothing lost


def test_launcher_prints_workdir_and_trains(tmp_path):
    workdir = tmp_path / "cli"
    env = dict(os.environ, JAXGAN_DATA_DIR=str(tmp_path / "tfds"), XLA_FLAGS="")
    result = subprocess.run(
        [sys.executable, "experiments/train.py", "--config=experiments/configs/test.py",
         f"--workdir={workdir}", "--config.train_steps=2", "--config.sample_every_steps=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"writing to workdir {workdir}" in result.stdout
    assert os.path.exists(workdir / "samples" / "ema_000002.png")
    assert os.listdir(workdir / "checkpoints") == ["2"]


def test_bad_batch_size_fails_before_anything_is_written(tmp_path):
    config = _config(2, data_dir=str(tmp_path / "tfds"))
    config.batch_size = jax.device_count() * 2 + 1
    with pytest.raises(ValueError, match="not divisible"):
        loop.train_and_evaluate(config, str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad")
