"""The shared launcher of experiments/cyclegan.py and experiments/pix2pix.py.

`launch(name)` defines the flags (the default config is experiments/configs/<name>.py,
a fast offline demo; override any field with `--config.FIELD=VALUE`), trains or
resumes exactly from the workdir's latest checkpoint, and prints how to apply the
trained generator with `python tools/translate.py --workdir=DIR --input=FOLDER --out=FOLDER`.
"""

import datetime
import os

from absl import app, flags
from ml_collections import config_flags


def launch(name: str) -> None:
    default_config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", f"{name}.py")
    config_flags.DEFINE_config_file("config", default_config, "Experiment config file.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, sample triplets and TensorBoard events.")
    flags.DEFINE_integer("stop_at", None, "Stop (after a checkpoint) at this step; relaunch to continue.")
    FLAGS = flags.FLAGS

    def main(argv):
        del argv
        from jaxgan.translation import loop  # after flag parsing, so --help stays fast

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        workdir = os.path.abspath(FLAGS.workdir or os.path.join("workdirs", f"{name}-{stamp}"))
        print(f"jaxgan: writing to workdir {workdir}", flush=True)
        state = loop.train_and_evaluate(FLAGS.config, workdir, stop_at=FLAGS.stop_at)
        print(f"jaxgan: stopped at step {int(state.step)}. Triplets in {os.path.join(workdir, 'samples')}; "
              f"translate with: python tools/translate.py --workdir={workdir} --input=FOLDER --out=FOLDER", flush=True)

    app.run(main)
