"""Train cyclegan: `python experiments/cyclegan.py [--config=experiments/configs/cyclegan.py[:paper]] [--workdir=DIR]`.

The default config is a fast offline demo (see experiments/configs/cyclegan.py). Override
any field with `--config.FIELD=VALUE`. A workdir that holds checkpoints is resumed
from the latest one, exactly. Apply the trained generator to new images with
`python tools/translate.py --workdir=DIR --input=FOLDER --out=FOLDER`.
"""

import datetime
import os

from absl import app, flags
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "cyclegan.py")

config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, sample triplets and TensorBoard events.")
flags.DEFINE_integer("stop_at", None, "Stop (after a checkpoint) at this step; relaunch to continue.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from jaxgan.translation import loop  # after flag parsing, so --help stays fast

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = os.path.abspath(FLAGS.workdir or os.path.join("workdirs", f"cyclegan-{stamp}"))
    print(f"jaxgan: writing to workdir {workdir}", flush=True)
    state = loop.train_and_evaluate(FLAGS.config, workdir, stop_at=FLAGS.stop_at)
    print(f"jaxgan: stopped at step {int(state.step)}. Triplets in {os.path.join(workdir, 'samples')}; translate "
          f"with: python tools/translate.py --workdir={workdir} --input=FOLDER --out=FOLDER", flush=True)


if __name__ == "__main__":
    app.run(main)
