"""Multi-process training on one machine: 2 processes x 4 CPU devices train as 1 process x 8 devices.

experiments/train.py runs as two processes (`--multihost`, JAX_COORDINATOR_ADDRESS on 127.0.0.1,
JAX_NUM_PROCESSES=2, JAX_PROCESS_ID, each with 4 virtual CPU devices and gloo collectives) sharing one
workdir, through what a cluster does to a job: one process SIGKILLed after a checkpoint and the survivor
killed by the scheduler; a relaunch whose processes get a SIGTERM (preemption notice) at only one of
them; a relaunch that finishes. The final checkpoint is compared with a 1-process x 8-device run of the
same config, and the workdir is checked for files written by process 0 only, once.

The config makes the rows' places in the global batch matter: instance noise is keyed by each example's
global index, so a process that loaded the other process's rows (or the whole batch) would train to a
different state. Without it, permuting the rows of a batch only reorders sums, which the tolerance hides.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import test as test_config
from jaxgan import checkpoint, distributed, orchestrate, runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# As the device-count parity tests (train_step_test.REL_TOL): gloo's cross-process sums and XLA's
# in-process ones add the same numbers in different orders.
REL_TOL = 1e-5
LONG = 100_000  # train_steps of the launches that are interrupted: they never finish on their own
# The smallest DCGAN (8 px) on 64 random 8x8 images; checkpoints every 2 steps,
# samples every 3, metrics every step.
OVERRIDES = {
    "data.source": "npz",
    "data.image_size": 8,
    "batch_size": 16,
    "num_samples": 4,
    "checkpoint_every_steps": 2,
    "sample_every_steps": 3,
    "log_every_steps": 1,
    "regularization.instance_noise": 0.1,
    "regularization.instance_noise_anneal_steps": LONG,
    "progress_bar": False,
}


def _config(npz: str, train_steps: int):
    config = test_config.get_config()
    for name, value in {**OVERRIDES, "data.name": npz, "train_steps": train_steps}.items():
        *parents, leaf = name.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def _flags(npz: str, train_steps: int) -> list[str]:
    return [f"--config.{k}={v}" for k, v in {**OVERRIDES, "data.name": npz, "train_steps": train_steps}.items()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_xla_flags() -> str:
    """This process's XLA flags (conftest.py) with 4 devices instead of 8."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    return " ".join(flags + ["--xla_force_host_platform_device_count=4"])


class Launch:
    """One launch of the job: 2 processes of experiments/train.py on one workdir; logs in files."""

    def __init__(
        self, name: str, tmp_path, workdir: str, npz: str, train_steps: int, children: list, *flags: str
    ) -> None:
        port = _free_port()
        self.name, self.logs = name, [str(tmp_path / f"{name}-{i}") for i in range(2)]
        self.processes = []
        for i in range(2):
            env = dict(
                os.environ,
                XLA_FLAGS=_child_xla_flags(),
                JAX_PLATFORMS="cpu",
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            )
            with open(self.logs[i] + ".out", "w") as out, open(self.logs[i] + ".err", "w") as err:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "experiments/train.py",
                        "--config=experiments/configs/test.py",
                        f"--workdir={workdir}",
                        "--multihost",
                        *_flags(npz, train_steps),
                        *flags,
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=err,
                    text=True,
                )
            self.processes.append(process)
            children.append(process)

    def out(self, i: int) -> str:
        with open(self.logs[i] + ".out") as f:
            return f.read()

    def err(self, i: int) -> str:
        with open(self.logs[i] + ".err") as f:
            return f.read()

    def tails(self) -> str:
        return "\n".join(f"--- {self.name} process {i} stderr:\n{self.err(i)[-2500:]}" for i in range(2))

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            ended = [p.returncode for p in self.processes if p.poll() is not None]
            assert not ended, f"{self.name}: a process ended (rc {ended}) before {what}.\n{self.tails()}"
            assert time.monotonic() < deadline, f"{self.name}: no {what} within {timeout} s.\n{self.tails()}"
            time.sleep(0.1)

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        for p in self.processes:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{self.name}: the processes did not end within {timeout} s.\n{self.tails()}"
                ) from None
        return [p.returncode for p in self.processes]


def _finished_steps(workdir: str) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def _restore(workdir: str, like) -> tuple[int, object]:
    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"), read_only=True) as manager:
        state, step = checkpoint.restore_latest(manager, like)
    return step, jax.device_get(state)


def _rel_errors(a, b) -> dict[str, float]:
    """Per-leaf ||a - b|| / ||b||; integer leaves (steps, keys) must be equal."""
    errors = {}
    for (path, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)):
        name, x, y = jax.tree_util.keystr(path), np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if not np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(x, y, err_msg=name)
            continue
        errors[name] = float(np.linalg.norm((x - y).ravel()) / max(np.linalg.norm(y.ravel()), 1e-30))
    return errors


