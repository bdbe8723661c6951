"""`run_training`: the chores every training run shares, whatever it trains.

The GAN zoo (`jaxgan.loop`), image translation (`jaxgan.translation.loop`) and
any research loop hand it an initial state, compiled train functions and a
batch source; it restores the latest checkpoint, runs the calls, and does the
periodic work: metrics to CLU writers (TensorBoard + console) and
`metrics.jsonl`, sample pictures, evaluations, Orbax checkpoints, a progress
bar, SIGTERM (preemption) saves, and the non-finite guard.

Nothing here reads a config: the orchestrators resolve their configs into the
explicit arguments below (a `Schedule` for every period).

Safety: metrics leave the devices only when logged or before a save; a state
with a non-finite metric or parameter is never saved and stops the run naming
the step and the last good checkpoint. SIGTERM saves the current step and
returns early; relaunching resumes exactly, because batch s is a pure function
of (seed, s) in every caller and every random draw of step s of (rng, s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
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
from jaxgan.config import Schedule
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
        git = lambda *args: subprocess.run(["git", *args], cwd=source, capture_output=True, text=True,
                                           timeout=10, check=True).stdout.strip()
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


def save_pictures(writer: metric_writers.MetricWriter, workdir: str, step: int,
                  pictures: Mapping[str, np.ndarray]) -> None:
    """uint8 pictures [H, W, C] as WORKDIR/samples/<name>_<step>.png and as TensorBoard images."""
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        for name, picture in pictures.items():
            Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(
                os.path.join(workdir, "samples", f"{name}_{step:06d}.png"))
    writer.write_images(step, {f"samples/{name}": picture[None] for name, picture in pictures.items()})


# --- safety --------------------------------------------------------------------------------------------------


@jax.jit
def _tree_all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def check_finite(step: int, metrics: Mapping[str, float], state: Any, last_checkpoint: int | None) -> None:
    """Raises FloatingPointError naming the step and the last good checkpoint if a metric
    or any floating-point leaf of the state (params, optimizer, EMA) is NaN or Inf."""
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if bad or not bool(_tree_all_finite(state)):
        what = f"metrics {bad}" if bad else "parameters or optimizer state"
        raise FloatingPointError(
            f"Non-finite {what} at step {step}. Last good checkpoint: "
            f"{'none' if last_checkpoint is None else f'step {last_checkpoint}'}; this state was not saved. "
            "Lower the learning rates, add a regularizer, or check the data."
        )


def last_step_metrics(metrics: Mapping[str, Any], size: int) -> dict[str, float]:
    """Host floats of the last step's metrics of a call (a K-step call stacks them [K]).

    A non-finite value in any of the call's steps is kept, so `check_finite` sees it."""
    values = {}
    for k, v in metrics.items():
        v = np.asarray(v, np.float64).reshape(size)
        values[k] = float(v[-1]) if np.isfinite(v).all() else float(v[~np.isfinite(v)][0])
    return values


