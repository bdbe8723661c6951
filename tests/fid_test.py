"""FID pieces against independent references.

- Streaming float64 stats vs numpy.cov / mean on the concatenated features.
- The Frechet distance vs pytorch-fid's scipy.linalg.sqrtm formula (re-typed
  here from pytorch-fid `fid_score.calculate_frechet_distance`) and closed forms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import stats


def _pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid v0.3.0 `calculate_frechet_distance`, in substance (scipy 1.17 dropped `disp`)."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular (N < d) products are part of the test
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ---------------------------------------------------------------- streaming stats


@pytest.mark.parametrize("sizes", [(7,), (3, 1, 10, 2), (2, 2, 2, 2, 2), (1, 1, 1)])
def test_streaming_stats_match_numpy_on_concatenation(sizes):
    rng = np.random.default_rng(sum(sizes))
    d = 5
    # A large common offset: a raw sum-of-outer-products would lose digits here.
    batches = [(1e4 + rng.normal(size=(b, d)) * [1, 2, 3, 4, 5]).astype(np.float32) for b in sizes]
    acc = stats.StreamingStats(d)
    for b in batches:
        acc.add(b)
    got = acc.finalize()
    x = np.concatenate(batches).astype(np.float64)
    assert got.n == x.shape[0]
    assert got.mean.dtype == np.float64 and got.cov.dtype == np.float64
    np.testing.assert_allclose(got.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(got.cov, np.cov(x, rowvar=False, ddof=1), rtol=1e-9, atol=1e-12)


def test_pure_accumulator_and_merge_equal_one_shot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 4))
    acc_a = stats.add_batch(stats.add_batch(stats.init_moments(4), x[:5]), x[5:9])
    acc_b = stats.add_batch(stats.init_moments(4), x[9:])
    merged = stats.finalize(stats.merge_moments(acc_a, acc_b))
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(merged.cov, np.cov(x, rowvar=False), rtol=1e-12)
    # The pure functions do not mutate their inputs.
    assert acc_a.n == 9 and acc_b.n == 14


def test_stats_errors():
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.StreamingStats(3).add(np.ones((1, 3))).finalize()
    with pytest.raises(ValueError, match=r"2-D array \[batch, dim\]"):
        stats.StreamingStats(3).add(np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="does not match the accumulator's dim 3"):
        stats.StreamingStats(3).add(np.ones((2, 4)))
    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 of 4 feature rows are not finite"):
        stats.StreamingStats(3).add(bad)
    with pytest.raises(ValueError, match="positive int"):
        stats.StreamingStats(0)


# ---------------------------------------------------------------- Frechet distance


def _random_psd(rng, d, n):
    """Sample covariance of n Gaussian draws in d dims: rank min(n - 1, d)."""
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return np.cov(a, rowvar=False)


@pytest.mark.parametrize("d,n1,n2", [(8, 50, 60), (64, 500, 300), (32, 10, 200), (32, 12, 9)])
def test_frechet_distance_matches_pytorch_fid_sqrtm(d, n1, n2):
    rng = np.random.default_rng(d + n1 + n2)
    s1, s2 = _random_psd(rng, d, n1), _random_psd(rng, d, n2)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    got = stats.frechet_distance(mu1, s1, mu2, s2)
    want = _pytorch_fid_reference(mu1, s1, mu2, s2)
    assert got == pytest.approx(want, rel=1e-6)


def _inception_like_features(rng, n, load, *, shift, scale=0.4):
    """Non-negative, heavy-tailed, correlated float32 [n, d] features, like Inception pool features:
    relu of a low-rank Gaussian (decaying loadings, a per-image gamma scale) plus a little noise."""
    z = rng.normal(size=(n, load.shape[0]))
    z[:, 0] += shift
    gain = rng.gamma(4.0, 0.25, size=(n, 1))
    x = gain * (z @ load) + 0.01 * rng.normal(size=(n, load.shape[1])) - 0.1
    return (scale * np.maximum(x, 0.0)).astype(np.float32)


def test_frechet_distance_matches_pytorch_fid_sqrtm_at_2048d_near_singular():
    # N just above d = 2048: the covariances are near-singular and S1 S2 has many tiny eigenvalues, whose
    # square roots pytorch-fid's sqrtm keeps; an eigenvalue cut-off drops them and raises FID past rounding.
    rng = np.random.default_rng(0)
    d, k = 2048, 32
    load = rng.normal(size=(k, d)) / np.arange(1, k + 1)[:, None]
    real = stats.feature_stats(_inception_like_features(rng, 2100, load, shift=0.0))
    fake = stats.feature_stats(_inception_like_features(rng, 2300, load, shift=0.05))
    # pytorch-fid's value, _pytorch_fid_reference on these statistics (scipy's 2048-d sqrtm takes 15-60 s on
    # CI's 2 cores, so its result is kept here; recompute it with that function after changing the draws).
    want = 5.29340796679719
    got = stats.frechet_distance(real.mean, real.cov, fake.mean, fake.cov)
    assert abs(got - want) <= 1e-4 * want + 1e-3, (got, want)


def test_frechet_distance_with_dead_features_matches_pytorch_fid_sqrtm():
    # Features constant in both sets (ReLU units that never fire) give exactly zero rows and columns in both
    # covariances; they change only the mean term. Rank-deficient like this, the result still equals sqrtm's.
    rng = np.random.default_rng(3)
    live = np.maximum(rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)), 0)
    a = np.concatenate([live, np.zeros((300, 12))], axis=1)
    b = np.concatenate(
        [np.maximum(rng.normal(size=(250, 20)) @ rng.normal(size=(20, 20)) + 0.1, 0), np.full((250, 12), 0.5)], axis=1
    )  # dead too, at another constant: only the mean differs
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    got = stats.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(_pytorch_fid_reference(mu1, s1, mu2, s2), rel=1e-9)
    want_live = stats.frechet_distance(mu1[:20], s1[:20, :20], mu2[:20], s2[:20, :20])
    assert got == pytest.approx(want_live + 12 * 0.5**2, rel=1e-12)  # the dead units' mean term, by hand


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    d = 16
    s = _random_psd(rng, d, 40)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Equal covariances: tr(S + S - 2 S) = 0, only the mean term remains.
    assert stats.frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)
    # Commuting diagonal covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a, b = rng.uniform(0, 3, size=d), rng.uniform(0, 3, size=d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert stats.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-12)
    # A rank-1 x rank-1 case by hand: S1 = u u^T, S2 = v v^T -> tr sqrt(S1 S2) = |u.v|. The product is
    # singular: sqrtm (pytorch-fid's) and eigh (ours) both take roots of its 15 zero eigenvalues as computed,
    # i.e. of rounding noise (each ~sqrt(eps * |S1 S2|)), hence rel=1e-7 to the exact value and to pytorch-fid.
    u, v = rng.normal(size=d), rng.normal(size=d)
    want = u @ u + v @ v - 2 * abs(u @ v)
    got = stats.frechet_distance(np.zeros(d), np.outer(u, u), np.zeros(d), np.outer(v, v))
    assert got == pytest.approx(want, rel=1e-7)
    assert got == pytest.approx(
        _pytorch_fid_reference(np.zeros(d), np.outer(u, u), np.zeros(d), np.outer(v, v)), rel=1e-7
    )


def test_frechet_distance_errors():
    eye = np.eye(3)
    with pytest.raises(ValueError, match="mean must be 1-D"):
        stats.frechet_distance(np.zeros((1, 3)), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"covariance must be \[d, d\]"):
        stats.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), eye)
    with pytest.raises(ValueError, match="differ in dimension"):
        stats.frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="not finite"):
        stats.frechet_distance(np.zeros(3), eye * np.nan, np.zeros(3), eye)


# ---------------------------------------------------------------- resizes

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxgan.metrics import fid, inception, resize, weights  # noqa: E402
from tests.helpers import random_inception_variables  # noqa: E402


def _torch_bilinear_numpy(x, out_h, out_w):
    """torch upsample_bilinear2d (align_corners=False, no antialias) as in
    aten/src/ATen/native/cpu/UpSampleKernel.cpp: per output pixel a clamped
    half-pixel source index and a 4-tap blend (taps gathered, not a matrix)."""

    def taps(in_size, out_size):
        idx = []
        for d in range(out_size):
            s = max((d + 0.5) * (in_size / out_size) - 0.5, 0.0)
            i0 = int(s)
            idx.append((i0, i0 + 1 if i0 < in_size - 1 else i0, s - i0))
        i0, i1, lam = map(np.array, zip(*idx))
        return i0, i1, lam

    y0, y1, ly = taps(x.shape[1], out_h)
    x0, x1, lx = taps(x.shape[2], out_w)
    ly, lx = ly[None, :, None, None], lx[None, None, :, None]
    rows0, rows1 = x[:, y0], x[:, y1]
    return (1 - ly) * ((1 - lx) * rows0[:, :, x0] + lx * rows0[:, :, x1]) + ly * (
        (1 - lx) * rows1[:, :, x0] + lx * rows1[:, :, x1]
    )


@pytest.mark.parametrize(
    "shape,out",
    [((2, 32, 32, 3), (299, 299)), ((1, 300, 311, 2), (299, 299)), ((1, 64, 29, 1), (17, 40)), ((1, 5, 7, 1), (5, 7))],
)
def test_bilinear_resize_matches_torch_formula(shape, out):
    x = np.random.default_rng(0).uniform(0, 1, size=shape)
    got = resize.resize_bilinear(jnp.asarray(x, jnp.float32), out)
    np.testing.assert_allclose(np.asarray(got), _torch_bilinear_numpy(x, *out), atol=2e-6)


def test_bilinear_halving_is_a_2x2_box_and_jax_linear_agrees_only_when_upsampling():
    x = np.random.default_rng(1).uniform(0, 1, size=(1, 8, 8, 1)).astype(np.float32)
    box = x.reshape(1, 4, 2, 4, 2, 1).mean(axis=(2, 4))  # torch bilinear at scale 1/2: lambda = 0.5
    np.testing.assert_allclose(np.asarray(resize.resize_bilinear(jnp.asarray(x), (4, 4))), box, atol=1e-7)
    up = np.asarray(resize.resize_bilinear(jnp.asarray(x), (19, 19)))
    np.testing.assert_allclose(np.asarray(jax.image.resize(x, (1, 19, 19, 1), "linear")), up, atol=1e-6)
    down = np.asarray(jax.image.resize(x, (1, 3, 3, 1), "linear"))  # antialiased: NOT torch's
    assert np.abs(down - np.asarray(resize.resize_bilinear(jnp.asarray(x), (3, 3)))).max() > 1e-3


def _pil_bicubic_numpy(x, out_h, out_w):
    """PIL's antialiased bicubic (libImaging/Resample.c: a = -0.5, support 2 * max(scale, 1),
    normalized taps), horizontal pass then vertical, in float64."""

    def cubic(t, a=-0.5):
        t = np.abs(t)
        return np.where(
            t < 1, ((a + 2) * t - (a + 3)) * t * t + 1, np.where(t < 2, (((t - 5) * t + 8) * t - 4) * a, 0.0)
        )

    def matrix(in_size, out_size):
        scale = in_size / out_size
        fs = max(scale, 1.0)
        support = 2.0 * fs
        m = np.zeros((out_size, in_size))
        for o in range(out_size):
            centre = (o + 0.5) * scale
            lo = max(int(centre - support + 0.5), 0)
            hi = min(int(centre + support + 0.5), in_size)
            w = cubic((np.arange(lo, hi) - centre + 0.5) / fs)
            m[o, lo:hi] = w / w.sum()
        return m

    y = np.einsum("pw,nhwc->nhpc", matrix(x.shape[2], out_w), x.astype(np.float64))
    return np.einsum("oh,nhwc->nowc", matrix(x.shape[1], out_h), y)


@pytest.mark.parametrize("shape,out", [((1, 32, 32, 3), (299, 299)), ((1, 97, 64, 1), (31, 40))])
def test_clean_resize_is_antialiased_pil_bicubic(shape, out):
    x = np.random.default_rng(2).integers(0, 256, size=shape, dtype=np.uint8)
    want = np.clip(_pil_bicubic_numpy(x, *out), 0, 255)
    np.testing.assert_allclose(resize.resize_clean(x, out), want, atol=2e-3)


# ---------------------------------------------------------------- the FID pipeline (cheap: 64-d, random weights)


@pytest.fixture(scope="module")
def cheap_extractor():
    meta = {"weights_id": "random-test-weights", "trunk_sha256": "0123456789abcdef" * 4}
    return fid.InceptionFeatures(random_inception_variables(), weights_meta=meta, feature_dim=64, batch_size=5)


def _reference_features(variables, images_uint8):
    """pytorch-fid's preprocessing re-done in numpy (/255, torch bilinear to 299, 2x-1), unsharded."""
    x = _torch_bilinear_numpy(images_uint8.astype(np.float64) / 255.0, 299, 299)
    model = inception.InceptionV3(feature_dim=64)
    return np.asarray(jax.jit(model.apply)(variables, jnp.asarray(2 * x - 1, jnp.float32))).astype(np.float64)