@pytest.mark.parametrize(
    "env, message",
    [
        ({"JAX_NUM_PROCESSES": "2"}, "JAX_NUM_PROCESSES=2 is set but JAX_PROCESS_ID is not; give every process"),
        ({"JAX_PROCESS_ID": "1"}, "JAX_PROCESS_ID=1 is set but JAX_NUM_PROCESSES is not"),
        ({"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES='two' is not an integer"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, r"JAX_PROCESS_ID=2 must be in 0 \.\. 1"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "JAX_COORDINATOR_ADDRESS is not; set it to host:port"),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1"}, "JAX_COORDINATOR_ADDRESS='10.0.0.1' is not host:port"),
    ],
)
def test_a_half_set_environment_fails_naming_the_variable(env, message):
    with pytest.raises(distributed.MultihostConfigError, match=message):
        distributed.settings_from_env(env)


def test_the_environment_becomes_initialize_arguments():
    assert distributed.settings_from_env({}) == {}  # JAX's cluster detection decides
    assert distributed.settings_from_env({"JAX_COORDINATOR_ADDRESS": "[::1]:99"}) == {"coordinator_address": "[::1]:99"}
    full = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert distributed.settings_from_env(full) == {"coordinator_address": "h:1", "num_processes": 4, "process_id": 3}


def test_train_multihost_reports_a_misconfigured_environment_in_one_line(tmp_path):
    env = dict(os.environ, JAX_NUM_PROCESSES="2")
    env.pop("JAX_PROCESS_ID", None)
    result = subprocess.run(
        [sys.executable, "experiments/train.py", "--multihost", f"--workdir={tmp_path / 'never'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("jaxgan: JAX_NUM_PROCESSES=2 is set but JAX_PROCESS_ID")
    assert not os.path.exists(tmp_path / "never")


def test_preemption_watcher_leaves_sigterm_to_jax_and_counts_calls(monkeypatch):
    """Under jax.distributed, JAX's notifier owns SIGTERM (a Python handler would replace it, and the
    other processes would never hear of the notice), and the sync point is asked per call: JAX stops
    at the call after the fastest process's counter, which a K-step call's step number could skip."""
    from jax._src import distributed

    asked = []

    class SyncManager:
        def reached_sync_point(self, counter):
            asked.append(counter)
            return counter == 3

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(distributed.global_state, "client", object())
    monkeypatch.setattr(distributed.global_state, "preemption_sync_manager", SyncManager())
    before = signal.getsignal(signal.SIGTERM)
    with runner.PreemptionWatcher() as watcher:
        assert signal.getsignal(signal.SIGTERM) is before
        assert [watcher.should_stop(step) for step in (1, 5, 6)] == [False, False, True]
    assert asked == [1, 2, 3]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failure_of_process_0_ends_both_and_a_restart_from_scratch_waits_for_its_move(tmp_path):
    """1. Process 0 alone takes the workdir lock: held by another run, it fails there while process 1 goes
    on to its first collective; without leaving at once, both would wait 5 minutes in JAX's barriers.
    2. --restart_from_scratch over a previous run whose checkpoint is damaged: process 0 moves the old
    outputs aside while process 1 waits for it (else it would find and try to restore that checkpoint)."""
    rng = np.random.default_rng(0)
    npz = str(tmp_path / "images.npz")
    np.savez(npz, images=rng.integers(0, 256, size=(32, 8, 8, 1), dtype=np.uint8))
    workdir = str(tmp_path / "run")
    os.makedirs(os.path.join(workdir, "checkpoints", "2", "default"))
    for name in ("checkpoints/2/default/_METADATA", "checkpoints/2/_CHECKPOINT_METADATA", "metrics.jsonl"):
        with open(os.path.join(workdir, name), "w") as f:
            f.write("an older run's damaged file")
    code = f"import time; from jaxgan.lock import WorkdirLock\nwith WorkdirLock({workdir!r}):\n    print('held', flush=True); time.sleep(600)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    children = [holder]
    try:
        assert holder.stdout.readline().strip() == "held"
        locked = Launch("locked", tmp_path, workdir, npz, 4, children)
        returncodes = locked.wait(120)
        assert returncodes[0] == 1 and returncodes[1] != 0, (returncodes, locked.tails())
        assert f"PID {holder.pid}" in locked.err(0) and "leaving the multi-process run now" in locked.err(0)
        holder.kill()
        holder.wait(timeout=30)
        restart = Launch("restart", tmp_path, workdir, npz, 2, children, "--restart_from_scratch")
        assert restart.wait(180) == [0, 0], restart.tails()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    (moved,) = glob.glob(os.path.join(workdir, "before-restart-*"))
    assert sorted(os.listdir(moved)) == ["checkpoints", "metrics.jsonl"] and os.listdir(
        os.path.join(moved, "checkpoints")
    ) == ["2"]
    assert _finished_steps(workdir) == [2]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]


def test_two_processes_match_one_and_survive_sigkill_and_sigterm(tmp_path):
    rng = np.random.default_rng(0)
    npz = str(tmp_path / "images.npz")
    np.savez(npz, images=rng.integers(0, 256, size=(64, 8, 8, 1), dtype=np.uint8))
    workdir = str(tmp_path / "two")
    children: list[subprocess.Popen] = []
    launches: list[Launch] = []
    try:
        # 1. SIGKILL one process after a checkpoint; the survivor is stuck in a collective, and the
        #    scheduler kills it too.
        first = Launch("kill", tmp_path, workdir, npz, LONG, children)
        launches.append(first)
        first.wait_until(lambda: _finished_steps(workdir), 300, "checkpoint")
        first.processes[1].send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            first.processes[0].wait(timeout=1)
        first.processes[0].send_signal(signal.SIGKILL)
        returncodes = first.wait(60)
        assert returncodes[1] == -signal.SIGKILL and returncodes[0] != 0, (returncodes, first.tails())
        killed_at = _finished_steps(workdir)[-1]

        # 2. Relaunch: both processes resume from it; SIGTERM reaches process 1 only, once the run has
        #    saved a newer checkpoint. Both must save the same step and exit 143.
        second = Launch("sigterm", tmp_path, workdir, npz, LONG, children)
        launches.append(second)
        second.wait_until(lambda: _finished_steps(workdir)[-1] > killed_at, 300, "checkpoint after the resume")
        second.processes[1].send_signal(signal.SIGTERM)
        assert second.wait(120) == [143, 143], second.tails()
        for i in range(2):
            assert f"Resumed from the checkpoint at step {killed_at} " in second.err(i), second.tails()
        saved = [re.findall(r"checkpoint saved at step (\d+)", second.out(i)) for i in range(2)]
        assert saved[0] == saved[1] and len(saved[0]) == 1, saved
        stopped_at = int(saved[0][0])
        assert stopped_at > killed_at + 2 and _finished_steps(workdir)[-1] == stopped_at

        # 3. Relaunch to the end.
        end = stopped_at + 2
        third = Launch("finish", tmp_path, workdir, npz, end, children)
        launches.append(third)
        assert third.wait(300) == [0, 0], third.tails()
        for i in range(2):
            assert f"Resumed from the checkpoint at step {stopped_at} " in third.err(i), third.tails()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    # The same config straight through on 1 process x 8 devices (this one: conftest.py).
    reference_dir = str(tmp_path / "one")
    reference = jax.device_get(orchestrate.train_and_evaluate(_config(npz, end), reference_dir))
    step_one, one = _restore(reference_dir, reference)
    step_two, two = _restore(workdir, reference)
    assert step_one == step_two == end
    errors = _rel_errors(two, one)
    worst = max(errors, key=errors.get)
    assert all(e <= REL_TOL for e in errors.values()), f"2x4 vs 1x8: worst relative error {errors[worst]} at {worst}"
    assert _rel_errors(one, reference) == {k: 0.0 for k in errors}  # the reference's checkpoint is its state

    # Written by process 0 only, once: one metrics row per step across the resumes, one events file per
    # launch named by process 0's PID, the sample grids of the schedule, the run records.
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, end + 1))
    events = sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*")))
    writers = sorted(int(os.path.basename(p).rsplit(".", 3)[1]) for p in events)
    assert writers == sorted(launch.processes[0].pid for launch in launches), events
    grids = sorted(os.listdir(os.path.join(workdir, "samples")))
    sampled = [s for s in range(1, end + 1) if s % 3 == 0 or s == end]
    assert grids == sorted(f"{n}_{s:06d}.png" for n in ("ema", "g") for s in sampled)
    with open(os.path.join(workdir, "version.json")) as f:
        version = json.load(f)
    assert (version["processes"], version["devices"]) == (2, 8)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["train_steps"] == end
    kept = glob.glob(os.path.join(workdir, "config.*.json"))  # the interrupted launches' config (train_steps)
    assert len(kept) == 1, kept
    others = {n for n in os.listdir(workdir) if not re.fullmatch(r"version\.[-\d]+\.json", n)}  # a changed checkout
    assert others == {"checkpoints", "samples", "metrics.jsonl", "config.json", "version.json", ".jaxgan.lock"} | {
        os.path.basename(p) for p in events + kept
    }
