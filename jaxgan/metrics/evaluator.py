"""Evaluators: jaxgan's metrics behind the loop's `evaluator(sample_fn, step) -> {name: value}` protocol.

An evaluator is built once from explicit arguments (reference images or cached
reference statistics/features, how many samples, the seed, which metrics) and
then called by `jaxgan.loop.train_and_evaluate` every `eval_every_steps` with
`sample_fn(num, seed) -> uint8 [num, H, W, C]` (EMA-G samples, deterministic in
the seed). Everything that does not depend on G (reference features, the
real-vs-real floor, the real MS-SSIM) is computed at construction, so a call
only samples, extracts features once, and compares.

- `DigitsFrechetEvaluator`: the cheap default for the offline digits runs. The
  Frechet distance on the shipped digits classifier's features ("FCD",
  `digits_classifier`), beside its real-vs-real floor (train vs held-out).
- `InceptionEvaluator`: any of fid / kid / precision / recall / density /
  coverage / is from ONE Inception feature extraction of one set of samples;
  reference features or statistics cached with `fid.reference_key`; the
  protocol of every value in `last_protocol`.
- `MSSSIMEvaluator`: mean pairwise MS-SSIM of samples beside the real data's.

`make_evaluator(name, **kwargs)` builds one by name from `EVALUATORS`. The same
classes serve tools/metrics.py through `evaluate_images(images)`, which is what
`__call__` runs on `sample_fn(num_samples, seed)`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jaxgan.metrics import digits_classifier, diversity, fid as fid_lib, inception, inception_score, kid, prdc
from jaxgan.metrics import modes as modes_lib, stats, weights

log = logging.getLogger(__name__)

SampleFn = Callable[[int, int], np.ndarray]

INCEPTION_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "is")
PRDC_METRICS = ("precision", "recall", "density", "coverage")
FEATURES_FORMAT_VERSION = 1
IS_WEIGHTS_HINT = (
    "Convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth (it has the fc layer) with "
    "`python tools/fetch_inception.py --pth PATH` and pass the resulting .npz as the weights path."
)


# ---------------------------------------------------------------- helpers


def check_samples(images: Any, *, num: int | None = None, what: str = "samples") -> np.ndarray:
    """uint8 [N, H, W, C] (C in 1, 3) as numpy, with N == num when given; else a clear error."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TypeError(
            f"{what} must be uint8 [N, H, W, C] in [0, 255], got {x.dtype}; "
            "quantize with jaxgan.common.to_uint8 (the loop's sample_fn already does)."
        )
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be uint8 [N, H, W, C] with C = 1 or 3 (channels last), got shape {x.shape}.")
    if num is not None and len(x) != num:
        raise ValueError(f"sample_fn({num}, seed) returned {len(x)} {what}; it must return exactly num.")
    return x


def _sample(sample_fn: SampleFn, num: int, seed: int) -> np.ndarray:
    return check_samples(sample_fn(num, seed), num=num, what="generated samples")


def _check_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in INCEPTION_METRICS]
    if not metrics or unknown:
        raise ValueError(f"Unknown Inception metrics {unknown or '(none given)'}; choose from {INCEPTION_METRICS}.")
    return tuple(dict.fromkeys(metrics))  # unique, in the order given


# ---------------------------------------------------------------- metrics from features


