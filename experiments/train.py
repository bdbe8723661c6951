"""Train a GAN: `python experiments/train.py [--config=experiments/configs/X.py] [--workdir=DIR]`.

The default config is DCGAN on the embedded offline digits. Override any field
with `--config.FIELD=VALUE` (e.g. `--config.train_steps=3000`). Without
--workdir, a new directory under ./workdirs/ is created and printed. A workdir
that already holds checkpoints is resumed from the latest one.

`--dry_run` validates the config and prints parameter counts and the resolved
config without training. SIGTERM (preemption) saves a checkpoint and exits with
status 143; relaunching the same command resumes.

Several hosts: start the same command on every host with --multihost; the
processes find each other through JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID or JAX's cluster auto-detection (SLURM, Cloud TPU);
see docs/multihost.md.
"""

import datetime
import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "dcgan.py")

config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and TensorBoard events.")
flags.DEFINE_bool(
    "multihost",
    False,
    "Join a multi-process run first (jaxgan.distributed.initialize: one process per host; docs/multihost.md).",
)
flags.DEFINE_bool(
    "restart_from_scratch",
    False,
    "Start at step 0 in a workdir that holds a previous run, after "
    "moving its checkpoints, samples, metrics and events into WORKDIR/before-restart-<time>/.",
)
flags.DEFINE_bool(
    "dry_run",
    False,
    "Validate the config, build the state abstractly, print parameter counts "
    "and the resolved config; train nothing, write nothing.",
)
FLAGS = flags.FLAGS


def _default_workdir(config_path: str) -> str:
    name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("workdirs", f"{name}-{stamp}")


def _quiet_orbax() -> None:
    """Orbax logs every save step at INFO; keep its warnings, drop the chatter."""
    logging.get_absl_handler().addFilter(
        lambda record: record.levelno >= logging.converter.STANDARD_WARNING or "/orbax/" not in record.pathname
    )


def _print_dry_run(report) -> None:
    schedule = report["schedule"]
    print(FLAGS.config.to_json_best_effort(indent=2, sort_keys=True))
    print(report["g_overview"])
    print(report["d_overview"])
    print(
        f"jaxgan dry run: config OK. Generator {report['g_parameters']:,} parameters, discriminator "
        f"{report['d_parameters']:,}; TrainState {report['state_bytes'] / 2**20:.1f} MiB. "
        f"{schedule.train_steps} steps of {schedule.images_per_step} real images "
        f"({schedule.train_steps * schedule.images_per_step:,} images); checkpoint every "
        f"{schedule.checkpoint_every}, samples every {schedule.sample_every}, eval every "
        f"{schedule.eval_every or 'never'} steps.",
        flush=True,
    )


def main(argv):
    del argv
    _quiet_orbax()
    import jax  # after flag parsing, so --help stays fast

    if FLAGS.multihost:
        from jaxgan import distributed

        try:
            distributed.initialize()
        except distributed.MultihostConfigError as e:
            print(f"jaxgan: {e}", file=sys.stderr, flush=True)
            return 1
    from jaxgan import orchestrate
    from jaxgan.config import resolve_schedule

    if FLAGS.dry_run:
        _print_dry_run(orchestrate.dry_run(FLAGS.config))
        return 0
    workdir = os.path.abspath(FLAGS.workdir or _default_workdir(FLAGS["config"].config_filename))
    logging.info("JAX process %d/%d, local devices %s", jax.process_index(), jax.process_count(), jax.local_devices())
    print(f"jaxgan: writing to workdir {workdir}", flush=True)
    from jaxgan.checkpoint import CheckpointUnreadableError, NoUsableCheckpointError
    from jaxgan.lock import WorkdirLockedError

    try:
        state = orchestrate.train_and_evaluate(FLAGS.config, workdir, restart_from_scratch=FLAGS.restart_from_scratch)
    except (
        WorkdirLockedError,
        CheckpointUnreadableError,
        NoUsableCheckpointError,
        NotADirectoryError,
        PermissionError,
    ) as e:  # the workdir's state, not a bug: one line, no traceback
        print(f"jaxgan: {e}", file=sys.stderr, flush=True)
        return 1
    if int(state.step) < resolve_schedule(FLAGS.config).train_steps:
        return 128 + signal.SIGTERM  # stopped by SIGTERM after saving: tell the scheduler it did not finish
    print(
        f"jaxgan: done. Samples in {os.path.join(workdir, 'samples')}, checkpoints in "
        f"{os.path.join(workdir, 'checkpoints')}; TensorBoard: tensorboard --logdir {workdir}",
        flush=True,
    )


def _main(argv):
    from jaxgan import distributed  # after flag parsing, so --help stays fast

    return distributed.failing_fast(main)(argv)  # a failing process leaves a multi-process run at once


if __name__ == "__main__":
    app.run(_main)
