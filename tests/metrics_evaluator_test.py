"""Evaluators and tools/metrics.py against independent computations of the same metrics.

- Each evaluator's values equal the metric computed directly on the same
  samples: FCD and FID by numpy/scipy (pytorch-fid's sqrtm formula), KID and
  PRDC by the metric functions on features extracted outside the evaluator,
  IS by a numpy softmax/KL written here, MS-SSIM by `msssim_diversity`.
- All Inception metrics come from ONE extraction of the samples (counted).
- tools/metrics.py end to end in a subprocess on small .npz files with random
  64-d Inception weights written here (hermetic: no download), and its errors.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import digits_classifier, diversity, evaluator, fid, inception, kid, modes, prdc, stats, weights
from tests.helpers import golden_elefant, random_inception_variables, real_inception_trunk

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _frechet_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's formula (scipy sqrtm) on two feature sets: an independent Frechet distance.

    Units constant in both sets (dead ReLUs) add only their mean difference; they are
    dropped from the covariances, whose product sqrtm would otherwise be singular.
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    live = (a.std(0) > 0) | (b.std(0) > 0)
    s1, s2 = np.cov(a[:, live], rowvar=False), np.cov(b[:, live], rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(mean_term + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


class CountingExtractor:
    """Wraps an extractor and counts how many images it was asked for."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        for a in ("resize", "feature_dim", "weights_id", "weights_sha256"):
            setattr(self, a, getattr(inner, a))

    def __call__(self, images):
        self.calls.append(len(images))
        return self.inner(images)


class ProjectionExtractor:
    """A stand-in 2048-d 'Inception': a fixed random projection of the flattened image (for IS wiring)."""

    resize, feature_dim, weights_id, weights_sha256 = "pytorch_fid", 2048, "projection", "0" * 16

    def __init__(self, size: int):
        self.w = np.random.default_rng(7).normal(size=(size, 2048)).astype(np.float32) / 100

    def __call__(self, images):
        x = np.asarray(images, np.float32).reshape(len(images), -1) / 255.0
        return np.maximum(x @ self.w, 0.0)


@pytest.fixture(scope="module")
def cheap_extractor():
    meta = {"weights_id": "random-test-weights", "trunk_sha256": "0123456789abcdef" * 4}
    return fid.InceptionFeatures(random_inception_variables(), weights_meta=meta, feature_dim=64, batch_size=8)