def inception_metrics(
    fake_features: np.ndarray,
    *,
    metrics: Sequence[str],
    real_features: np.ndarray | None = None,
    real_stats: stats.FeatureStats | None = None,
    fc: dict | None = None,
    seed: int = 0,
    kid_subsets: int = kid.KID_SUBSETS,
    kid_subset_size: int = kid.KID_SUBSET_SIZE,
    k_precision_recall: int = prdc.PRECISION_RECALL_K,
    k_density_coverage: int = prdc.DENSITY_COVERAGE_K,
) -> dict[str, float]:
    """The requested metrics of ONE set of fake features [N, D] against the real ones.

    fid needs `real_stats` or `real_features`; kid and precision/recall/density/
    coverage need `real_features`; is needs 2048-d features and the classifier
    `fc` (`weights.load_inception_params` of pytorch-fid's .pth). Keys: fid; kid,
    kid_std; precision, recall, density, coverage; is, is_std. KID subsets are
    drawn with numpy default_rng(seed).
    """
    metrics = _check_metrics(metrics)
    fake = np.asarray(fake_features)
    out: dict[str, float] = {}
    needs_features = [m for m in metrics if m not in ("fid", "is")]
    if needs_features and real_features is None:
        raise ValueError(
            f"{needs_features} need the real features, not only their statistics; pass real images or real features."
        )
    if "fid" in metrics:
        if real_stats is None:
            if real_features is None:
                raise ValueError("FID needs real statistics or real features.")
            real_stats = stats.feature_stats(real_features)
        fake_stats = stats.feature_stats(fake)
        out["fid"] = stats.frechet_distance(real_stats.mean, real_stats.cov, fake_stats.mean, fake_stats.cov)
    if "kid" in metrics:
        k = kid.kernel_inception_distance(
            real_features, fake, num_subsets=kid_subsets, max_subset_size=kid_subset_size, seed=seed
        )
        out["kid"], out["kid_std"] = k["kid_mean"], k["kid_std"]
    wanted = [m for m in PRDC_METRICS if m in metrics]
    if wanted:
        p = prdc.prdc(real_features, fake, k_precision_recall=k_precision_recall, k_density_coverage=k_density_coverage)
        out.update({m: p[m] for m in wanted})
    if "is" in metrics:
        if fc is None:
            raise ValueError(
                "The Inception Score needs the 1008-way classifier, which the default FID weights "
                "lack. " + IS_WEIGHTS_HINT
            )
        logits = np.asarray(inception.classifier_logits(fc, fake.astype(np.float32)))
        s = inception_score.inception_score(logits, from_logits=True)
        out["is"], out["is_std"] = s["is_mean"], s["is_std"]
    return out


# ---------------------------------------------------------------- reference features cache


def cached_reference_features(
    extractor: fid_lib.InceptionFeatures,
    images: Any,
    *,
    dataset: str,
    split: str,
    resolution: int | tuple,
    n: int | None = None,
    options: dict | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, str]:
    """Real-image features [n, D], cached like `fid.reference_stats` (same key, kind "features").

    KID and precision/recall need the features themselves, not only their
    moments. `images`: a uint8 array or an iterable of uint8 batches (read batch
    by batch), or a zero-arg callable returning either (not called on a cache
    hit). Returns (features, a one-line description).
    """
    key, spec = fid_lib.reference_key(
        dataset=dataset,
        split=split,
        resolution=resolution,
        resize=extractor.resize,
        n=n,
        feature_dim=extractor.feature_dim,
        weights_sha256=extractor.weights_sha256,
        options={**(options or {}), "kind": "features", "features_format": FEATURES_FORMAT_VERSION},
    )
    path = weights.cache_dir(cache_dir) / "fid_features" / f"{dataset}-{split}-{key[:20]}.npz"
    description = f"{dataset}/{split} {resolution}px n={'all' if n is None else n} [{key[:12]}]"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(z["spec"].tobytes().decode()) == spec:
                    return z["features"], description
            log.warning("Reference features %s do not match their key; recomputing.", path)
        except Exception as e:  # a corrupt cache entry is recomputed, never trusted
            log.warning("Unreadable reference features %s (%s); recomputing.", path, e)
    log.info("Computing reference features for %s -> %s", description, path)
    features = fid_lib.extract_features(extractor, images, max_images=n, what="real images")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, features=features, spec=np.frombuffer(json.dumps(spec, sort_keys=True).encode(), np.uint8))
    os.replace(tmp, path)
    return features, description


# ---------------------------------------------------------------- evaluators