def test_sharded_padded_features_and_fid_match_an_independent_pipeline(cheap_extractor):
    assert len(jax.devices()) == 8 and cheap_extractor.batch_size == 8  # 5 rounded up to the device count
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, size=(7, 24, 24, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, size=real.shape), 0, 255).astype(np.uint8)[:5]
    f_real = _reference_features(cheap_extractor._variables, real)
    f_fake = _reference_features(cheap_extractor._variables, fake)
    np.testing.assert_allclose(cheap_extractor(real), f_real, rtol=2e-5, atol=2e-5)
    # Real images as an iterable of uneven batches, fake as one array: same answer as numpy + pytorch-fid's formula.
    result = fid.fid(fake, iter([real[:2], real[2:6], real[6:]]), extractor=cheap_extractor, reference="test set")
    want = _pytorch_fid_reference(
        f_real.mean(0), np.cov(f_real, rowvar=False), f_fake.mean(0), np.cov(f_fake, rowvar=False)
    )
    assert result.fid == pytest.approx(want, rel=1e-4)
    assert result.as_dict() == {
        "fid": result.fid,
        "weights_id": "random-test-weights",
        "weights_sha256": "0123456789abcdef",
        "resize": "pytorch_fid",
        "feature_dim": 64,
        "n_real": 7,
        "n_fake": 5,
        "reference": "test set",
    }
    # Gray input is repeated to RGB.
    gray = real[:3, :, :, :1]
    np.testing.assert_allclose(cheap_extractor(gray), cheap_extractor(np.repeat(gray, 3, -1)), rtol=1e-6)


