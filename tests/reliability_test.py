"""No run, checkpoint or config is lost or silently wrong: faults and bad input, each reproduced.

- a checkpoint that cannot be READ stops the run (and sampling) naming the file; nothing is moved;
- a rejected relaunch writes nothing into the workdir;
- altered bytes inside a saved array are caught by the checksums and the checkpoint is moved aside;
- a run never restarts from step 0 over damaged checkpoints unless told to, and then moves them aside;
- one run per workdir (a lock), stale locks taken over, unwritable checkpoints fail at once;
- non-finite values are reported at their first step, before any sample of them is written;
- metrics.jsonl keeps one row per step across a resume; bad learning rates fail before compiling.

Permission faults are real: as root, the child process drops the capabilities that bypass file
permissions (`setpriv`), as in the issue's reproduction.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgan
from experiments.configs import test as test_config
from jaxgan import checkpoint, loop, runner
from jaxgan.config import Schedule
from jaxgan.lock import WorkdirLock, WorkdirLockedError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROP_CAPS = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search,-fowner",
    "--bounding-set=-dac_override,-dac_read_search,-fowner",
]


def _config(steps, data_dir, **overrides):
    config = test_config.get_config()
    config.train_steps = steps
    config.data.data_dir = str(data_dir)
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def _unprivileged(cmd: list[str]) -> list[str]:
    """`cmd` without the capabilities that let root ignore file permissions (nothing to drop otherwise)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return DROP_CAPS + cmd


def _cli(args: list[str], data_dir) -> subprocess.CompletedProcess:
    """`python *args` in the repository, without root's permission overrides."""
    env = dict(os.environ, JAXGAN_DATA_DIR=str(data_dir))
    return subprocess.run(
        _unprivileged([sys.executable, *args]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _train_cli(workdir, data_dir, *flags) -> subprocess.CompletedProcess:
    """experiments/train.py on the test config."""
    return _cli(
        ["experiments/train.py", "--config=experiments/configs/test.py", f"--workdir={workdir}", *flags], data_dir
    )


def _snapshot(directory) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under `directory`."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            out[os.path.relpath(path, directory)] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return out


def _leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(state))]


def _steps(workdir):
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 6-step run (checkpoints 3 and 6) and its final state; tests copy it before changing it."""
    base = tmp_path_factory.mktemp("trained")
    data_dir = base / "tfds"
    state = loop.train_and_evaluate(_config(6, data_dir), str(base / "run"))
    return base / "run", data_dir, jax.device_get(state)


def _copy(trained, tmp_path) -> str:
    workdir = tmp_path / "run"
    shutil.copytree(trained[0], workdir, symlinks=True)
    return str(workdir)


# --- 1. unreadable is not damaged ----------------------------------------------------------------


def test_unreadable_checkpoint_stops_training_and_sampling_naming_the_file(trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    files = [p for p in glob.glob(os.path.join(workdir, "checkpoints", "6", "**"), recursive=True) if os.path.isfile(p)]
    for path in files:
        os.chmod(path, 0)
    before = _snapshot(workdir)
    train = _train_cli(workdir, trained[1], "--config.train_steps=9")
    assert train.returncode == 1, train.stderr[-3000:]
    assert "Cannot read the checkpoint at step 6" in train.stderr and "Permission denied" in train.stderr
    assert any(path in train.stderr for path in files)  # names the file
    sample = _cli(["tools/sample.py", f"--workdir={workdir}", f"--out={tmp_path / 's.npz'}", "--num=4"], trained[1])
    assert sample.returncode == 1 and "Cannot read the checkpoint at step 6" in sample.stderr, sample.stderr[-3000:]
    assert _snapshot(workdir) == before  # nothing moved, renamed or written: not even config.json
    assert not os.path.exists(tmp_path / "s.npz")


def test_readers_skip_a_damaged_checkpoint_without_moving_it(trained, tmp_path):
    from jaxgan import workdir as workdir_lib

    workdir = _copy(trained, tmp_path)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "6", "default", "d", "*")):
        with open(path, "r+b") as f:
            f.truncate(16)
    before = _snapshot(workdir)
    assert workdir_lib.load_generator(workdir).step == 3
    assert _snapshot(workdir) == before


# --- 2. a rejected relaunch writes nothing --------------------------------------------------------


@pytest.mark.parametrize("change", ["wider", "missing_data"])
def test_rejected_relaunch_leaves_the_workdir_untouched(trained, tmp_path, change):
    workdir = _copy(trained, tmp_path)
    config = _config(9, trained[1])
    if change == "wider":
        config.model.g_width = 16
        error, match = ValueError, "does not fit this configuration"
    else:
        config.data.source, config.data.name = "npz", str(tmp_path / "typo.npz")
        error, match = FileNotFoundError, "typo.npz"
    before = _snapshot(workdir)
    with pytest.raises(error, match=match):
        loop.train_and_evaluate(config, workdir)
    assert _snapshot(workdir) == before  # config.json not rotated, no lock, no events


# --- 3. checksums catch altered bytes --------------------------------------------------------------


def _stored_values(base: str) -> list[tuple[str, int, int]]:
    """(file, offset, length) of every array chunk stored out of line in the OCDBT database at `base`,
    read from the database's own B-tree (tensorstore.ocdbt.dump), not through Orbax or jaxgan."""
    import tensorstore as ts

    kv = ts.KvStore.open(f"file://{base}/").result()
    pending = [version["root"]["location"] for version in ts.ocdbt.dump(kv).result()["versions"][-1:]]
    values = []
    while pending:
        for entry in ts.ocdbt.dump(kv, pending.pop()).result()["entries"]:
            if "node" in entry:  # an interior node: its children
                pending.append(entry["node"])
            elif "indirect_value" in entry:  # value:<subdir>:<file>:<offset>:<length>
                _, subdir, name, offset, length = entry["indirect_value"].split(":")
                values.append((os.path.join(base, subdir, name), int(offset), int(length)))
    return values