class InceptionEvaluator:
    """fid / kid / precision / recall / density / coverage / is from one Inception feature extraction.

    Reference (exactly one): `reference_images` (uint8 [N, H, W, 1|3], an
    iterable of such batches, or a zero-arg callable returning either, read batch
    by batch; cached on disk under `dataset`/`split`/
    `resolution` when `dataset` is given: statistics via `fid.reference_stats`
    when fid alone needs them, else features via `cached_reference_features`; without
    `dataset` kept in memory), `reference_features` ([N, D]), or
    `reference_stats` (a `stats.FeatureStats`, e.g. from `fid.reference_stats`;
    enough for fid only). `num_reference` takes the first n reference images.
    Each call draws `num_samples` samples with `seed`, extracts their features
    once and computes every metric from them (`inception_metrics`). The
    protocol of the values (weights, resize, feature_dim, n_real, n_fake,
    reference, seed, KID/PRDC settings) is in `protocol` / `last_protocol`.
    `extractor` defaults to a 2048-d pytorch-fid `fid.InceptionFeatures` on the
    weights at `weights_path` (the fetched default when None).
    """

    def __init__(
        self,
        *,
        metrics: Sequence[str] = ("fid",),
        num_samples: int = 10_000,
        seed: int = 0,
        reference_images: Any = None,
        reference_features: Any = None,
        reference_stats: stats.FeatureStats | None = None,
        num_reference: int | None = None,
        reference_name: str | None = None,
        dataset: str | None = None,
        split: str = "train",
        resolution: int | tuple | None = None,
        cache_dir: str | os.PathLike | None = None,
        extractor: fid_lib.InceptionFeatures | None = None,
        fc: dict | None = None,
        weights_path: str | os.PathLike | None = None,
        feature_dim: int = 2048,
        resize: str = "pytorch_fid",
        batch_size: int = 50,
        kid_subsets: int = kid.KID_SUBSETS,
        kid_subset_size: int = kid.KID_SUBSET_SIZE,
    ):
        self.metrics = _check_metrics(metrics)
        given = [
            n
            for n, v in (
                ("reference_images", reference_images),
                ("reference_features", reference_features),
                ("reference_stats", reference_stats),
            )
            if v is not None
        ]
        if len(given) > 1 or (not given and self.metrics != ("is",)):
            raise ValueError(
                f"Give exactly one of reference_images, reference_features, reference_stats; got {given or 'none'}."
            )
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (10k or 50k is standard for FID), got {num_samples}.")
        if extractor is None:
            variables, meta = weights.load_inception_params(weights_path)
            fc = variables.get("fc") if fc is None else fc
            extractor = fid_lib.InceptionFeatures(
                variables, weights_meta=meta, resize=resize, feature_dim=feature_dim, batch_size=batch_size
            )
        if "is" in self.metrics:
            if fc is None:
                raise ValueError(
                    "metrics include 'is', but these Inception weights have no classifier. " + IS_WEIGHTS_HINT
                )
            if extractor.feature_dim != 2048:
                raise ValueError(
                    f"The Inception Score needs the 2048-d pool features, got feature_dim={extractor.feature_dim}."
                )
        self.extractor, self.fc = extractor, fc
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.kid_subsets, self.kid_subset_size = int(kid_subsets), int(kid_subset_size)
        self.real_features, self.real_stats = None, None
        if not given:  # the Inception Score alone compares with nothing
            reference = "none (is)"
        elif reference_stats is not None:
            needs = [m for m in self.metrics if m not in ("fid", "is")]
            if needs:
                raise ValueError(
                    f"{needs} need reference features, not only statistics; pass reference_images "
                    "or reference_features."
                )
            if reference_stats.mean.shape != (extractor.feature_dim,):
                raise ValueError(
                    f"reference_stats are {reference_stats.mean.shape[0]}-d, the extractor gives "
                    f"{extractor.feature_dim}-d features."
                )
            self.real_stats, reference = reference_stats, reference_name or "reference statistics given"
        elif reference_features is not None:
            f = np.asarray(reference_features)
            if f.ndim != 2 or f.shape[1] != extractor.feature_dim:
                raise ValueError(f"reference_features must be [N, {extractor.feature_dim}], got shape {f.shape}.")
            self.real_features, reference = f, reference_name or "reference features given"
        elif dataset is not None:
            if resolution is None:
                if callable(reference_images) or not hasattr(reference_images, "shape"):
                    raise ValueError(
                        "Pass resolution= with a callable or batched reference_images: it names the cache entry, "
                        "which is looked up before the images are loaded."
                    )
                resolution = check_samples(reference_images, what="reference images").shape[1:3]
            resolution = (resolution, resolution) if np.ndim(resolution) == 0 else resolution
            cached = dict(
                dataset=dataset,
                split=split,
                resolution=tuple(int(r) for r in resolution),
                n=num_reference,
                cache_dir=cache_dir,
            )
            if set(self.metrics) <= {"fid", "is"}:  # moments suffice: fid.py's statistics cache
                self.real_stats, reference = fid_lib.reference_stats(extractor, reference_images, **cached)
            else:
                self.real_features, reference = cached_reference_features(extractor, reference_images, **cached)
            reference = reference_name or reference
        else:
            self.real_features = fid_lib.extract_features(
                extractor, reference_images, max_images=num_reference, what="reference images"
            )
            reference = reference_name or "reference images given"
        if self.real_features is not None:
            self.real_stats = stats.feature_stats(self.real_features)
        self.reference = reference
        self.protocol = self._protocol(self.num_samples)
        self.last_protocol: dict | None = None

    def _protocol(self, n_fake: int) -> dict:
        ex = self.extractor
        n_real = int(self.real_stats.n) if self.real_stats is not None else 0
        p = fid_lib.FIDProtocol(
            weights_id=ex.weights_id,
            weights_sha256=ex.weights_sha256,
            resize=ex.resize,
            feature_dim=ex.feature_dim,
            n_real=n_real,
            n_fake=int(n_fake),
            reference=self.reference,
        ).as_dict()
        p.update(metrics=list(self.metrics), seed=self.seed)
        if "kid" in self.metrics:
            p.update(kid_subsets=self.kid_subsets, kid_subset_size=self.kid_subset_size)
        if "is" in self.metrics:
            p.update(is_splits=inception_score.IS_SPLITS, is_logits="fc with bias (the 2015 TF graph's softmax)")
        if any(m in self.metrics for m in PRDC_METRICS):
            p.update(k_precision_recall=prdc.PRECISION_RECALL_K, k_density_coverage=prdc.DENSITY_COVERAGE_K)
        return p

    def evaluate_images(self, images: Any) -> dict[str, float]:
        """The metrics of given uint8 images [N, H, W, 1|3]; sets `last_protocol`."""
        x = check_samples(images, what="generated samples")
        if len(x) < 2:
            raise ValueError(f"Need at least 2 generated samples, got {len(x)}.")
        fake = self.extractor(x)
        values = inception_metrics(
            fake,
            metrics=self.metrics,
            real_features=self.real_features,
            real_stats=self.real_stats,
            fc=self.fc,
            seed=self.seed,
            kid_subsets=self.kid_subsets,
            kid_subset_size=self.kid_subset_size,
        )
        self.last_protocol = self._protocol(len(x))
        return values

    def __call__(self, sample_fn: SampleFn, step: int) -> dict[str, float]:
        values = self.evaluate_images(_sample(sample_fn, self.num_samples, self.seed))
        log.info("step %d: %s (protocol %s)", step, values, self.last_protocol)
        return values


