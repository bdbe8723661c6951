"""Train the video GAN: `python experiments/video_gan.py [--config=experiments/configs/video_gan.py[:preset]] [--workdir=DIR]`.

The default config is a fast offline demo on moving digits (see
experiments/configs/video_gan.py). Override any field with `--config.FIELD=VALUE`
(e.g. `--config.train_steps=200`). A workdir that holds checkpoints is resumed
from the latest one, exactly. Samples: WORKDIR/samples/{g,ema}_<step>.{gif,png}.
"""

import os

from launcher import launch


def video_outputs(workdir: str) -> str:
    """Where the clips are, and how to watch the curves."""
    return (
        f"Samples (GIF + frame grids) in {os.path.join(workdir, 'samples')}; "
        f"TensorBoard: tensorboard --logdir={workdir}"
    )


if __name__ == "__main__":
    launch("video_gan", "jaxgan.video.orchestrate", video_outputs)