def _alter_chunk(workdir, step):
    """Overwrites the middle half of the largest stored array chunk of checkpoint `step` with other bytes.
    The chunk is located through the database's B-tree: its data files also hold bytes no live key points
    to, and which file holds what (and how arrays are chunked) varies from one save to the next."""
    path, offset, length = max(
        _stored_values(os.path.join(workdir, "checkpoints", str(step), "default")), key=lambda v: v[2]
    )
    assert length >= 1024, length  # smaller values are stored inline in the B-tree
    start = offset + length // 4
    with open(path, "r+b") as f:
        f.seek(start)
        data = f.read(length // 2)
        f.seek(start)
        f.write(bytes(b ^ 0x5A for b in data))
    return path


def test_checksums_find_altered_bytes_and_the_run_falls_back(trained, tmp_path, capsys):
    workdir = _copy(trained, tmp_path)
    _alter_chunk(workdir, 6)
    resumed = loop.train_and_evaluate(_config(6, trained[1]), workdir)
    out = capsys.readouterr().out
    assert "checkpoint 6 is damaged" in out
    assert len([n for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.startswith("6.damaged-")]) == 1
    assert _steps(workdir) == [3, 6]  # retrained from 3
    for a, b in zip(_leaves(trained[2]), _leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_checksum_mismatch_is_found_even_where_the_bytes_parse(tmp_path):
    """The checksum alone decides: Orbax restores the altered array (finite, wrong), the checksum refuses it."""
    state = {"w": np.arange(4096, dtype=np.float32), "b": np.ones(3, np.float32)}
    with checkpoint.checkpoint_manager(str(tmp_path / "c"), async_save=False) as manager:
        checkpoint.save(manager, 1, state)
        checkpoint.save(manager, 2, {"w": state["w"] + 1, "b": state["b"]})
    # As if the saved w of step 2 had other bytes than those saved: record the checksum of other values.
    meta_path = tmp_path / "c" / "2" / "_CHECKPOINT_METADATA"
    meta = json.loads(meta_path.read_text())
    meta["custom_metadata"][checkpoint.CHECKSUMS_KEY]["w"] = checkpoint.array_checksums({"w": state["w"]})["w"]
    meta_path.write_text(json.dumps(meta))
    with checkpoint.checkpoint_manager(str(tmp_path / "c"), read_only=True) as manager:
        restored, step = checkpoint.restore_latest(manager, state)
    assert step == 1  # step 2 restored fine as numbers, yet its w is not what was saved
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert os.path.isdir(tmp_path / "c" / "2")  # a reader moves nothing


def test_array_checksums_are_crc32_of_the_bytes():
    import zlib

    x = np.arange(10, dtype=np.float32)
    assert checkpoint.array_checksums({"a": {"x": x}}) == {"a.x": f"{zlib.crc32(x.tobytes()):08x}"}


# --- never start over on its own ------------------------------------------------------------------


def test_all_checkpoints_damaged_refuses_to_restart_until_told(trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    for step in (3, 6):
        for path in glob.glob(os.path.join(workdir, "checkpoints", str(step), "default", "d", "*")):
            with open(path, "r+b") as f:
                f.truncate(16)
    with pytest.raises(checkpoint.NoUsableCheckpointError, match="--restart_from_scratch"):
        loop.train_and_evaluate(_config(6, trained[1]), workdir)
    moved = checkpoint.moved_aside(os.path.join(workdir, "checkpoints"))
    assert len(moved) == 2 and _steps(workdir) == []  # both kept, aside
    samples_before = sorted(os.listdir(os.path.join(workdir, "samples")))

    state = loop.train_and_evaluate(_config(6, trained[1]), workdir, restart_from_scratch=True)
    for a, b in zip(_leaves(trained[2]), _leaves(state)):
        np.testing.assert_array_equal(a, b)  # a fresh run from step 0
    (aside,) = glob.glob(os.path.join(workdir, "before-restart-*"))
    assert sorted(os.listdir(os.path.join(aside, "checkpoints"))) == moved  # nothing deleted
    assert sorted(os.listdir(os.path.join(aside, "samples"))) == samples_before
    assert os.path.exists(os.path.join(aside, "metrics.jsonl"))


# --- 5. one run per workdir; saves that cannot happen fail at once ----------------------------------


def _hold_lock(workdir) -> subprocess.Popen:
    code = (
        "import sys, time; from jaxgan.lock import WorkdirLock\n"
        f"with WorkdirLock({str(workdir)!r}):\n    print('held', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_on_a_workdir_fails_at_once_naming_the_holder(trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    holder = _hold_lock(workdir)
    try:
        before = _snapshot(workdir)
        with pytest.raises(WorkdirLockedError, match=f"PID {holder.pid} on host "):
            loop.train_and_evaluate(_config(9, trained[1]), workdir)
        assert _snapshot(workdir) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over_and_named(tmp_path, capsys):
    holder = _hold_lock(tmp_path)
    holder.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops the flock, the file stays
    holder.wait()
    with WorkdirLock(str(tmp_path)) as lock:
        assert lock.previous["pid"] == holder.pid
    assert f"stale lock from a run that ended without releasing it (PID {holder.pid}" in capsys.readouterr().err
    with WorkdirLock(str(tmp_path)) as lock:  # a clean release leaves nothing stale
        assert lock.previous is None


def test_unwritable_checkpoints_fail_at_once_with_the_os_error(trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    os.chmod(os.path.join(workdir, "checkpoints"), 0o555)
    start = time.monotonic()
    result = _train_cli(workdir, trained[1], "--config.train_steps=9")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Cannot write checkpoints into" in result.stderr and "Permission denied" in result.stderr
    assert time.monotonic() - start < 200  # the old failure waited out a 300 s timeout


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_a_workdir_that_cannot_be_one_fails_in_one_line_before_compiling(tmp_path, kind):
    workdir = tmp_path / "w"
    if kind == "file":
        workdir.write_text("not a directory")
    else:
        workdir.mkdir()
        os.chmod(workdir, 0o555)
    result = _train_cli(workdir, tmp_path / "tfds")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("jaxgan: --workdir=") and ("is a file" in last if kind == "file" else "not writable" in last)
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "tfds")  # failed before the data was even built


# --- 7. non-finite values, duplicates, bad settings --------------------------------------------------


@flax.struct.dataclass
class _Toy:
    w: jax.Array
    step: jax.Array


def _toy_run(workdir, *, bad_step, steps=6, log_every=4, sample_every=1, steps_per_call=1):
    """run_training on a toy state whose loss turns NaN at `bad_step` (and w with it)."""

    def train(state, batch):
        step = state.step + 1
        loss = jnp.where(step >= bad_step, jnp.nan, 1.0)
        return _Toy(w=state.w + loss, step=step), {"d_loss": loss}

    def train_k(state, batch):
        losses = []
        for _ in range(steps_per_call):
            state, m = train(state, batch)
            losses.append(m["d_loss"])
        return state, {"d_loss": jnp.stack(losses)}

    written = []

    def samples(step, state):
        written.append(step)
        return {"g": np.zeros((4, 4, 1), np.uint8)}

    schedule = Schedule(
        train_steps=steps,
        log_every=log_every,
        sample_every=sample_every,
        checkpoint_every=100,
        eval_every=0,
        images_per_step=1,
    )
    mesh = jaxgan.make_mesh(jax.devices()[:1])
    fns = {1: jax.jit(train)} | ({steps_per_call: jax.jit(train_k)} if steps_per_call > 1 else {})
    runner.run_training(
        workdir=str(workdir),
        init_state=_Toy(w=jnp.zeros(2), step=jnp.int32(0)),
        train_fns=fns,
        batches=lambda start, calls: iter([None] * len(calls)),
        schedule=schedule,
        mesh=mesh,
        hooks=runner.RunHooks(samples=samples),
        progress_bar=False,
    )
    return written


@pytest.mark.parametrize("steps_per_call,bad_step", [(1, 1), (1, 3), (4, 2)])
def test_non_finite_is_named_at_its_first_step_and_nothing_of_it_is_written(tmp_path, steps_per_call, bad_step):
    sample_every = 1 if steps_per_call == 1 else 4
    with pytest.raises(FloatingPointError, match=rf"first at step {bad_step}\. Last good checkpoint: none"):
        _toy_run(tmp_path / "w", bad_step=bad_step, sample_every=sample_every, steps_per_call=steps_per_call)
    pngs = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "w" / "samples" / "*.png")))
    assert pngs == [f"g_{s:06d}.png" for s in range(1, bad_step) if s % sample_every == 0]  # finite states only
    assert not checkpoint.moved_aside(str(tmp_path / "w" / "checkpoints")) and _steps(tmp_path / "w") == []


def test_bad_learning_rates_fail_in_validation(tmp_path):
    for value in (0.0, -1e-4, float("inf"), float("nan")):
        config = _config(2, tmp_path / "tfds")
        config.d_optimizer.learning_rate = value
        with pytest.raises(ValueError, match=r"config\.d_optimizer\.learning_rate=.* must be a finite number > 0"):
            loop.train_and_evaluate(config, str(tmp_path / "w"))
    config = _config(2, tmp_path / "tfds")
    config.g_optimizer.b2 = 1.0
    with pytest.raises(ValueError, match=r"config\.g_optimizer\.b2=1\.0 must lie in \[0, 1\)"):
        loop.train_and_evaluate(config, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w") and not os.path.exists(tmp_path / "tfds")


def test_channels_other_than_1_or_3_fail_in_validation(tmp_path):
    config = _config(2, tmp_path / "tfds")
    config.data.channels = 4
    with pytest.raises(ValueError, match=r"config\.data\.channels=4: .* set --config\.data\.channels=1 or 3"):
        loop.train_and_evaluate(config, str(tmp_path / "w"))


def test_metrics_jsonl_drops_the_rows_a_resume_logs_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 2, "train/d_loss": 1.0},
        {"step": 4, "train/d_loss": 0.9},
        {"step": 4, "eval/fid": 9.0},
        {"step": 6, "train/d_loss": 0.8},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 8, "train/d_lo')  # a row cut by a kill
    assert runner.drop_jsonl_rows_after(str(path), 4) == 2
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:3]