class DigitsFrechetEvaluator:
    """FCD: the Frechet distance on the shipped digits classifier's 64-d features, with its floor.

    Reference defaults to the digits train split (exactly the GAN's training
    images); the floor is the same distance from held-out digits to the
    reference, computed once here, from as many held-out images as samples
    (the estimator is biased in N, so only equal N compares): `num_samples`
    defaults to the whole held-out split (355); fewer samples take the first
    num_samples held-out images; more are warned about. `stacked=True`: Stacked
    digits (3 channels, 192-d features); reference = `num_reference` train
    samples (seed), held-out = num_samples test samples (seed + 1), num_samples
    defaulting to 10k. A custom `reference_images` without `heldout_images`
    reports no floor.
    """

    def __init__(
        self,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        stacked: bool = False,
        reference_images: Any = None,
        heldout_images: Any = None,
        num_reference: int = 10_000,
        params: Any = None,
    ):
        self.seed, self.stacked, self.params = int(seed), bool(stacked), params
        if reference_images is None and heldout_images is None and not stacked:
            heldout_images = digits_classifier.load_split("test")[0][..., None]
            if num_samples is not None:
                heldout_images = heldout_images[:num_samples]
        if num_samples is None:
            num_samples = 10_000 if stacked else len(heldout_images) if heldout_images is not None else 1000
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}.")
        self.num_samples = int(num_samples)
        if reference_images is None:
            reference_images = (
                digits_classifier.make_stacked_digits(num_reference, seed=seed, split="train")[0]
                if stacked
                else digits_classifier.load_split("train")[0][..., None]
            )
            if heldout_images is None:  # stacked
                heldout_images = digits_classifier.make_stacked_digits(self.num_samples, seed=seed + 1, split="test")[0]
            self.reference = "digits/train" + (" stacked" if stacked else "")
        else:
            self.reference = "reference images given"
        self.real_stats = self._stats(check_samples(reference_images, what="reference images"))
        self.floor, self.n_heldout = None, 0
        if heldout_images is not None:
            self.floor = self._distance(check_samples(heldout_images, what="held-out images"))
            self.n_heldout = len(heldout_images)
            if self.n_heldout != self.num_samples:
                log.warning(
                    "FCD: %d samples vs a floor from %d held-out images; the estimator is biased in N, "
                    "so they are not comparable.",
                    self.num_samples,
                    self.n_heldout,
                )
        else:
            log.info("FCD: custom reference without held-out images: no floor reported.")

    def _stats(self, images: np.ndarray) -> stats.FeatureStats:
        return stats.feature_stats(digits_classifier.digits_features(images, stacked=self.stacked, params=self.params))

    def _distance(self, images: np.ndarray) -> float:
        s = self._stats(images)
        return stats.frechet_distance(self.real_stats.mean, self.real_stats.cov, s.mean, s.cov)

    def evaluate_images(self, images: Any) -> dict[str, float]:
        """{'fcd': value, 'fcd_floor': real-vs-real floor (when known)} of uint8 images."""
        x = check_samples(images, what="generated samples")
        if len(x) < 2:
            raise ValueError(f"Need at least 2 generated samples, got {len(x)}.")
        out = {"fcd": self._distance(x)}
        if self.floor is not None:
            out["fcd_floor"] = self.floor
        return out

    def __call__(self, sample_fn: SampleFn, step: int) -> dict[str, float]:
        del step
        return self.evaluate_images(_sample(sample_fn, self.num_samples, self.seed))