class PreemptionWatcher:
    """Records SIGTERM (a preemption notice) instead of dying, so the loop can save first.

    With several processes, they agree through JAX's preemption sync point
    (`jax.distributed` installs its own SIGTERM notifier) so all save the same step.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous = None

    def __enter__(self) -> "PreemptionWatcher":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._event.set())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def should_stop(self, step: int) -> bool:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            try:
                return bool(multihost_utils.reached_preemption_sync_point(step))
            except RuntimeError:  # no preemption service (not started with jax.distributed)
                pass
        return self._event.is_set()


# --- the run -------------------------------------------------------------------------------------------------


def _progress_bar(enabled: bool, total: int, start: int):
    if not (enabled and jax.process_index() == 0):
        return contextlib.nullcontext(None)
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)


def _append_jsonl(path: str, record: Mapping[str, Any]) -> None:
    if jax.process_index() == 0:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


@dataclasses.dataclass(frozen=True)
class RunHooks:
    """What a run does besides training; every hook takes the step and the (replicated) state.

    overview: name -> the params to log as a CLU parameter table when the run starts fresh.
    samples: returns uint8 pictures {name: [H, W, C]} for `samples/` and TensorBoard.
    evaluate: returns scalars written as `eval/<name>`.
    sample_at_start: also draw samples before the first step of a fresh run.
    """

    overview: Mapping[str, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    samples: Callable[[int, Any], Mapping[str, np.ndarray]] | None = None
    evaluate: Callable[[int, Any], Mapping[str, float]] | None = None
    sample_at_start: bool = False
    postfix: Sequence[str] = ("d_loss", "g_loss")


def run_training(*, workdir: str, init_state: Any, train_fns: Mapping[int, TrainFn],
                 batches: Callable[[int, Sequence[int]], Iterator[Any]], schedule: Schedule, mesh: Mesh,
                 keep_checkpoints: int = 3, hooks: RunHooks = RunHooks(), stop_at: int | None = None,
                 progress_bar: bool = True) -> Any:
    """Restores the latest checkpoint in WORKDIR/checkpoints (else starts from `init_state`) and
    trains to `schedule.train_steps`, or to `stop_at` (a checkpointed early stop, as a preemption).

    train_fns: steps per call -> compiled `(state, batch) -> (state, metrics)` on `mesh`
      (metrics stacked [K] for K steps per call); the largest key is used between periodic actions.
    batches(start, calls): the device-placed batches of those calls, from step `start` on.
    Returns the final state (below the end only when stopped by SIGTERM or `stop_at`).
    """
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    end = schedule.train_steps if stop_at is None else min(schedule.train_steps, stop_at)
    run_schedule = dataclasses.replace(schedule, train_steps=end)
    steps_per_call = max(train_fns)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    with checkpoint.checkpoint_manager(os.path.join(workdir, "checkpoints"),
                                       max_to_keep=keep_checkpoints) as manager, PreemptionWatcher() as preemption:
        state, restored = checkpoint.restore_latest(manager, init_state)
        if restored is None:
            for name, params_of in hooks.overview.items():
                parameter_overview.log_parameter_overview(params_of(state), msg=f"{name} parameters")
        else:
            logging.info("Resumed from the checkpoint at step %d in %s", restored, workdir)
        state = replicate(state, mesh)
        start = int(state.step)
        if restored is None and hooks.sample_at_start and hooks.samples is not None:
            save_pictures(writer, workdir, start, hooks.samples(start, state))
        calls = list(run_schedule.call_sizes(start, steps_per_call, with_eval=hooks.evaluate is not None))
        feed = batches(start, calls)
        progress = periodic_actions.ReportProgress(num_train_steps=schedule.train_steps, writer=writer)
        last_checkpoint, done = restored, start
        with _progress_bar(progress_bar, schedule.train_steps, start) as bar:
            for size in calls:
                state, metrics = train_fns[size](state, next(feed))
                done += size
                progress(done)
                if bar is not None:
                    bar.update(size)
                stop = preemption.should_stop(done)
                log_now = run_schedule.due(run_schedule.log_every, done)
                save_now = run_schedule.due(run_schedule.checkpoint_every, done) or stop
                if log_now or save_now:  # the only host syncs: never save a non-finite state
                    values = last_step_metrics(jax.device_get(metrics), size)
                    check_finite(done, values, state, last_checkpoint)
                if log_now:
                    writer.write_scalars(done, {f"train/{k}": v for k, v in values.items()})
                    _append_jsonl(os.path.join(workdir, "metrics.jsonl"),
                                  {"step": done, **{f"train/{k}": v for k, v in values.items()}})
                    if bar is not None:
                        bar.set_postfix({k: f"{values[k]:.3f}" for k in hooks.postfix if k in values})
                if hooks.samples is not None and run_schedule.due(run_schedule.sample_every, done):
                    save_pictures(writer, workdir, done, hooks.samples(done, state))
                if hooks.evaluate is not None and run_schedule.eval_every and \
                        run_schedule.due(run_schedule.eval_every, done):
                    scores = {f"eval/{k}": float(v) for k, v in hooks.evaluate(done, state).items()}
                    writer.write_scalars(done, scores)
                    _append_jsonl(os.path.join(workdir, "metrics.jsonl"), {"step": done, **scores})
                if save_now:
                    checkpoint.save(manager, done, state)
                    last_checkpoint = done
                if stop:
                    manager.wait_until_finished()
                    logging.warning("SIGTERM: saved the checkpoint at step %d; stopping.", done)
                    print(f"jaxgan: preempted (SIGTERM); checkpoint saved at step {done}. "
                          "Relaunch the same command to resume.", flush=True)
                    break
        manager.wait_until_finished()
    writer.flush()
    return state
