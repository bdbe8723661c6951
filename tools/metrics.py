"""One metric between two sample sets, or of a checkpoint's generator: prints ONE JSON line.

  python tools/metrics.py --metric=fid --a=fake.npz --b=real.npz [--num=N]
  python tools/metrics.py --metric=kid --workdir=WORKDIR --b=real_dir/ --num=10000
  python tools/metrics.py --metric=fcd --a=fake.npz            # --b defaults to the digits train split
  python tools/metrics.py --metric=modes --a=points.npz --data=ring

--metric: fid | kid | prdc (precision, recall, density, coverage) | is | msssim |
modes | fcd. --a / --b: a .npz with `images` (uint8 [N, H, W, C], or [N, H, W])
or, for modes, `points` (float [N, 2]); or a folder of PNG/JPEG files of one
size. --workdir samples the EMA generator of a jaxgan run (--num samples,
--seed) instead of reading --a. --num / --num_real take the first N of --a / --b.
fid/kid/prdc/is use the FID Inception (--feature_dim=64/192/768 for cheap
checks, --weights for a converted .npz); `is` needs weights with the classifier
(pytorch-fid's .pth). The JSON line holds the metric, its value(s) and the
protocol; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import json
import math
import os
import sys

from absl import app, flags

METRICS = ("fid", "kid", "prdc", "is", "msssim", "modes", "fcd")
# The fewest samples each metric is defined for (prdc: more than k = 5 neighbours; is: 10 splits).
MIN_SAMPLES = {"fid": 2, "kid": 2, "prdc": 6, "is": 10, "msssim": 2, "modes": 1, "fcd": 2}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

flags.DEFINE_enum("metric", None, METRICS, "Which metric.", required=True)
flags.DEFINE_string("a", None, "Generated samples: .npz (`images` or `points`) or an image folder.")
flags.DEFINE_string("b", None, "Reference samples: .npz or an image folder (fcd: default digits train split).")
flags.DEFINE_string("workdir", None, "Sample this jaxgan run's generator instead of reading --a.")
flags.DEFINE_integer("num", None, "Use the first N samples of --a (with --workdir: generate N; default 10000).")
flags.DEFINE_integer("num_real", None, "Use the first N samples of --b (default: all).")
flags.DEFINE_integer("seed", 0, "Sampling seed (--workdir) and metric seed (KID subsets, MS-SSIM pairs).")
flags.DEFINE_bool("ema", True, "--workdir: sample the EMA generator (--noema or --no_ema: the raw one).")
flags.DEFINE_bool("no_ema", False, "--workdir: sample the raw generator (same as --noema).")
flags.DEFINE_enum("data", None, ("ring", "grid"), "modes: the 2-D mixture the points should cover.")
flags.DEFINE_enum("feature_dim", "2048", ("64", "192", "768", "2048"), "Inception feature dim (2048 = FID).")
flags.DEFINE_enum("resize", "pytorch_fid", ("pytorch_fid", "clean"), "Inception resize protocol.")
flags.DEFINE_string("weights", None, "Converted Inception weights .npz (default: the fetched FID weights).")
flags.DEFINE_integer("batch_size", 50, "Images per Inception call.")
flags.DEFINE_integer("num_pairs", 1000, "msssim: random pairs.")
flags.DEFINE_bool("stacked", False, "fcd: Stacked digits (one digit per RGB channel, 192-d features).")
FLAGS = flags.FLAGS


class InputError(Exception):
    """Bad input files or flags: printed as one line, exit status 1."""


def _read_folder(path: str):
    import numpy as np
    from PIL import Image

    names = sorted(n for n in os.listdir(path) if n.lower().endswith(_IMAGE_SUFFIXES))
    if not names:
        raise InputError(f"No PNG/JPEG files in {path}.")
    arrays = []
    for n in names:
        with Image.open(os.path.join(path, n)) as im:
            gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            arrays.append(np.asarray(im.convert("L" if gray else "RGB"), np.uint8))
    if len({a.shape[:2] for a in arrays}) > 1:
        raise InputError(
            f"The images in {path} have different sizes {sorted({a.shape[:2] for a in arrays})}; "
            "resize them to one size first."
        )
    if any(a.ndim == 3 for a in arrays):  # mixed gray and colour: all colour
        arrays = [np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a for a in arrays]
    x = np.stack(arrays)
    return x[..., None] if x.ndim == 3 else x


def load_samples(path: str, *, key: str, flag: str):
    """uint8 NHWC images (key 'images') or float points [N, 2] (key 'points') from a .npz or a folder."""
    import numpy as np

    if os.path.isdir(path):
        if key != "images":
            raise InputError(f"--{flag}={path} is a folder; {key} must come in a .npz with a '{key}' array.")
        return _read_folder(path)
    if not os.path.isfile(path):
        raise InputError(f"--{flag}={path}: no such file or folder.")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise InputError(
            f"--{flag}={path} is not a readable .npz ({e}); write it with np.savez(path, {key}=...)."
        ) from e
    if not hasattr(z, "files"):
        raise InputError(f"--{flag}={path} is a .npy, not an .npz; write it with np.savez(path, {key}=...).")
    with z:
        if key not in z.files:
            raise InputError(
                f"--{flag}={path} has no '{key}' array (keys: {z.files}); save it as np.savez(path, {key}=...)."
            )
        x = z[key]
    if key == "points":
        if x.ndim != 2 or x.shape[1] != 2 or not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"--{flag}: 'points' must be float [N, 2], got {x.dtype} {x.shape}.")
        return x
    if x.dtype != np.uint8:
        raise InputError(
            f"--{flag}: 'images' must be uint8 in [0, 255], got {x.dtype}; quantize float images "
            "in [-1, 1] with jaxgan.common.to_uint8 (tools/sample.py writes uint8)."
        )
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise InputError(
            f"--{flag}: 'images' must be [N, H, W] or [N, H, W, C] with C = 1 or 3 (channels last), "
            f"got shape {x.shape}."
        )
    return x


def _take(x, num: int | None, flag: str):
    if num is not None:
        if len(x) < num:
            raise InputError(
                f"--{'num' if flag == 'a' else 'num_real'}={num}, but --{flag} holds only {len(x)} samples."
            )
        x = x[:num]
    return _enough(x, flag)


def _enough(x, what: str):
    need = MIN_SAMPLES[FLAGS.metric]
    if len(x) < need:
        raise InputError(
            f"--metric={FLAGS.metric} needs at least {need} samples in --{what}, got {len(x)} "
            "(thousands for reportable numbers: 10k for FID/KID/PRDC, 50k for IS)."
        )
    return x


def _generated(key: str):
    """--a, or --num samples of --workdir's generator."""
    if FLAGS.workdir:
        import numpy as np

        if FLAGS.a:
            raise InputError("Give --a or --workdir, not both.")
        from jaxgan import workdir as workdir_lib

        use_ema = FLAGS.ema and not FLAGS.no_ema
        gan = workdir_lib.load_generator(FLAGS.workdir, ema=use_ema)
        num = FLAGS.num or 10_000
        labels = (np.arange(num) % gan.num_classes) if gan.num_classes else None
        if key == "points":
            x = gan.sample(num, seed=FLAGS.seed, labels=labels)
            if x.ndim != 2:
                raise InputError(f"{FLAGS.workdir} generates images, not 2-D points; use an image metric.")
            return x, {"workdir": FLAGS.workdir, "step": gan.step, "ema": use_ema, "seed": FLAGS.seed}
        x = _enough(gan.sample_uint8(num, seed=FLAGS.seed, labels=labels), "workdir")
        return x, {"workdir": FLAGS.workdir, "step": gan.step, "ema": use_ema, "seed": FLAGS.seed}
    if not FLAGS.a:
        raise InputError("Give --a=FILE.npz|DIR (the generated samples) or --workdir=DIR.")
    return _take(load_samples(FLAGS.a, key=key, flag="a"), FLAGS.num, "a"), {"a": FLAGS.a}


