"""Train pix2pix: `python experiments/pix2pix.py [--config=experiments/configs/pix2pix.py[:paper]] [--workdir=DIR]`.

The default config is a fast offline demo (see experiments/configs/pix2pix.py). Override
any field with `--config.FIELD=VALUE`. A workdir that holds checkpoints is resumed
from the latest one, exactly. Apply the trained generator to new images with
`python tools/translate.py --workdir=DIR --input=FOLDER --out=FOLDER`.
"""

from launcher import launch, translation_outputs

if __name__ == "__main__":
    launch("pix2pix", "jaxgan.translation.orchestrate", translation_outputs)