def _images(seed: int, n: int, size: int = 16, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def _sampler(images: np.ndarray, calls: list):
    def sample_fn(num, seed):
        calls.append((num, seed))
        return images[np.random.default_rng(seed).permutation(len(images))[:num]]

    return sample_fn


# ---------------------------------------------------------------- evaluators vs direct calls


def test_digits_frechet_evaluator_value_and_floor_match_direct_computation():
    train, _ = digits_classifier.load_split("train")
    test, _ = digits_classifier.load_split("test")
    # "Generated" digits: held-out digits with noise (so the value is above the floor), 1 channel.
    noisy = np.clip(test.astype(int) + np.random.default_rng(0).integers(-40, 41, test.shape), 0, 255)
    fakes = noisy.astype(np.uint8)[..., None]
    calls = []
    ev = evaluator.DigitsFrechetEvaluator(seed=3)
    assert ev.num_samples == len(test) == 355  # the floor's N by default
    out = ev(_sampler(fakes, calls), step=10)
    assert calls == [(355, 3)]
    got_fakes = fakes[np.random.default_rng(3).permutation(len(fakes))[:355]]
    f_train = digits_classifier.digits_features(train)
    want = _frechet_sqrtm(f_train, digits_classifier.digits_features(got_fakes))
    want_floor = _frechet_sqrtm(f_train, digits_classifier.digits_features(test))
    assert out["fcd"] == pytest.approx(want, rel=1e-4)
    assert out["fcd_floor"] == pytest.approx(want_floor, rel=1e-4)
    assert out["fcd_floor"] == pytest.approx(digits_classifier.frechet_digits_floor(), rel=1e-9)
    assert out["fcd"] > 1.5 * out["fcd_floor"]
    # Fewer samples: the floor takes as many held-out images.
    ev50 = evaluator.DigitsFrechetEvaluator(num_samples=50)
    assert ev50.floor == pytest.approx(_frechet_sqrtm(f_train, digits_classifier.digits_features(test[:50])), rel=1e-4)
    # A custom reference without held-out images reports no floor.
    ev2 = evaluator.DigitsFrechetEvaluator(reference_images=train[..., None], num_samples=50)
    assert set(ev2.evaluate_images(fakes[:50])) == {"fcd"}


def test_inception_evaluator_all_metrics_from_one_extraction(cheap_extractor):
    real = _images(1, 24)
    fakes = _images(2, 40, channels=1)  # gray: repeated to RGB
    ex = CountingExtractor(cheap_extractor)
    metrics = ("fid", "kid", "precision", "recall", "density", "coverage")
    ev = evaluator.InceptionEvaluator(
        metrics=metrics, num_samples=16, seed=5, reference_images=real, extractor=ex, kid_subsets=7, kid_subset_size=10
    )
    assert ex.calls == [24]  # the reference, once, at construction
    calls = []
    out = ev(_sampler(fakes, calls), step=1)
    assert calls == [(16, 5)] and ex.calls == [24, 16]  # one extraction of the samples for all six metrics
    samples = fakes[np.random.default_rng(5).permutation(40)[:16]]
    f_real = cheap_extractor(real)
    f_fake = cheap_extractor(np.repeat(samples, 3, axis=-1))
    assert out["fid"] == pytest.approx(_frechet_sqrtm(f_real, f_fake), rel=1e-4)
    k = kid.kernel_inception_distance(f_real, f_fake, num_subsets=7, max_subset_size=10, seed=5)
    assert (out["kid"], out["kid_std"]) == pytest.approx((k["kid_mean"], k["kid_std"]), rel=1e-6)
    p = prdc.prdc(f_real, f_fake)
    assert {m: out[m] for m in evaluator.PRDC_METRICS} == pytest.approx(p)
    assert ev.last_protocol == {
        "weights_id": "random-test-weights",
        "weights_sha256": "0123456789abcdef",
        "resize": "pytorch_fid",
        "feature_dim": 64,
        "n_real": 24,
        "n_fake": 16,
        "reference": "reference images given",
        "metrics": list(metrics),
        "seed": 5,
        "kid_subsets": 7,
        "kid_subset_size": 10,
        "k_precision_recall": 3,
        "k_density_coverage": 5,
    }


def test_inception_evaluator_reference_features_are_cached(cheap_extractor, tmp_path):
    real = _images(3, 12)
    calls = []

    def source():
        calls.append(1)
        return real

    kw = dict(num_samples=8, extractor=cheap_extractor, dataset="toy", cache_dir=tmp_path)
    ev1 = evaluator.InceptionEvaluator(metrics=("fid", "kid"), reference_images=real, num_reference=10, **kw)
    # FID alone needs only moments: fid.py's statistics cache, found again without loading the images.
    ev_fid = evaluator.InceptionEvaluator(reference_images=real, num_reference=10, **kw)
    ev_fid2 = evaluator.InceptionEvaluator(reference_images=source, num_reference=10, resolution=16, **kw)
    assert calls == [] and len(list((tmp_path / "fid_stats").glob("toy-train-*.npz"))) == 1
    np.testing.assert_allclose(
        ev_fid2.real_stats.cov, np.cov(cheap_extractor(real[:10]), rowvar=False), rtol=1e-6, atol=1e-9
    )
    assert ev_fid.reference == ev_fid2.reference
    with pytest.raises(ValueError, match="Pass resolution= with a callable"):
        evaluator.InceptionEvaluator(reference_images=source, **kw)
    f, desc = evaluator.cached_reference_features(
        cheap_extractor, source, dataset="toy", split="train", resolution=(16, 16), n=10, cache_dir=tmp_path
    )
    assert calls == [] and "toy/train" in desc  # a hit: the images are never loaded
    np.testing.assert_allclose(f, cheap_extractor(real[:10]), rtol=1e-6)
    np.testing.assert_array_equal(ev1.real_features, f)
    evaluator.cached_reference_features(
        cheap_extractor, source, dataset="toy", split="train", resolution=(16, 16), n=12, cache_dir=tmp_path
    )
    assert calls == [1]  # another n is another entry
    for p in (tmp_path / "fid_features").glob("*.npz"):
        p.write_bytes(b"garbage")  # corrupt entries are recomputed, not trusted
    evaluator.cached_reference_features(
        cheap_extractor, source, dataset="toy", split="train", resolution=(16, 16), n=12, cache_dir=tmp_path
    )
    assert calls == [1, 1]


def test_inception_evaluator_fid_from_cached_reference_stats(cheap_extractor, tmp_path):
    real, fakes = _images(4, 10), _images(5, 6)
    s, desc = fid.reference_stats(
        cheap_extractor, real, dataset="toy", split="train", resolution=16, cache_dir=tmp_path
    )
    ev = evaluator.InceptionEvaluator(reference_stats=s, reference_name=desc, num_samples=6, extractor=cheap_extractor)
    out = ev.evaluate_images(fakes)
    assert out["fid"] == pytest.approx(_frechet_sqrtm(cheap_extractor(real), cheap_extractor(fakes)), rel=1e-4)
    assert ev.last_protocol["reference"] == desc and ev.last_protocol["n_real"] == 10


def test_inception_score_from_the_classifier_on_the_same_features():
    fakes = _images(6, 20, size=8)
    ex = ProjectionExtractor(8 * 8 * 3)
    rng = np.random.default_rng(8)
    fc = {
        "kernel": rng.normal(size=(2048, 1008)).astype(np.float32) * 0.05,
        "bias": rng.normal(size=1008).astype(np.float32),
    }
    ev = evaluator.make_evaluator("is", num_samples=20, extractor=ex, fc=fc)
    out = ev.evaluate_images(fakes)
    logits = ex(fakes).astype(np.float64) @ fc["kernel"].astype(np.float64) + fc["bias"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0))), axis=1))) for q in np.split(p, 10)]
    assert (out["is"], out["is_std"]) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-4)
    with pytest.raises(ValueError, match="no classifier.*fetch_inception.py --pth"):
        evaluator.InceptionEvaluator(metrics=("is",), extractor=ex)