def _reference(required: bool = True):
    if not FLAGS.b:
        if required:
            raise InputError(f"--metric={FLAGS.metric} needs --b=FILE.npz|DIR (the reference samples).")
        return None
    return _take(load_samples(FLAGS.b, key="images", flag="b"), FLAGS.num_real, "b")


def compute() -> dict:
    """The metric's values and protocol, as one JSON-able dict."""
    metric = FLAGS.metric
    if metric == "modes":
        from jaxgan.metrics import modes

        if FLAGS.data is None:
            raise InputError("--metric=modes needs --data=ring|grid (the mixture the points should cover).")
        points, source = _generated("points")
        r = modes.mode_coverage(points, FLAGS.data)
        values = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()}
        return {
            "metric": metric,
            **values,
            "protocol": {"data": FLAGS.data, "n": len(points), "threshold_sigmas": modes.HIGH_QUALITY_SIGMAS, **source},
        }

    from jaxgan.metrics import evaluator

    fake, source = _generated("images")
    if metric == "fcd":
        real = _reference(required=False)
        ev = evaluator.DigitsFrechetEvaluator(
            num_samples=len(fake), reference_images=real, stacked=FLAGS.stacked, seed=FLAGS.seed
        )
        values = ev.evaluate_images(fake)
        return {
            "metric": metric,
            **values,
            "protocol": {
                "features": "digits_classifier 64-d" + (" x3 stacked" if ev.stacked else ""),
                "reference": FLAGS.b or ev.reference,
                "n_real": int(ev.real_stats.n),
                "n_fake": len(fake),
                "n_floor": ev.n_heldout,
                **source,
            },
        }
    if metric == "msssim":
        real = _reference(required=False)
        from jaxgan.metrics import diversity

        value = diversity.msssim_diversity(fake, num_pairs=FLAGS.num_pairs, seed=FLAGS.seed)
        out = {"metric": metric, "msssim": value}
        if real is not None:
            out["msssim_real"] = diversity.msssim_diversity(real, num_pairs=FLAGS.num_pairs, seed=FLAGS.seed)
        return {
            **out,
            "protocol": {
                "num_pairs": FLAGS.num_pairs,
                "seed": FLAGS.seed,
                "n_fake": len(fake),
                "n_real": None if real is None else len(real),
                **source,
            },
        }

    names = {"fid": ("fid",), "kid": ("kid",), "prdc": evaluator.PRDC_METRICS, "is": ("is",)}[metric]
    real = None if metric == "is" else _reference()
    from jaxgan.metrics import weights

    try:
        ev = evaluator.InceptionEvaluator(
            metrics=names,
            num_samples=max(len(fake), 2),
            seed=FLAGS.seed,
            reference_images=real,
            reference_name=FLAGS.b,
            weights_path=FLAGS.weights,
            feature_dim=int(FLAGS.feature_dim),
            resize=FLAGS.resize,
            batch_size=FLAGS.batch_size,
        )
    except weights.WeightsError as e:
        raise InputError(f"Inception weights unavailable: {e}") from e
    values = ev.evaluate_images(fake)
    return {"metric": metric, **values, "protocol": {**ev.last_protocol, **source}}


def _finite_or_null(x):
    """NaN/inf (e.g. the reverse KL with no high-quality sample) as null, so the line is strict JSON."""
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_or_null(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}.")
    try:
        result = compute()
    except (InputError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"tools/metrics.py: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(json.dumps(_finite_or_null(result)), flush=True)


if __name__ == "__main__":
    app.run(main)
