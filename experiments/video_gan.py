"""Train the video GAN: `python experiments/video_gan.py [--config=experiments/configs/video_gan.py[:preset]] [--workdir=DIR]`.

The default config is a fast offline demo on moving digits (see
experiments/configs/video_gan.py). Override any field with `--config.FIELD=VALUE`
(e.g. `--config.train_steps=200`). A workdir that holds checkpoints is resumed
from the latest one, exactly. Samples: WORKDIR/samples/{g,ema}_<step>.{gif,png}.
"""

import datetime
import os

from absl import app, flags
from ml_collections import config_flags

_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "video_gan.py")
config_flags.DEFINE_config_file("config", _DEFAULT, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples (GIF + PNG) and TensorBoard events.")
flags.DEFINE_integer("stop_at", None, "Stop (after a checkpoint) at this step; relaunch to continue.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from jaxgan.video import loop  # after flag parsing, so --help stays fast

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = os.path.abspath(FLAGS.workdir or os.path.join("workdirs", f"video_gan-{stamp}"))
    print(f"jaxgan: writing to workdir {workdir}", flush=True)
    state = loop.train_and_evaluate(FLAGS.config, workdir, stop_at=FLAGS.stop_at)
    print(f"jaxgan: stopped at step {int(state.step)}. Samples (GIF + frame grids) in "
          f"{os.path.join(workdir, 'samples')}; TensorBoard: tensorboard --logdir={workdir}", flush=True)


if __name__ == "__main__":
    app.run(main)
