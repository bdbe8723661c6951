"""The shared launcher of the application experiments (cyclegan.py, pix2pix.py, video_gan.py).

`launch(name, loop_module, outputs)` defines the flags (the default config is
experiments/configs/<name>.py, a fast offline demo; override any field with
`--config.FIELD=VALUE`), trains or resumes exactly from the workdir's latest
checkpoint with `<loop_module>.train_and_evaluate`, and prints `outputs(workdir)`:
where the samples are and what to run next. `--multihost` joins a multi-process run
first (`jaxgan.distributed.initialize`; docs/multihost.md).
"""

import datetime
import importlib
import os
import signal
import sys
from typing import Callable

from absl import app, flags
from ml_collections import config_flags


def launch(name: str, loop_module: str, outputs: Callable[[str], str]) -> None:
    default_config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", f"{name}.py")
    config_flags.DEFINE_config_file("config", default_config, "Experiment config file.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and TensorBoard events.")
    flags.DEFINE_integer("stop_at", None, "Stop (after a checkpoint) at this step; relaunch to continue.")
    flags.DEFINE_bool(
        "multihost",
        False,
        "Join a multi-process run first (jaxgan.distributed.initialize: one process per host; docs/multihost.md).",
    )
    FLAGS = flags.FLAGS

    def main(argv):
        del argv
        if FLAGS.multihost:  # before anything touches the devices
            from jaxgan import distributed

            try:
                distributed.initialize()
            except distributed.MultihostConfigError as e:
                print(f"jaxgan: {e}", file=sys.stderr, flush=True)
                return 1
        loop = importlib.import_module(loop_module)  # after flag parsing, so --help stays fast

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        workdir = os.path.abspath(FLAGS.workdir or os.path.join("workdirs", f"{name}-{stamp}"))
        print(f"jaxgan: writing to workdir {workdir}", flush=True)
        state = loop.train_and_evaluate(FLAGS.config, workdir, stop_at=FLAGS.stop_at)
        status = exit_status(int(state.step), FLAGS.config, FLAGS.stop_at)
        if status:
            print(
                f"jaxgan: stopped by SIGTERM at step {int(state.step)} after saving a checkpoint; relaunch the "
                "same command to resume.",
                flush=True,
            )
            return status
        print(f"jaxgan: stopped at step {int(state.step)}. {outputs(workdir)}", flush=True)

    def failing_fast_main(argv):
        from jaxgan import distributed  # after flag parsing, so --help stays fast

        return distributed.failing_fast(main)(argv)  # a failing process leaves a multi-process run at once

    app.run(failing_fast_main)


def exit_status(step: int, config, stop_at: int | None) -> int:
    """0 when the run reached its end (the schedule's last step, or --stop_at); 143 (128 + SIGTERM) when a
    preemption stopped it earlier, after its checkpoint, so that a scheduler requeues it (as train.py does)."""
    from jaxgan.run_config import schedule_from_config  # pylint: disable=g-import-not-at-top

    end = schedule_from_config(config, images_per_step=config.batch_size).train_steps
    if stop_at is not None:
        end = min(end, stop_at)
    return 0 if step >= end else 128 + signal.SIGTERM


def translation_outputs(workdir: str) -> str:
    """CycleGAN / pix2pix: the triplet grids, and how to apply the generator."""
    return (
        f"Triplets in {os.path.join(workdir, 'samples')}; translate with: "
        f"python tools/translate.py --workdir={workdir} --input=FOLDER --out=FOLDER"
    )