def test_clean_mode_uses_pil_bicubic_and_tf_normalization():
    meta = {"weights_id": "random-test-weights", "trunk_sha256": "f" * 64}
    variables = random_inception_variables(1)
    ex = fid.InceptionFeatures(variables, weights_meta=meta, feature_dim=64, batch_size=2, resize="clean")
    x = np.random.default_rng(4).integers(0, 256, size=(2, 20, 20, 3), dtype=np.uint8)
    want = inception.InceptionV3(feature_dim=64).apply(
        variables, jnp.asarray((np.clip(_pil_bicubic_numpy(x, 299, 299), 0, 255) - 128) / 128, jnp.float32)
    )
    np.testing.assert_allclose(ex(x), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_reference_stats_cache_is_keyed_and_skips_the_images(cheap_extractor, tmp_path):
    imgs = np.random.default_rng(5).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    calls = []

    def source():
        calls.append(1)
        return imgs

    spec = dict(dataset="toy", split="train", resolution=16, cache_dir=tmp_path)
    s1, desc = fid.reference_stats(cheap_extractor, source, n=5, **spec)
    s2, _ = fid.reference_stats(cheap_extractor, source, n=5, **spec)
    assert len(calls) == 1 and "toy/train" in desc and s1.n == 5
    np.testing.assert_array_equal(s1.cov, s2.cov)
    f = cheap_extractor(imgs[:5]).astype(np.float64)
    np.testing.assert_allclose(s1.cov, np.cov(f, rowvar=False), rtol=1e-9, atol=1e-12)
    fid.reference_stats(cheap_extractor, source, n=6, **spec)  # a different n is a different entry
    assert len(calls) == 2
    k1, _ = fid.reference_key(
        dataset="toy", split="train", resolution=16, resize="pytorch_fid", n=5, feature_dim=64, weights_sha256="a"
    )
    k2, _ = fid.reference_key(
        dataset="toy", split="train", resolution=16, resize="clean", n=5, feature_dim=64, weights_sha256="a"
    )
    k3, _ = fid.reference_key(
        dataset="toy", split="train", resolution=16, resize="pytorch_fid", n=5, feature_dim=64, weights_sha256="b"
    )
    assert len({k1, k2, k3}) == 3
    # A corrupt entry is recomputed, not trusted.
    for p in (tmp_path / "fid_stats").glob("*.npz"):
        p.write_bytes(b"garbage")
    fid.reference_stats(cheap_extractor, source, n=5, **spec)
    assert len(calls) == 3


def test_user_weights_file_is_reported_unverified_in_the_fid_protocol(tmp_path):
    path = weights.save_params(
        random_inception_variables(2, feature_dim=2048), tmp_path / "user.npz", source="user", source_hash="-"
    )
    ex = fid.InceptionFeatures(weights_path=path, feature_dim=64)
    trunk = weights.load_params_file(path)[1]["trunk_sha256"]
    assert trunk != weights.DEFAULT_TRUNK_SHA256
    s = stats.FeatureStats(10, np.zeros(64), np.eye(64))
    p = fid.fid_from_stats(s, s, extractor=ex, reference="r").as_dict()
    assert p["weights_id"] == f"unverified:{trunk[:16]}" != weights.WEIGHTS_ID and p["weights_sha256"] == trunk[:16]
    # Metadata passed by hand that claims the known id for another trunk is not believed either.
    ex = fid.InceptionFeatures(
        random_inception_variables(),
        feature_dim=64,
        weights_meta={"weights_id": weights.WEIGHTS_ID, "trunk_sha256": "ab" * 32},
    )
    assert ex.weights_id == "unverified:" + "ab" * 8


def test_fid_input_errors(cheap_extractor):
    x = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8.*to_uint8"):
        cheap_extractor(x.astype(np.float32))
    with pytest.raises(ValueError, match="channels-first"):
        cheap_extractor(np.zeros((4, 3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="add a batch axis"):
        cheap_extractor(x[0])
    with pytest.raises(ValueError, match="3 \\(RGB\\) or 1"):
        cheap_extractor(np.zeros((4, 16, 16, 2), np.uint8))
    with pytest.raises(ValueError, match="at least 2 fake images"):
        fid.fid(x[:1], x, extractor=cheap_extractor)
    with pytest.raises(ValueError, match="Asked for 10 real images but the source gave only 4"):
        fid.fid(x, x, extractor=cheap_extractor, n_real=10)
    with pytest.raises(TypeError, match="iterable of such batches"):
        fid.fid(x, 3, extractor=cheap_extractor)
    with pytest.raises(ValueError, match="resize must be one of"):
        fid.InceptionFeatures({}, resize="bicubic")