class MSSSIMEvaluator:
    """Mean pairwise MS-SSIM of generated samples, beside the real images' (`diversity.msssim_diversity`).

    Lower means more diverse; a generator that collapses scores above the real
    data. Both use `num_pairs` random pairs drawn with `seed`; the real value
    is computed once here.
    """

    def __init__(self, *, real_images: Any, num_samples: int = 1000, num_pairs: int = 1000, seed: int = 0):
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 to form pairs, got {num_samples}.")
        self.num_samples, self.num_pairs, self.seed = int(num_samples), int(num_pairs), int(seed)
        real = check_samples(real_images, what="real images")
        self.real = diversity.msssim_diversity(real, num_pairs=self.num_pairs, seed=self.seed)

    def evaluate_images(self, images: Any) -> dict[str, float]:
        x = check_samples(images, what="generated samples")
        return {
            "msssim": diversity.msssim_diversity(x, num_pairs=self.num_pairs, seed=self.seed),
            "msssim_real": self.real,
        }

    def __call__(self, sample_fn: SampleFn, step: int) -> dict[str, float]:
        del step
        return self.evaluate_images(_sample(sample_fn, self.num_samples, self.seed))


class ModesEvaluator:
    """Mode coverage on a known mixture: the VEEGAN/PacGAN protocols (`jaxgan.metrics.modes`).

    `data="ring"` or `"grid"`: `num_samples` (the protocol's 2,500) float 2-D
    points from `sample_fn` -> modes captured, fraction of high-quality
    samples (within 3 sigma of a mean) and the reverse KL of the high-quality
    mode histogram to uniform (PacGAN table 1). `data="stacked_digits"`:
    26,000 uint8 3-channel images -> modes of 1000 and KL (PacGAN tables 2-3),
    written as `modes` and `reverse_kl`.
    """

    def __init__(self, *, data: str = "ring", num_samples: int | None = None, seed: int = 0, params: Any = None):
        if data not in (*modes_lib.MIXTURES, "stacked_digits"):
            raise ValueError(f"ModesEvaluator: data={data!r}; valid: {sorted(modes_lib.MIXTURES)} or 'stacked_digits'.")
        self.data, self.seed, self.params = data, int(seed), params
        default = digits_classifier.STACKED_PROTOCOL_SAMPLES if data == "stacked_digits" else modes_lib.PROTOCOL_SAMPLES
        self.num_samples = int(num_samples or default)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")

    def evaluate_samples(self, samples: Any) -> dict[str, float]:
        """{'modes', 'high_quality' (2-D only), 'reverse_kl'} of points [N, 2] or uint8 images [N, H, W, 3]."""
        x = np.asarray(samples)
        if self.data == "stacked_digits":
            out = digits_classifier.stacked_digits_modes(check_samples(x, what="generated samples"), params=self.params)
            return {"modes": float(out["modes"]), "reverse_kl": out["kl"]}
        if x.dtype == np.uint8:
            raise TypeError(
                "ModesEvaluator on 2-D mixtures needs float points [N, 2], got uint8 samples: the "
                "sample_fn quantized them as images; give it the generator's raw float output."
            )
        out = modes_lib.mode_coverage(x, self.data)
        return {"modes": float(out["modes"]), "high_quality": out["high_quality"], "reverse_kl": out["reverse_kl"]}

    def __call__(self, sample_fn: SampleFn, step: int) -> dict[str, float]:
        del step
        x = np.asarray(sample_fn(self.num_samples, self.seed))
        if len(x) != self.num_samples:
            raise ValueError(
                f"sample_fn({self.num_samples}, seed) returned {len(x)} samples; it must return exactly num."
            )
        return self.evaluate_samples(x)


# ---------------------------------------------------------------- registry


EVALUATORS: Mapping[str, Callable[..., Any]] = {
    "fcd": DigitsFrechetEvaluator,
    "inception": InceptionEvaluator,
    "fid": functools.partial(InceptionEvaluator, metrics=("fid",)),
    "kid": functools.partial(InceptionEvaluator, metrics=("kid",)),
    "prdc": functools.partial(InceptionEvaluator, metrics=PRDC_METRICS),
    "is": functools.partial(InceptionEvaluator, metrics=("is",)),
    "msssim": MSSSIMEvaluator,
    "modes": ModesEvaluator,
}


def make_evaluator(name: str, **kwargs: Any) -> Any:
    """The evaluator registered as `name`, built with keyword arguments."""
    if name not in EVALUATORS:
        raise ValueError(f"Unknown evaluator {name!r}; valid names: {sorted(EVALUATORS)}.")
    return EVALUATORS[name](**kwargs)