def test_translate_on_a_gan_zoo_workdir_says_which_tool(trained):
    from jaxgan.translation import apply

    with pytest.raises(ValueError, match=r"is a GAN-zoo run \(model.name='dcgan'.*tools/sample.py"):
        apply.load_translator(str(trained[0]))


_MID_RUN = """
import os, sys
import jax, jax.numpy as jnp, numpy as np
import jaxgan
from jaxgan import runner
from jaxgan.config import Schedule
from tests.reliability_test import _Toy

workdir = sys.argv[1]
def train(state, batch):
    return _Toy(w=state.w + 1, step=state.step + 1), {"d_loss": jnp.float32(1.0)}
def samples(step, state):
    if step == 3:  # checkpoints/ turns read-only between two saves
        os.chmod(os.path.join(workdir, "checkpoints"), 0o555)
    return {"g": np.zeros((4, 4, 1), np.uint8)}
schedule = Schedule(train_steps=8, log_every=1, sample_every=1, checkpoint_every=2, eval_every=0, images_per_step=1)
runner.run_training(workdir=workdir, init_state=_Toy(w=jnp.zeros(2), step=jnp.int32(0)), train_fns={1: jax.jit(train)},
                    batches=lambda s, c: iter([None] * len(c)), schedule=schedule,
                    mesh=jaxgan.make_mesh(jax.devices()[:1]), hooks=runner.RunHooks(samples=samples), progress_bar=False)
"""


def test_a_save_that_fails_mid_run_stops_promptly_with_the_os_error(tmp_path):
    script = tmp_path / "mid_run.py"
    script.write_text(_MID_RUN)
    start = time.monotonic()
    result = subprocess.run(
        _unprivileged([sys.executable, str(script), str(tmp_path / "w")]),
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "PermissionError: [Errno 13] Permission denied" in result.stderr, result.stderr[-3000:]
    assert time.monotonic() - start < 200  # not a wait for a save timeout
    assert not os.path.exists(tmp_path / "w" / "samples" / "g_000008.png")  # it stopped, not trained on
