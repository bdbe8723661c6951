"""Sample a trained generator: `python tools/sample.py --workdir=DIR --num=N --out=F.npz`.

Writes F.npz with `images` (uint8 NHWC) for image data, or `points` (float32)
for low-dimensional data, plus `labels` for conditional models, and a PNG grid
beside it (F.png, image data only). The same --seed always gives the same
samples. --ema (default) uses the EMA of G's weights; --no_ema the raw G.
--truncation=T draws G's noise truncated to [-T, T] (BigGAN's truncation trick; F.npz then
holds `truncation` too).

From Python: `jaxgan.workdir.load_generator(DIR).sample_uint8(N, seed=S)`.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

flags.DEFINE_string("workdir", None, "A jaxgan workdir (holds config.json and checkpoints/).", required=True)
flags.DEFINE_integer("num", 64, "Number of samples.")
flags.DEFINE_integer("seed", 0, "Latent seed: sample i uses z_i = N(0, I) keyed by (seed, i).")
flags.DEFINE_string("out", None, "Output .npz path (the PNG grid goes beside it).", required=True)
flags.DEFINE_bool("ema", True, "Sample the EMA generator (--noema or --no_ema: the raw generator).")
flags.DEFINE_bool("no_ema", False, "Sample the raw generator instead of its EMA (same as --noema).")
flags.DEFINE_string(
    "labels",
    None,
    "Conditional models: 'cycle' (0,1,..,K-1,0,..), one class id for all, "
    "or a comma-separated list of N class ids. Default: 'cycle', or for a model conditioned on "
    "k-means clusters (data.cluster_labels) ids drawn with the clusters' frequencies.",
)
flags.DEFINE_integer("batch_size", 256, "Samples per compiled call.")
flags.DEFINE_float(
    "truncation",
    None,
    "BigGAN's truncation trick (Brock et al. 2019): G's noise drawn from N(0, 1) "
    "truncated to [-T, T] (more typical samples, less variety; InfoGAN codes untouched). Default: "
    "untruncated N(0, I), as every published metric protocol uses.",
)
flags.DEFINE_float(
    "psi",
    None,
    "StyleGAN2's truncation in W (Karras et al. 2019): w <- w_avg + psi (w - w_avg), psi in [0, 1]; "
    "model.name=stylegan2 runs only. Default: none (psi = 1).",
)
FLAGS = flags.FLAGS


def parse_labels(spec: str | None, num: int, num_classes: int):
    """Class ids for `num` samples from the --labels flag (None for unconditional models)."""
    import numpy as np

    if not num_classes:
        if spec:
            raise app.UsageError("--labels given, but this generator is unconditional.")
        return None
    if spec is None or spec == "cycle":
        return np.arange(num) % num_classes
    values = [int(v) for v in spec.split(",")]
    if len(values) == 1:
        values = values * num
    if len(values) != num:
        raise app.UsageError(f"--labels has {len(values)} ids for --num={num}; give one id, N ids or 'cycle'.")
    labels = np.asarray(values)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise app.UsageError(f"--labels must lie in [0, {num_classes}).")
    return labels


def main(argv):
    del argv
    import numpy as np
    from PIL import Image

    from jaxgan import workdir as workdir_lib
    from jaxgan.common import to_uint8
    from jaxgan.data.clusters import draw_labels
    from jaxgan.sampling import check_truncation, image_grid

    if FLAGS.num < 1:
        raise app.UsageError("--num must be >= 1.")
    try:
        check_truncation(FLAGS.truncation)
    except ValueError as e:
        raise app.UsageError(f"--truncation: {e}") from None
    if not FLAGS.out.endswith(".npz"):
        raise app.UsageError(f"--out must end in .npz, got {FLAGS.out!r}.")
    use_ema = FLAGS.ema and not FLAGS.no_ema
    try:
        gan = workdir_lib.load_generator(FLAGS.workdir, ema=use_ema)
    except (OSError, ValueError) as e:  # no workdir, no readable checkpoint, a config that does not fit
        print(f"jaxgan sample: {e}", file=sys.stderr, flush=True)
        return 1
    if FLAGS.psi is not None:
        try:
            gan = gan.with_truncation_psi(FLAGS.psi)
        except ValueError as e:
            raise app.UsageError(f"--psi: {e}") from None
    if FLAGS.labels is None and gan.label_frequencies is not None:  # k-means clusters: their frequencies
        labels = draw_labels(gan.label_frequencies, FLAGS.num, seed=FLAGS.seed)
    else:
        labels = parse_labels(FLAGS.labels, FLAGS.num, gan.num_classes)
    samples = gan.sample(
        FLAGS.num, seed=FLAGS.seed, labels=labels, batch_size=FLAGS.batch_size, truncation=FLAGS.truncation
    )
    arrays = {}
    is_image = samples.ndim == 4
    if is_image:
        arrays["images"] = np.asarray(to_uint8(samples))
    else:
        arrays["points"] = samples.astype(np.float32)
    if labels is not None:
        arrays["labels"] = labels.astype(np.int32)
    if FLAGS.truncation is not None:  # so truncated samples are never mistaken for the model's distribution
        arrays["truncation"] = np.float32(FLAGS.truncation)
    if FLAGS.psi is not None:
        arrays["truncation_psi"] = np.float32(FLAGS.psi)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    np.savez(FLAGS.out, **arrays)
    truncated = f", latents truncated to +/-{FLAGS.truncation:g}" if FLAGS.truncation is not None else ""
    truncated += f", W truncated with psi {FLAGS.psi:g}" if FLAGS.psi is not None else ""
    message = (
        f"wrote {FLAGS.num} samples of step {gan.step} ({'EMA' if use_ema else 'raw'} G{truncated}) to {FLAGS.out}"
    )
    if is_image:
        grid = image_grid(arrays["images"][:256])
        png = FLAGS.out[: -len(".npz")] + ".png"
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(png)
        message += f" and a grid to {png}"
    print(message, flush=True)


if __name__ == "__main__":
    app.run(main)