def test_msssim_evaluator_reports_fake_and_real():
    real = _images(9, 12, size=32, channels=1)
    collapsed = np.repeat(real[:1], 12, axis=0)  # one image repeated: MS-SSIM 1
    ev = evaluator.make_evaluator("msssim", real_images=real, num_samples=12, num_pairs=30, seed=2)
    out = ev(_sampler(collapsed, []), step=0)
    assert out["msssim"] == pytest.approx(1.0)
    assert out["msssim_real"] == pytest.approx(diversity.msssim_diversity(real, num_pairs=30, seed=2))
    assert out["msssim_real"] < 0.5


# ---------------------------------------------------------------- the CPU speed option keeps the features


def test_cpu_compiler_options_keep_golden_features_and_reach_the_extractor(cheap_extractor):
    """fid.CPU_COMPILER_OPTIONS (YNNPACK fusions off) still gives jax-fid's golden features."""
    x = jax.ShapeDtypeStruct((8, 16, 16, 3), np.uint8, sharding=cheap_extractor._batch_sharding)
    hlo = cheap_extractor._fn.lower(cheap_extractor._variables, x).compile().as_text()
    assert "convolution" in hlo and "ynn_fusion" not in hlo  # the option reached the extractor's jit
    xla_defaults = fid.InceptionFeatures(
        random_inception_variables(), weights_meta={}, feature_dim=64, batch_size=8, compiler_options={}
    )
    hlo = xla_defaults._fn.lower(xla_defaults._variables, x).compile().as_text()
    assert "ynn_fusion" in hlo  # the negative control: XLA's defaults do use the YNNPACK fusions here
    imgs = _images(14, 8)
    np.testing.assert_allclose(cheap_extractor(imgs), xla_defaults(imgs), rtol=1e-5, atol=1e-5)
    trunk = real_inception_trunk()  # fetched on first use: a fresh clone runs this test first
    img, want = golden_elefant()
    apply = jax.jit(inception.InceptionV3().apply, compiler_options=fid.CPU_COMPILER_OPTIONS)
    diff = np.abs(np.asarray(apply(trunk, img)) - want)
    assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())


# ---------------------------------------------------------------- registry and bad input


