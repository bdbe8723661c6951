"""`run_training`: the training loop and the chores every run shares, whatever it trains.

The orchestrators of the GAN zoo (`jaxgan.orchestrate`), image translation
(`jaxgan.translation.orchestrate`) and video (`jaxgan.video.orchestrate`), and
any research loop, hand it an initial state, compiled train functions and a
batch source; it restores the latest checkpoint, runs the calls, and does the
periodic work: metrics to CLU writers (TensorBoard + console) and
`metrics.jsonl`, sample pictures, evaluations, Orbax checkpoints, a progress
bar, SIGTERM (preemption) saves, and the non-finite guard.

Nothing here reads a config: the orchestrators resolve their configs into the
explicit arguments below (a `jaxgan.run_config.Schedule` for every period).

Safety:
- Nothing is written into the workdir before the checkpoint there is known to
  be readable and to fit the state; the first write is the workdir lock (one run
  per workdir, `jaxgan.lock`); a run never restarts from step 0 over checkpoints
  it cannot use unless told to (`restart_from_scratch` moves the old run aside).
- Metrics leave the devices only at a host sync (log, samples, evaluation,
  save); there every step's metrics since the last sync are checked, so a
  non-finite value stops the run naming the FIRST step that had it, before any
  sample, evaluation or checkpoint of that state is written.
- SIGTERM saves the current step and returns early; relaunching resumes exactly,
  because batch s is a pure function of (seed, s) in every caller and every
  random draw of step s of (rng, s). Rows of `metrics.jsonl` past the resumed
  step are dropped on resume, so it keeps one row per step: the re-run's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions
from jax.sharding import Mesh
from PIL import Image

import jaxgan
from jaxgan import checkpoint
from jaxgan.run_config import Schedule
from jaxgan.lock import WorkdirLock
from jaxgan.train import replicate

TrainFn = Callable[[Any, Any], tuple[Any, Mapping[str, jax.Array]]]


# --- run records ---------------------------------------------------------------------------------------------


def code_version() -> dict[str, Any]:
    """What produced a run: jaxgan's version and git commit, library versions, machine."""
    info: dict[str, Any] = {"jaxgan": jaxgan.__version__, "python": platform.python_version()}
    for module in ("jax", "flax", "optax", "orbax.checkpoint"):
        try:
            info[module] = __import__(module, fromlist=["__version__"]).__version__
        except (ImportError, AttributeError):
            pass
    source = os.path.dirname(os.path.abspath(jaxgan.__file__))
    try:
        git = lambda *args: subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        info["git_commit"] = git("rev-parse", "HEAD")
        info["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None  # an installed wheel, not a checkout
    info["backend"] = jax.default_backend()
    info["devices"] = jax.device_count()
    info["processes"] = jax.process_count()
    return info


def _write_json_keeping_history(path: str, content: dict) -> None:
    """Writes `content` to `path`; an existing different file is kept as `<name>.<time>.json`."""
    text = json.dumps(content, indent=2, sort_keys=True)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
        stem, ext = os.path.splitext(path)
        kept, n = f"{stem}.{time.strftime('%Y%m%d-%H%M%S')}{ext}", 1
        while os.path.exists(kept):
            kept, n = f"{stem}.{time.strftime('%Y%m%d-%H%M%S')}-{n}{ext}", n + 1
        os.replace(path, kept)
    with open(path, "w") as f:
        f.write(text)


def write_run_info(config: Any, workdir: str) -> None:
    """WORKDIR/config.json (the resolved config: a ConfigDict or a JSON-able dict) and
    WORKDIR/version.json (the code).

    A relaunch with a different config or code keeps the previous files, renamed
    with a timestamp, so a workdir records every configuration it ran with.
    """
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    resolved = json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else config
    _write_json_keeping_history(os.path.join(workdir, "config.json"), resolved)
    logging.info("Command line: %s", " ".join(sys.argv))
    _write_json_keeping_history(os.path.join(workdir, "version.json"), code_version())


def save_pictures(
    writer: metric_writers.MetricWriter, workdir: str, step: int, pictures: Mapping[str, np.ndarray]
) -> None:
    """uint8 pictures [H, W, C] as WORKDIR/samples/<name>_<step>.png and as TensorBoard images."""
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        for name, picture in pictures.items():
            Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(
                os.path.join(workdir, "samples", f"{name}_{step:06d}.png")
            )
    writer.write_images(step, {f"samples/{name}": picture[None] for name, picture in pictures.items()})


# --- safety --------------------------------------------------------------------------------------------------


@jax.jit
def _tree_all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def check_finite(
    step: int,
    metrics: Mapping[str, float],
    state: Any,
    last_checkpoint: int | None,
    *,
    first_bad_step: int | None = None,
) -> None:
    """Raises FloatingPointError naming the step and the last good checkpoint if a metric
    or any floating-point leaf of the state (params, optimizer, EMA) is NaN or Inf.

    first_bad_step: the first step whose metrics were non-finite, when known (`PendingMetrics`)."""
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad or not bool(_tree_all_finite(state)):
        what = f"metrics {bad}" if bad else "parameters or optimizer state"
        where = f"first at step {first_bad_step}" if first_bad_step is not None else f"at step {step}"
        raise FloatingPointError(
            f"Non-finite {what} {where}. Last good checkpoint: "
            f"{'none' if last_checkpoint is None else f'step {last_checkpoint}'}; this state was not saved, and no "
            "samples or evaluations of it were written. Lower the learning rates, add a regularizer, or check the data."
        )


class PendingMetrics:
    """The metrics of the calls since the last host sync, kept on the devices (no sync per step).

    At a sync, `check` fetches them all and raises, naming the first non-finite step, before anything
    of the current state is written."""

    def __init__(self) -> None:
        self._calls: list[tuple[int, int, Mapping[str, Any]]] = []  # (steps done before the call, size, metrics)

    def add(self, done_before: int, size: int, metrics: Mapping[str, Any]) -> None:
        self._calls.append((done_before, size, metrics))

    def check(self, done: int, state: Any, last_checkpoint: int | None) -> dict[str, float]:
        """The last step's metrics as host floats, after checking every pending step and the state."""
        calls, self._calls = jax.device_get(self._calls), []
        for before, size, metrics in calls:
            for i in range(size):
                values = {k: float(np.asarray(v, np.float64).reshape(size)[i]) for k, v in metrics.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    check_finite(done, values, state, last_checkpoint, first_bad_step=before + i + 1)
        values = last_step_metrics(calls[-1][2], calls[-1][1]) if calls else {}
        check_finite(done, values, state, last_checkpoint)
        return values


def last_step_metrics(metrics: Mapping[str, Any], size: int) -> dict[str, float]:
    """Host floats of the last step's metrics of a call (a K-step call stacks them [K]).

    A non-finite value in any of the call's steps is kept, so `check_finite` sees it."""
    values = {}
    for k, v in metrics.items():
        v = np.asarray(v, np.float64).reshape(size)
        values[k] = float(v[-1]) if np.isfinite(v).all() else float(v[~np.isfinite(v)][0])
    return values


def _jax_preemption_service() -> bool:
    """Whether `jax.distributed`'s preemption sync manager runs in this multi-process run. It then owns
    SIGTERM: `jax.distributed.initialize` installed its notifier, which tells every process."""
    if jax.process_count() == 1:
        return False
    try:
        from jax._src import distributed  # the manager has no public accessor
    except ImportError:
        return False
    state = getattr(distributed, "global_state", None)
    return getattr(state, "client", None) is not None and getattr(state, "preemption_sync_manager", None) is not None


class PreemptionWatcher:
    """Records SIGTERM (a preemption notice) instead of dying, so the loop can save first.

    With several processes, SIGTERM may reach only some of them, and all must save the same step: there
    JAX's preemption service (started by `jax.distributed.initialize`) receives the signal and the
    processes agree through `multihost_utils.reached_preemption_sync_point`. No Python handler is
    installed then: it would replace JAX's notifier, and a SIGTERM would go unseen by the other processes.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous = None
        self._jax_service = False
        self._calls = 0

    def __enter__(self) -> "PreemptionWatcher":
        self._jax_service = _jax_preemption_service()
        if not self._jax_service and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._event.set())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def should_stop(self, step: int) -> bool:
        """Whether to save and stop after the call that ended at `step`; call it after every call, on
        every process."""
        del step  # JAX's sync point is the next counter after the fastest process's: count calls, one by one
        self._calls += 1
        if self._jax_service:
            from jax.experimental import multihost_utils

            return bool(multihost_utils.reached_preemption_sync_point(self._calls))
        return self._event.is_set()


# --- the run -------------------------------------------------------------------------------------------------


def _progress_bar(enabled: bool, total: int, start: int):
    if not (enabled and jax.process_index() == 0):
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=start,
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        file=sys.stderr,
    )


def _append_jsonl(path: str, record: Mapping[str, Any]) -> None:
    if jax.process_index() == 0:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def drop_jsonl_rows_after(path: str, step: int) -> int:
    """Removes the rows of a metrics.jsonl logged after `step` (a resumed run logs them again, so each
    step keeps one row: the re-run's). Rewrites the file atomically; returns how many rows went."""
    if jax.process_index() != 0 or not os.path.exists(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines()
    keep = []
    for line in lines:
        try:
            row_step = json.loads(line).get("step")
        except ValueError:  # a row cut short by a kill: dropped with the rows after the resume point
            continue
        if not isinstance(row_step, int) or row_step <= step:
            keep.append(line)
    if len(keep) == len(lines):
        return 0
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
    return len(lines) - len(keep)


def check_workdir(workdir: str) -> str:
    """The absolute workdir, or a one-line error when it cannot be one (a file; not writable).

    Call it first, before building or compiling anything: it writes nothing."""
    workdir = os.path.abspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(
            f"--workdir={workdir} is a file, not a directory; pass a new directory or a previous run's workdir."
        )
    existing = workdir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == workdir else f"cannot be created: {existing} is"
        raise PermissionError(
            f"--workdir={workdir} {what} not writable by this user; pass a directory you can write to."
        )
    return workdir


def _check_writable(directory: str) -> None:
    """Creates and removes a file in `directory`: a save that would fail fails now, with the OS error."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".jaxgan-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"Cannot write checkpoints into {directory}: {e.strerror or e}; fix its permissions "
            "or free space, or use another --workdir."
        ) from e


RUN_OUTPUTS = ("checkpoints", "samples", "metrics.jsonl", "events.out.tfevents.*")


def move_run_aside(workdir: str) -> str | None:
    """Moves a previous run's outputs (checkpoints, samples, metrics, TensorBoard events) into
    WORKDIR/before-restart-<time>/ (never deletes them); returns that folder, or None if there was none."""
    found = [p for pattern in RUN_OUTPUTS for p in sorted(glob.glob(os.path.join(workdir, pattern)))]
    if not found or jax.process_index() != 0:
        return None
    target = os.path.join(workdir, f"before-restart-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while os.path.exists(target):
        target, n = f"{target.rsplit('.', 1)[0]}.{n}", n + 1
    os.makedirs(target)
    for path in found:
        os.rename(path, os.path.join(target, os.path.basename(path)))
    return target


@contextlib.contextmanager
def _workdir_lock(workdir: str):
    if jax.process_index() != 0:  # the run is one lock holder: process 0
        yield None
        return
    os.makedirs(workdir, exist_ok=True)
    with WorkdirLock(workdir) as lock:
        yield lock


@dataclasses.dataclass(frozen=True)
class RunHooks:
    """What a run does besides training; every hook takes the step and the (replicated) state.

    overview: name -> the params to log as a CLU parameter table when the run starts fresh.
    samples: returns uint8 pictures {name: [H, W, C]} for `samples/` and TensorBoard.
    evaluate: returns scalars written as `eval/<name>`.
    sample_at_start: also draw samples before the first step of a fresh run.
    prepare: writes the caller's own files into the workdir, once the run holds it (its lock).
    """

    overview: Mapping[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    samples: Callable[[int, Any], Mapping[str, np.ndarray]] | None = None
    evaluate: Callable[[int, Any], Mapping[str, float]] | None = None
    sample_at_start: bool = False
    postfix: Sequence[str] = ("d_loss", "g_loss")
    prepare: Callable[[], None] | None = None


def run_training(
    *,
    workdir: str,
    init_state: Any,
    train_fns: Mapping[int, TrainFn],
    batches: Callable[[int, Sequence[int]], Iterator[Any]],
    schedule: Schedule,
    mesh: Mesh,
    keep_checkpoints: int = 3,
    hooks: RunHooks = RunHooks(),
    stop_at: int | None = None,
    progress_bar: bool = True,
    run_info: Any = None,
    restart_from_scratch: bool = False,
) -> Any:
    """Restores the latest checkpoint in WORKDIR/checkpoints (else starts from `init_state`) and
    trains to `schedule.train_steps`, or to `stop_at` (a checkpointed early stop, as a preemption).

    train_fns: steps per call -> compiled `(state, batch) -> (state, metrics)` on `mesh`
      (metrics stacked [K] for K steps per call); the largest key is used between periodic actions.
    batches(start, calls): the device-placed batches of those calls, from step `start` on.
    run_info: the resolved config, written as WORKDIR/config.json (with version.json) once the
      checkpoint there is known to fit; nothing is written before.
    restart_from_scratch: start at step 0 even though WORKDIR holds a previous run, after moving its
      outputs into WORKDIR/before-restart-<time>/. Without it, a workdir whose checkpoints all turn
      out damaged stops with NoUsableCheckpointError instead of starting over.
    Returns the final state (below the end only when stopped by SIGTERM or `stop_at`).
    """
    workdir = check_workdir(workdir)
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    if not restart_from_scratch:
        checkpoint.check_fits(checkpoint_dir, init_state)  # unreadable or not fitting: stop, nothing written
    end = schedule.train_steps if stop_at is None else min(schedule.train_steps, stop_at)
    run_schedule = dataclasses.replace(schedule, train_steps=end)
    steps_per_call = max(train_fns)
    with _workdir_lock(workdir):
        if restart_from_scratch:
            moved = move_run_aside(workdir)
            if moved:
                print(f"jaxgan: restarting from scratch; the previous run's outputs are in {moved}", flush=True)
            if jax.process_count() > 1:  # the others must not look for checkpoints while process 0 moves them
                from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

                multihost_utils.sync_global_devices("jaxgan restart from scratch")
        if run_info is not None:
            write_run_info(run_info, workdir)
        if hooks.prepare is not None:
            hooks.prepare()
        if jax.process_index() == 0:
            _check_writable(checkpoint_dir)
        writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
        with (
            checkpoint.checkpoint_manager(checkpoint_dir, max_to_keep=keep_checkpoints) as manager,
            PreemptionWatcher() as preemption,
        ):
            # Restored straight into the replicated layout the loop trains in: with several processes, an
            # array restored onto one local device cannot then be put on the other processes' devices.
            state, restored = checkpoint.restore_latest(manager, replicate(init_state, mesh), move_damaged=True)
            if restored is None and checkpoint.moved_aside(checkpoint_dir) and not restart_from_scratch:
                raise checkpoint.NoUsableCheckpointError(
                    f"No usable checkpoint is left in {checkpoint_dir} (damaged ones were moved aside: "
                    f"{', '.join(checkpoint.moved_aside(checkpoint_dir))}), and jaxgan does not start a run over from "
                    "step 0 on its own; relaunch with --restart_from_scratch to do so (the old outputs are moved "
                    "into WORKDIR/before-restart-<time>/, not deleted)."
                )
            state = _train(
                state,
                restored,
                workdir=workdir,
                train_fns=train_fns,
                batches=batches,
                schedule=schedule,
                run_schedule=run_schedule,
                steps_per_call=steps_per_call,
                mesh=mesh,
                hooks=hooks,
                writer=writer,
                manager=manager,
                preemption=preemption,
                progress_bar=progress_bar,
            )
            manager.wait_until_finished()
            _raise_save_errors(manager)
        writer.flush()
    return state


def _raise_save_errors(manager: Any) -> None:
    """Re-raises a failed asynchronous save (Orbax reports it on the next call into the manager)."""
    manager.check_for_errors()


def _train(
    state: Any,
    restored: int | None,
    *,
    workdir: str,
    train_fns: Mapping[int, TrainFn],
    batches: Callable[[int, Sequence[int]], Iterator[Any]],
    schedule: Schedule,
    run_schedule: Schedule,
    steps_per_call: int,
    mesh: Mesh,
    hooks: RunHooks,
    writer: Any,
    manager: Any,
    preemption: Any,
    progress_bar: bool,
) -> Any:
    """The loop of `run_training`, from the restored (or initial) state to the end."""
    if restored is None:
        for name, params_of in hooks.overview.items():
            parameter_overview.log_parameter_overview(params_of(state), msg=f"{name} parameters")
    else:
        logging.info("Resumed from the checkpoint at step %d in %s", restored, workdir)
    state = replicate(state, mesh)
    start = int(state.step)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    dropped = drop_jsonl_rows_after(metrics_path, start)
    if dropped:
        logging.info(
            "Dropped %d rows of %s logged after step %d; the re-run logs them again.", dropped, metrics_path, start
        )
    if restored is None and hooks.sample_at_start and hooks.samples is not None:
        save_pictures(writer, workdir, start, hooks.samples(start, state))
    calls = list(run_schedule.call_sizes(start, steps_per_call, with_eval=hooks.evaluate is not None))
    feed = batches(start, calls)
    progress = periodic_actions.ReportProgress(num_train_steps=schedule.train_steps, writer=writer)
    last_checkpoint, done = restored, start
    pending = PendingMetrics()
    with _progress_bar(progress_bar, schedule.train_steps, start) as bar:
        for size in calls:
            state, metrics = train_fns[size](state, next(feed))
            pending.add(done, size, metrics)
            done += size
            progress(done)
            if bar is not None:
                bar.update(size)
            stop = preemption.should_stop(done)
            log_now = run_schedule.due(run_schedule.log_every, done)
            save_now = run_schedule.due(run_schedule.checkpoint_every, done) or stop
            sample_now = hooks.samples is not None and run_schedule.due(run_schedule.sample_every, done)
            eval_now = (
                hooks.evaluate is not None
                and run_schedule.eval_every
                and run_schedule.due(run_schedule.eval_every, done)
            )
            if log_now or save_now or sample_now or eval_now:  # the only host syncs: nothing non-finite is written
                values = pending.check(done, state, last_checkpoint)
            if log_now:
                writer.write_scalars(done, {f"train/{k}": v for k, v in values.items()})
                _append_jsonl(metrics_path, {"step": done, **{f"train/{k}": v for k, v in values.items()}})
                if bar is not None:
                    bar.set_postfix({k: f"{values[k]:.3f}" for k in hooks.postfix if k in values})
            if sample_now:
                save_pictures(writer, workdir, done, hooks.samples(done, state))
            if eval_now:
                scores = {f"eval/{k}": float(v) for k, v in hooks.evaluate(done, state).items()}
                writer.write_scalars(done, scores)
                _append_jsonl(metrics_path, {"step": done, **scores})
            if save_now:
                _raise_save_errors(manager)  # a previous async save that failed stops the run now
                checkpoint.save(manager, done, state)
                last_checkpoint = done
            if stop:
                manager.wait_until_finished()
                _raise_save_errors(manager)
                logging.warning("SIGTERM: saved the checkpoint at step %d; stopping.", done)
                print(
                    f"jaxgan: preempted (SIGTERM); checkpoint saved at step {done}. "
                    "Relaunch the same command to resume.",
                    flush=True,
                )
                break
    return state
