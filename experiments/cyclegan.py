"""Train cyclegan: `python experiments/cyclegan.py [--config=experiments/configs/cyclegan.py[:paper]] [--workdir=DIR]`.

The default config is a fast offline demo (see experiments/configs/cyclegan.py). Override
any field with `--config.FIELD=VALUE`. A workdir that holds checkpoints is resumed
from the latest one, exactly. Apply the trained generator to new images with
`python tools/translate.py --workdir=DIR --input=FOLDER --out=FOLDER`.
"""

from launcher import launch, translation_outputs

if __name__ == "__main__":
    launch("cyclegan", "jaxgan.translation.orchestrate", translation_outputs)
