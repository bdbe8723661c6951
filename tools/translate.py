"""Translate a folder of images with a trained CycleGAN or pix2pix generator.

  python tools/translate.py --workdir=DIR --input=FOLDER --out=FOLDER [--direction=AtoB|BtoA] [--overwrite]

Restores the latest checkpoint of DIR (built from DIR/config.json) and writes
OUT/<name>.png for every PNG/JPEG in FOLDER, each the size of its input: any
size the generator accepts (ResNet: multiples of 4; U-Net: multiples of
2**num_downs). Every input is checked (channel count, size) and no output
file is replaced unless --overwrite, before anything is written. pix2pix runs
with dropout off, so a translation is deterministic.
"""

import sys

from absl import app, flags

flags.DEFINE_string(
    "workdir", None, "A run directory of experiments/cyclegan.py or experiments/pix2pix.py.", required=True
)
flags.DEFINE_string("input", None, "Folder of PNG/JPEG images to translate.", required=True)
flags.DEFINE_string("out", None, "Folder for the translated PNGs (created if missing).", required=True)
flags.DEFINE_enum("direction", "AtoB", ["AtoB", "BtoA"], "Which generator: A->B or B->A (CycleGAN only).")
flags.DEFINE_bool("overwrite", False, "Replace existing files in --out.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from jaxgan.translation.apply import load_translator, translate_folder  # after flag parsing

    try:
        translator = load_translator(FLAGS.workdir)
        written = translate_folder(
            translator, FLAGS.input, FLAGS.out, direction=FLAGS.direction, overwrite=FLAGS.overwrite
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"jaxgan translate: {e}", file=sys.stderr, flush=True)
        return 1
    print(
        f"jaxgan: translated {len(written)} image(s) {FLAGS.direction} with the step-{translator.trained_steps} "
        f"generator into {FLAGS.out}",
        flush=True,
    )


if __name__ == "__main__":
    app.run(main)