def test_registry_and_errors(cheap_extractor):
    with pytest.raises(ValueError, match=r"Unknown evaluator 'fidd'; valid names: \['fcd', 'fid', 'inception'"):
        evaluator.make_evaluator("fidd")
    f = np.random.default_rng(0).normal(size=(10, 64))
    ev = evaluator.make_evaluator("fid", reference_features=f, extractor=cheap_extractor, num_samples=4)
    assert isinstance(ev, evaluator.InceptionEvaluator) and ev.metrics == ("fid",)
    with pytest.raises(ValueError, match="Unknown Inception metrics.*'fdi'"):
        evaluator.InceptionEvaluator(metrics=("fdi",), reference_features=f, extractor=cheap_extractor)
    with pytest.raises(ValueError, match="exactly one of"):
        evaluator.InceptionEvaluator(extractor=cheap_extractor)
    s = stats.feature_stats(f)
    with pytest.raises(ValueError, match="need reference features, not only statistics"):
        evaluator.InceptionEvaluator(metrics=("fid", "kid"), reference_stats=s, extractor=cheap_extractor)
    with pytest.raises(ValueError, match=r"must be \[N, 64\]"):
        evaluator.InceptionEvaluator(reference_features=f[:, :10], extractor=cheap_extractor)
    with pytest.raises(TypeError, match="uint8.*to_uint8"):
        ev(lambda n, seed: np.zeros((n, 8, 8, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"returned 3 generated samples; it must return exactly num"):
        ev(lambda n, seed: np.zeros((3, 8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="channels last"):
        ev(lambda n, seed: np.zeros((n, 3, 8, 8), np.uint8), 0)
    with pytest.raises(ValueError, match="Need at least 2 generated samples, got 1"):
        ev.evaluate_images(np.zeros((1, 8, 8, 3), np.uint8))


# ---------------------------------------------------------------- tools/metrics.py end to end


def _tool(*args, cache_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAXGAN_CACHE_DIR": str(cache_dir), "XLA_FLAGS": ""}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "metrics.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tool_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tool")
    variables = random_inception_variables(11)
    variables_2048 = jax.tree_util.tree_map(np.asarray, variables)
    full = random_inception_variables(11, feature_dim=2048)  # the file holds the whole trunk
    full = jax.tree_util.tree_map(np.asarray, full)
    for part in ("params", "batch_stats"):  # same stem as the 64-d variables
        full[part].update(variables_2048[part])
    wpath = weights.save_params(full, d / "random_weights.npz", source="test", source_hash="none")
    a, b = _images(12, 20), _images(13, 24, channels=1)
    np.savez(d / "a.npz", images=a)
    np.savez(d / "b.npz", images=b[..., 0])  # [N, H, W] is accepted as gray
    np.savez(d / "float.npz", images=a.astype(np.float32))
    np.savez(d / "points.npz", points=modes.ring_mixture().means[[0, 0, 3, 5]].astype(np.float32))
    return d, wpath, variables, a, b


def test_tool_fid_and_prdc_match_in_process_computation(tool_files):
    d, wpath, variables, a, b = tool_files
    meta = {"weights_id": "x", "trunk_sha256": "0" * 64}
    ex = fid.InceptionFeatures(variables, weights_meta=meta, feature_dim=64, batch_size=8)
    f_a, f_b = ex(a[:18]), ex(b[:18])
    r = _tool(
        "--metric=fid",
        f"--a={d / 'a.npz'}",
        f"--b={d / 'b.npz'}",
        "--num=18",
        "--num_real=18",
        "--feature_dim=64",
        "--batch_size=6",
        f"--weights={wpath}",
        cache_dir=d,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["fid"] == pytest.approx(_frechet_sqrtm(f_b, f_a), rel=1e-4)
    p = out["protocol"]
    assert (p["n_real"], p["n_fake"], p["feature_dim"], p["resize"]) == (18, 18, 64, "pytorch_fid")
    trunk = weights.load_params_file(wpath)[1]["trunk_sha256"]
    assert p["weights_sha256"] == trunk[:16] and trunk != weights.DEFAULT_TRUNK_SHA256
    assert p["weights_id"] == f"unverified:{trunk[:16]}"  # a user file with another trunk: never the known id
    # The reference as a folder of gray PNGs: the same images, so the same values as from b.npz.
    from PIL import Image

    folder = d / "b_png"
    folder.mkdir(exist_ok=True)
    for i, img in enumerate(b):
        Image.fromarray(img[..., 0]).save(folder / f"{i:03d}.png")
    r = _tool(
        "--metric=prdc",
        f"--a={d / 'a.npz'}",
        f"--b={folder}",
        "--feature_dim=64",
        "--batch_size=4",
        f"--weights={wpath}",
        cache_dir=d,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    want = prdc.prdc(ex(b), ex(a))
    assert {m: out[m] for m in evaluator.PRDC_METRICS} == pytest.approx(want)


def test_tool_fcd_msssim_modes(tool_files):
    d = tool_files[0]
    test, _ = digits_classifier.load_split("test")
    np.savez(d / "digits.npz", images=test[:100, :, :, None])
    r = _tool("--metric=fcd", f"--a={d / 'digits.npz'}", cache_dir=d)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    train, _ = digits_classifier.load_split("train")
    want = _frechet_sqrtm(digits_classifier.digits_features(train), digits_classifier.digits_features(test[:100]))
    assert out["fcd"] == pytest.approx(want, rel=1e-4) and out["protocol"]["n_fake"] == 100
    # The floor uses as many held-out digits as samples: these samples ARE the first 100 held-out digits.
    assert out["fcd_floor"] == pytest.approx(out["fcd"], rel=1e-9) and out["protocol"]["n_floor"] == 100
    r = _tool("--metric=msssim", f"--a={d / 'a.npz'}", "--num_pairs=10", cache_dir=d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["msssim"] == pytest.approx(
        diversity.msssim_diversity(tool_files[3], num_pairs=10, seed=0)
    )
    r = _tool("--metric=modes", f"--a={d / 'points.npz'}", "--data=ring", cache_dir=d)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert (out["modes"], out["high_quality"], out["num_modes"]) == (3, 1.0, 8)  # means 0, 3, 5 hit exactly


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric=fid", "--a={d}/missing.npz", "--b={d}/b.npz"], "missing.npz: no such file"),
        (["--metric=fid", "--a={d}/points.npz", "--b={d}/b.npz"], "has no 'images' array"),
        (["--metric=fid", "--a={d}/float.npz", "--b={d}/b.npz"], "must be uint8"),
        (["--metric=fid", "--a={d}/a.npz", "--b={d}/b.npz", "--num=1"], "needs at least 2 samples in --a, got 1"),
        (["--metric=prdc", "--a={d}/a.npz", "--b={d}/b.npz", "--num_real=5"], "needs at least 6 samples in --b"),
        (["--metric=fid", "--a={d}/a.npz", "--b={d}/b.npz", "--num=30"], "--num=30, but --a holds only 20"),
        (["--metric=fid", "--a={d}/a.npz", "--b={d}/b.npz", "--num_real=30"], "--num_real=30, but --b holds only 24"),
        (["--metric=modes", "--a={d}/points.npz"], "needs --data"),
        (["--metric=is", "--a={d}/a.npz", "--weights={w}"], "no classifier"),
        (["--metric=fid", "--a={d}/a.npz", "--b={d}/b.npz", "--weights={d}/nope.npz"], "weights unavailable"),
    ],
)
def test_tool_errors_exit_nonzero_with_a_message(tool_files, args, message):
    d, wpath = tool_files[:2]
    r = _tool(*[a.format(d=d, w=wpath) for a in args], cache_dir=d)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-1000:])
    assert message in r.stderr and r.stdout == ""


def test_reference_features_are_extracted_batch_by_batch(cheap_extractor, tmp_path):
    real = _images(6, 13)
    taken = []

    def batches():
        for i in range(0, 13, 4):
            taken.append(i)
            yield real[i : i + 4]

    want = cheap_extractor(real[:10])
    f, _ = evaluator.cached_reference_features(
        cheap_extractor, batches, dataset="toy", split="train", resolution=(16, 16), n=10, cache_dir=tmp_path
    )
    np.testing.assert_allclose(f, want, rtol=1e-6)
    assert taken == [0, 4, 8]  # stops once it has n: the last batch is never read
    ev = evaluator.InceptionEvaluator(
        metrics=("kid",), reference_images=batches(), num_samples=8, extractor=cheap_extractor
    )
    np.testing.assert_allclose(ev.real_features, cheap_extractor(real), rtol=1e-6)
    with pytest.raises(ValueError, match="Asked for 20 real images but the source gave only 13"):
        fid.extract_features(cheap_extractor, batches(), max_images=20, what="real images")
    with pytest.raises(ValueError, match="Pass resolution= with a callable or batched"):
        evaluator.InceptionEvaluator(
            reference_images=batches(), dataset="toy", num_samples=8, extractor=cheap_extractor
        )
