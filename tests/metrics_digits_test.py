"""The shipped digits classifier, Stacked-digits mode counting and the digits Frechet distance.

References: jaxgan's own data pipeline (the classifier's inputs must be exactly
the GAN's data: same uint8 conversion, same split, same TF resize), scikit-learn's
labels for the held-out accuracy, hand-built stacks whose mode histogram is
known (every triple once -> 1000 modes, KL 0; one triple -> 1 mode, KL log 1000),
and scipy.linalg.sqrtm for the Frechet distance formula.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg

from jaxgan.metrics import digits_classifier as dc


@pytest.fixture(scope="module")
def held_out():
    images, labels = dc.load_split("test")
    return images, labels


@pytest.fixture(scope="module")
def one_correct_image_per_digit(held_out):
    """A held-out image of each digit 0..9 that the shipped classifier labels correctly."""
    images, labels = held_out
    pred = dc.classify(images)[0].argmax(-1)
    return np.stack([images[np.flatnonzero((labels == d) & (pred == d))[0]] for d in range(10)])


def test_inputs_match_the_gan_data_pipeline():
    from jaxgan.data.digits import digits_arrays, split_indices
    from jaxgan.data.pipeline import resize_and_convert

    images, labels = dc.digits_uint8()
    ref_images, ref_labels = digits_arrays()
    np.testing.assert_array_equal(images, ref_images[..., 0])
    np.testing.assert_array_equal(labels, ref_labels)
    splits = split_indices(ref_labels)
    for split in ("train", "test"):
        np.testing.assert_array_equal(dc.split_rows(labels, split), splits[split])
    # Bit-identical to the TF resize the GAN's data goes through.
    ref32 = resize_and_convert(ref_images, image_size=32, channels=1)[..., 0]
    np.testing.assert_array_equal(dc.upsample_uint8(images), ref32)


def test_shipped_classifier_held_out_accuracy(held_out):
    from sklearn.datasets import load_digits

    images, labels = held_out
    rows = dc.split_rows(labels=np.asarray(load_digits().target), split="test")
    np.testing.assert_array_equal(labels, load_digits().target[rows])
    accuracy = float(np.mean(dc.classify(images)[0].argmax(-1) == labels))
    assert accuracy >= 0.97
    info = dc.classifier_info()
    assert info["held_out_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert info["num_held_out"] == len(labels) == 355
    with open(dc.PARAMS_PATH, "rb") as f:
        blob = f.read()
    assert hashlib.sha256(blob).hexdigest() == info["params_sha256"]
    assert len(blob) < 300_000


def test_classify_input_conventions(held_out):
    images = held_out[0][:64]
    logits_u8, feats_u8 = dc.classify(images)
    logits_f, feats_f = dc.classify(images.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(logits_f, logits_u8, atol=1e-5)
    rgb = np.repeat(images[..., None], 3, axis=-1)  # luma of equal channels is the channel
    np.testing.assert_allclose(dc.classify(rgb)[0], logits_u8, atol=1e-3)
    assert feats_u8.shape == (64, dc.FEATURE_DIM)


def test_classify_other_sizes_via_resize(held_out):
    images, labels = held_out
    big = dc.upsample_uint8(dc.digits_uint8()[0][dc.split_rows(dc.digits_uint8()[1], "test")], image_size=64)
    accuracy = float(np.mean(dc.classify(big)[0].argmax(-1) == labels))
    assert accuracy >= 0.95


def test_stacked_modes_every_triple_once(one_correct_image_per_digit):
    digits = np.array([(a, b, c) for a in range(10) for b in range(10) for c in range(10)])
    imgs = one_correct_image_per_digit
    stack = np.stack([imgs[digits[:, 0]], imgs[digits[:, 1]], imgs[digits[:, 2]]], axis=-1)
    out = dc.stacked_digits_modes(stack)
    assert out["modes"] == 1000 and out["num_samples"] == 1000
    assert out["kl"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(out["counts"], np.ones(1000))
    # Only d_R < 5: 500 modes, each p = 1/500 -> KL = log(1000 / 500).
    half = dc.stacked_digits_modes(stack[digits[:, 0] < 5])
    assert half["modes"] == 500 and half["kl"] == pytest.approx(math.log(2), rel=1e-12)


def test_stacked_modes_collapsed_and_mode_id_order(one_correct_image_per_digit):
    imgs = one_correct_image_per_digit
    stack = np.repeat(np.stack([imgs[1], imgs[2], imgs[3]], axis=-1)[None], 50, axis=0)
    out = dc.stacked_digits_modes(stack.astype(np.float32) / 127.5 - 1.0)
    assert out["modes"] == 1
    assert out["counts"][123] == 50  # mode id = 100 d_R + 10 d_G + d_B
    assert out["kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_make_stacked_digits_replays_documented_draws():
    images, modes = dc.make_stacked_digits(500, seed=3, split="test")
    ref_images, ref_labels = dc.load_split("test")
    idx = np.random.default_rng(3).integers(0, len(ref_images), size=(500, 3))
    for c in range(3):
        np.testing.assert_array_equal(images[..., c], ref_images[idx[:, c]])
    np.testing.assert_array_equal(
        modes, 100 * ref_labels[idx[:, 0]] + 10 * ref_labels[idx[:, 1]] + ref_labels[idx[:, 2]]
    )
    assert images.dtype == np.uint8 and images.shape == (500, 32, 32, 3)
    assert not np.array_equal(dc.make_stacked_digits(500, seed=4, split="test")[1], modes)


def test_real_stacked_samples_are_recognised():
    images, modes = dc.make_stacked_digits(1000, seed=0, split="test")
    digits = [dc.classify(images[..., c])[0].argmax(-1) for c in range(3)]
    predicted = 100 * digits[0] + 10 * digits[1] + digits[2]
    assert np.mean(predicted == modes) >= 0.93  # ~0.989^3 per triple
    out = dc.stacked_digits_modes(images)
    assert out["modes"] == len(np.unique(predicted))
    assert np.array_equal(out["counts"], np.bincount(predicted, minlength=1000))


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_matches_sqrtm_formula_and_floor(held_out):
    train, _ = dc.load_split("train")
    test = held_out[0]
    fa, fb = dc.digits_features(train).astype(np.float64), dc.digits_features(test).astype(np.float64)
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    sa, sb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    want = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sa + sb - 2 * covmean))
    floor = dc.frechet_digits_floor()
    assert floor == pytest.approx(want, rel=1e-5, abs=1e-8)
    assert dc.classifier_info()["fcd_floor"]["digits"] == pytest.approx(floor, rel=1e-6)
    assert abs(dc.frechet_digits_distance(test, test)) < 1e-8
    # Noised digits are far from real ones, relative to the real-vs-real floor.
    rng = np.random.default_rng(0)
    noisy = np.clip(test / 127.5 - 1.0 + rng.normal(0, 0.5, test.shape), -1, 1).astype(np.float32)
    assert dc.frechet_digits_distance(noisy, train) > 5 * floor


def test_bad_input(held_out):
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        dc.stacked_digits_modes(held_out[0][:4])
    with pytest.raises(ValueError, match=r"not in \[-1, 1\]"):
        dc.classify(np.full((2, 32, 32), 5.0, np.float32))
    with pytest.raises(ValueError, match="leading batch axis"):
        dc.classify(np.zeros((32, 32, 1), np.uint8))  # one image without its batch axis
    with pytest.raises(ValueError, match="26000"):
        dc.stacked_digits_modes(np.zeros((4, 32, 32, 3), np.uint8), expect_protocol_size=True)
    with pytest.raises(FileNotFoundError, match="train_digits_classifier"):
        dc.load_params(os.path.join(os.path.dirname(dc.PARAMS_PATH), "missing.msgpack"))
    with pytest.raises(ValueError, match="split"):
        dc.load_split("validation")


def test_metric_modules_import_no_io_stack():
    # Metrics sit below the data layer: none of this task's modules may pull in TF/TFDS or jaxgan.data.
    code = (
        "import sys\n"
        "from jaxgan.metrics import digits_classifier, diversity, inception_score, kid, modes, prdc\n"
        "digits_classifier.load_params()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', "
        "'orbax', 'clu') or m.startswith('jaxgan.data'))\n"
        "print('BAD', bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "BAD []" in result.stdout
