"""GAN data augmentation for a classifier (issue 8): jaxgan.classify and experiments/augment_classifier.py.

References are independent: numpy rot90/shifts, scipy.ndimage's gaussian_filter, rotate and map_coordinates,
flax's nn.Conv and nn.max_pool, the closed-form softmax cross-entropy gradient of a linear model, scikit-learn's
own digits array, brute-force sorting, and hand-computed means and standard deviations.
"""

from __future__ import annotations

import csv
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from experiments import augment_classifier as exp_lib
from experiments.configs import augment_classifier as fast_preset
from jaxgan import classify
from jaxgan.classify import augment, model as model_lib, train as train_lib

# ----------------------------------------------------------------------------- classic augmentation


def test_quarter_turn_is_numpy_rot90_clockwise():
    x = np.random.default_rng(0).normal(size=(5, 5, 2)).astype(np.float32)
    q = augment.rotation_shift_coordinates(5, 5, angle=np.pi / 2, shift=(0.0, 0.0))
    np.testing.assert_allclose(np.asarray(augment.warp(jnp.asarray(x), q, fill=0.0)), np.rot90(x, k=-1), atol=1e-5)


def test_integer_shift_moves_content_and_fills_background():
    x = np.random.default_rng(1).normal(size=(6, 7, 1)).astype(np.float32)
    q = augment.rotation_shift_coordinates(6, 7, angle=0.0, shift=(2.0, -1.0))
    want = np.full_like(x, -1.0)
    want[2:, :-1] = x[:-2, 1:]  # down by 2, left by 1
    np.testing.assert_allclose(np.asarray(augment.warp(jnp.asarray(x), q, fill=-1.0)), want, atol=1e-6)


@pytest.mark.parametrize("degrees", [30.0, -7.0])
def test_rotation_at_other_angles_is_scipy_rotate(degrees):
    from scipy import ndimage

    x = np.random.default_rng(6).normal(size=(7, 9, 2)).astype(np.float32)  # not square: the centre convention
    q = augment.rotation_shift_coordinates(7, 9, angle=np.radians(degrees), shift=(0.0, 0.0))
    got = np.asarray(augment.warp(jnp.asarray(x), q, fill=-1.0))
    # scipy turns counter-clockwise for a positive angle (rows down), ours clockwise; 'grid-constant' blends
    # the border with the fill, as ours does.
    want = ndimage.rotate(x.astype(np.float64), -degrees, reshape=False, order=1, mode="grid-constant", cval=-1.0)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_warp_is_scipy_map_coordinates_inside_and_outside_the_image():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 5, 1)).astype(np.float32)
    coords = rng.uniform(-1.5, 6.5, size=(2, 6, 5)).astype(np.float32)  # inside, near the border and beyond
    got = np.asarray(augment.warp(jnp.asarray(x), jnp.asarray(coords), fill=-1.0))[..., 0]
    want = ndimage.map_coordinates(
        x[..., 0].astype(np.float64), coords.astype(np.float64), order=1, mode="grid-constant", cval=-1.0
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_elastic_deformation_is_scipy_gaussian_filter_then_map_coordinates():
    from scipy import ndimage

    x = np.random.default_rng(8).normal(size=(8, 8, 1)).astype(np.float32)
    key, alpha, sigma = jax.random.key(3), 2.0, 1.0
    u = np.asarray(jax.random.uniform(key, (2, 8, 8), minval=-1.0, maxval=1.0), np.float64)  # the field's draw
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij"))
    field = alpha * np.stack([ndimage.gaussian_filter(f, sigma, mode="constant", cval=0.0) for f in u])
    want = ndimage.map_coordinates(x[..., 0].astype(np.float64), grid + field, order=1, mode="grid-constant", cval=-1.0)
    q = augment.rotation_shift_coordinates(8, 8, angle=0.0, shift=(0.0, 0.0))
    d = augment.elastic_displacement(key, 8, 8, alpha=alpha, sigma=sigma)
    np.testing.assert_allclose(np.asarray(augment.warp(jnp.asarray(x), q + d, fill=-1.0))[..., 0], want, atol=1e-5)
    zero = augment.elastic_displacement(key, 8, 8, alpha=0.0, sigma=sigma)  # alpha 0: the identity
    np.testing.assert_array_equal(np.asarray(augment.warp(jnp.asarray(x), q + zero, fill=-1.0)), x)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])  # 2.0 on 6x6: the kernel (17 taps) is longer than the image
def test_gaussian_smooth_is_scipy_gaussian_filter(sigma):
    from scipy import ndimage

    f = np.random.default_rng(2).uniform(-1, 1, size=(6, 8)).astype(np.float32)
    want = ndimage.gaussian_filter(f.astype(np.float64), sigma, mode="constant", cval=0.0, truncate=4.0)
    np.testing.assert_allclose(np.asarray(augment.gaussian_smooth(jnp.asarray(f), sigma=sigma)), want, atol=1e-5)


def test_classic_augment_identity_when_off_and_shifts_are_integer_shifts():
    x = np.random.default_rng(3).normal(size=(16, 6, 6, 1)).astype(np.float32)
    key = jax.random.key(0)
    off = augment.classic_augment(key, jnp.asarray(x), max_shift=0, max_rotation_degrees=0.0, elastic_alpha=0.0)
    np.testing.assert_allclose(np.asarray(off), x, atol=1e-6)
    shifted = np.asarray(augment.classic_augment(key, jnp.asarray(x), max_shift=1, max_rotation_degrees=0.0))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    candidates = np.stack([padded[:, 1 - dr : 7 - dr, 1 - dc : 7 - dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
    err = np.abs(candidates - shifted[None]).max(axis=(2, 3, 4))  # [9 shifts, 16 images]
    assert (err.min(axis=0) < 1e-6).all()  # every image is one of the 9 integer shifts
    assert len(set(err.argmin(axis=0).tolist())) > 2  # drawn per image
    with pytest.raises(ValueError, match="must be >= 0"):
        augment.classic_augment(key, jnp.asarray(x), max_shift=-1)


# ----------------------------------------------------------------------------- the CNN


def test_patch_conv_and_pool_equal_flax_conv_and_max_pool():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 5, 7, 2)).astype(np.float32))
    conv = model_lib.PatchConv(4)
    params = conv.init(jax.random.key(1), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # a non-zero bias too
    want = nn.Conv(4, (3, 3)).apply(params, x)
    np.testing.assert_allclose(np.asarray(conv.apply(params, x)), np.asarray(want), atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(model_lib.max_pool_2x2(x)), np.asarray(nn.max_pool(x, (2, 2), strides=(2, 2)))
    )


def test_train_step_is_sgd_on_softmax_cross_entropy():
    class Linear(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, use_bias=False)(x.reshape(x.shape[0], -1))

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 2, 2, 1)).astype(np.float32)
    y = np.array([0, 2, 1, 2], np.int32)
    tx = optax.sgd(0.5)
    state = classify.create_state(Linear(), tx, jax.random.key(0), jnp.asarray(x[:1]))
    w = np.asarray(state.params["Dense_0"]["kernel"], np.float64)
    new, metrics = classify.train_step(state, {"image": jnp.asarray(x), "label": jnp.asarray(y)}, model=Linear(), tx=tx)
    flat = x.reshape(4, -1).astype(np.float64)
    logits = flat @ w
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(float(metrics["loss"]), -np.mean(np.log(p[np.arange(4), y])), rtol=1e-5)
    grad = flat.T @ (p - onehot) / 4  # d mean CE / dW
    np.testing.assert_allclose(np.asarray(new.params["Dense_0"]["kernel"]), w - 0.5 * grad, atol=1e-5)
    assert int(new.step) == 1


def test_draw_batch_reads_only_used_rows_and_augments_only_real_ones():
    pool = {
        "image": jnp.arange(10, dtype=jnp.float32).reshape(10, 1, 1, 1),
        "label": jnp.asarray([0, 1, 2, 3, 4, 5, -1, -1, -1, -1], jnp.int32),  # rows 6.. are padding
        "is_real": jnp.asarray([True, True, True, False, False, False] + [False] * 4),
    }
    batch = train_lib.draw_batch(
        jax.random.key(0), pool, jnp.asarray(6), batch_size=64, augment=lambda key, im: im + 100.0
    )
    labels, values = np.asarray(batch["label"]), np.asarray(batch["image"]).ravel()
    assert labels.min() >= 0 and len(set(labels.tolist())) == 6  # all used rows, never the padding
    np.testing.assert_array_equal(values, np.where(labels < 3, labels + 100.0, labels))


@pytest.fixture(scope="module")
def digits_splits():
    config = fast_preset.get_config()
    return exp_lib.load_splits(config.data)


def test_classifier_is_sane_on_real_digits_and_the_seed_loop_is_deterministic(digits_splits):
    s = digits_splits
    model = classify.SmallCNN(widths=(8, 16), hidden=32)
    tx = optax.adamw(3e-3, weight_decay=1e-4)
    x = exp_lib.to_float(s.train_images[:600])
    pools = {
        "image": jnp.stack([x] * 2),
        "label": jnp.stack([s.train_labels[:600]] * 2),
        "is_real": jnp.ones((2, len(x)), bool),
    }
    init = lambda seed: classify.create_state(model, tx, jax.random.key(seed), jnp.asarray(x[:1]))
    states = jax.tree_util.tree_map(lambda *a: jnp.stack(a), init(0), init(1))
    fit = classify.make_fit_seeds(model=model, tx=tx, num_steps=250, batch_size=32)
    sizes = jnp.asarray([len(x)] * 2)
    out, losses = fit(states, pools, sizes)
    test_x, test_y = jnp.asarray(exp_lib.to_float(s.test_images)), jnp.asarray(s.test_labels)
    acc = [
        float(classify.accuracy(model, jax.tree_util.tree_map(lambda a: a[i], out.params), test_x, test_y))
        for i in range(2)
    ]
    assert min(acc) > 0.8, acc  # chance is 0.10; the digits' held-out 355 images
    again, losses2 = fit(states, pools, sizes)
    for a, b in zip(
        jax.tree_util.tree_leaves((out.params, out.opt_state)),
        jax.tree_util.tree_leaves((again.params, again.opt_state)),
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b))  # bit-identical given the seeds
    assert not np.array_equal(np.asarray(losses[0]), np.asarray(losses[1]))  # the seeds differ


# ----------------------------------------------------------------------------- subsets and the filter


def test_per_class_subset_draws_n_of_each_class_reproducibly():
    labels = np.repeat(np.arange(3), [5, 7, 4])
    rows = classify.per_class_subset(labels, 3, seed=0, num_classes=3)
    assert len(set(rows.tolist())) == 9 and np.bincount(labels[rows]).tolist() == [3, 3, 3]
    assert np.array_equal(rows, classify.per_class_subset(labels, 3, seed=0, num_classes=3))
    draws = {tuple(classify.per_class_subset(labels, 3, seed=s, num_classes=3)) for s in range(5)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="Class 2 has 4 training images"):
        classify.per_class_subset(labels, 5, seed=0, num_classes=3)


def test_check_disjoint_names_the_overlapping_sets():
    classify.check_disjoint(a=np.array([1, 2]), b=np.array([3]), c=np.array([4, 5]))
    with pytest.raises(ValueError, match="a and c share 1 images"):
        classify.check_disjoint(a=np.array([1, 2]), b=np.array([3]), c=np.array([2, 5]))


def test_top_confident_per_class_matches_brute_force():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, size=40)
    probs = rng.uniform(size=40).round(1)  # ties
    kept = classify.top_confident_per_class(probs, labels, 4)
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        want = sorted(sorted(rows, key=lambda r: (-probs[r], r))[:4])
        assert kept[labels[kept] == c].tolist() == want
    with pytest.raises(ValueError, match="generate more candidates"):
        classify.top_confident_per_class(probs, labels, 40)


# ----------------------------------------------------------------------------- splits never overlap


def test_digits_splits_are_sklearn_rows_and_never_overlap(digits_splits):
    from sklearn.datasets import load_digits

    s = digits_splits
    d = load_digits()
    raw = ((np.asarray(d.images).astype(np.int64) * 255 + 8) // 16).astype(np.uint8)[..., None]
    np.testing.assert_array_equal(s.train_images, raw[s.train_ids])  # ids name the images they are
    np.testing.assert_array_equal(s.test_images, raw[s.test_ids])
    np.testing.assert_array_equal(s.train_labels, d.target[s.train_ids])
    assert not set(s.train_ids.tolist()) & set(s.test_ids.tolist())
    assert len(s.train_ids) + len(s.test_ids) == 1797
    exp = fast_preset.get_config()
    exp.evaluate_on = "validation"
    subsets = [classify.per_class_subset(s.train_labels, 10, seed=k, num_classes=10) for k in range(3)]
    val_x, val_y = exp_lib.evaluation_sets(exp, s, subsets, [0, 1, 2])
    test_rows = {r.tobytes() for r in s.test_images}
    for k, rows in enumerate(subsets):
        classify.check_disjoint(subset=s.train_ids[rows], test=s.test_ids)
        # The training pool of every setting holds exactly the subset's real images, nothing from the test split.
        real = {"image": exp_lib.to_float(s.train_images[rows]), "label": s.train_labels[rows]}
        synth = {"image": np.zeros((40, 8, 8, 1), np.float32), "label": np.tile(np.arange(10), 4).astype(np.int32)}
        for setting, ratio in [("real", 0.0), ("classic", 0.0), ("gan", 2.0), ("classic+gan", 1.0)]:
            pool, used = exp_lib.pool_for(
                setting, ratio, 2 if setting in ("gan", "classic+gan") else 10, real, synth, None, 200
            )
            got = np.asarray(pool["image"][:used][np.asarray(pool["is_real"][:used])])
            np.testing.assert_array_equal(got, real["image"])
        back = np.round((got + 1) * 127.5).astype(np.uint8)
        assert not {r.tobytes() for r in back} & test_rows  # no test image in the pool, by content too
        # Validation images (for tuning) are train images outside the subset.
        val_rows = {r.tobytes() for r in val_x[k]}
        assert not val_rows & {r.tobytes() for r in real["image"]}


def test_pools_hold_ratio_times_n_synthetic_per_class():
    n, c = 3, 2
    real = {"image": np.ones((n * c, 2, 2, 1), np.float32), "label": np.repeat(np.arange(c), n).astype(np.int32)}
    synth = {"image": -np.ones((20, 2, 2, 1), np.float32), "label": np.tile(np.arange(c), 10).astype(np.int32)}
    pool, used = exp_lib.pool_for("gan", 2.0, n, real, synth, None, 30)
    real_rows = np.asarray(pool["is_real"])[:used]
    assert used == 18 and real_rows.sum() == 6
    assert np.bincount(pool["label"][:used][~real_rows]).tolist() == [6, 6]
    assert (pool["image"][used:] == 0).all() and pool["image"].shape[0] == 30
    pool, used = exp_lib.pool_for("cas", 1.0, n, real, synth, None, 30)
    assert used == 6 and not np.asarray(pool["is_real"]).any()
    with pytest.raises(ValueError, match="a whole number"):
        exp_lib.count_per_class(0.5, 3)


def test_labeled_tfds_dataset_by_name_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    from tests.helpers import write_mock_tfds_metadata

    write_mock_tfds_metadata(tmp_path, "mnist", {"train": 60000, "test": 10000})
    d = ConfigDict(dict(name="mnist", data_dir="", train_split="train", test_split="test", image_size=8, channels=1))
    with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(tmp_path)):
        s = exp_lib.load_splits(d)
    assert s.train_images.shape == (30, 8, 8, 1) and s.test_images.shape == (30, 8, 8, 1)
    assert s.num_classes <= 10 and s.train_labels.dtype == np.int32
    assert not set(s.train_ids.tolist()) & set(s.test_ids.tolist())
    d.test_split = "train"
    with pytest.raises(ValueError, match="must be held out"):
        exp_lib.load_splits(d)


# ----------------------------------------------------------------------------- tables, plot, config


def _results():
    return {
        ("real", 0.0): [0.80, 0.90, 0.85],
        ("classic", 0.0): [0.90, 0.95, 0.92],
        ("gan", 1.0): [0.70, 0.80, 0.74],
        ("cas", 1.0): [0.5, 0.6, 0.4],
    }


def test_summary_and_tables_are_exact_and_deterministic(tmp_path):
    rows = exp_lib.summarize(10, _results())
    gan = rows[2]
    assert (gan.setting, gan.ratio, gan.n_seeds) == ("gan", 1.0, 3)
    assert gan.mean == pytest.approx(0.74666666666)
    assert gan.std == pytest.approx(
        np.sqrt(((0.70 - 0.74667) ** 2 + (0.80 - 0.74667) ** 2 + (0.74 - 0.74667) ** 2) / 2), abs=1e-5
    )
    assert gan.delta_mean == pytest.approx(-0.31 / 3, abs=1e-12)  # (-0.10 - 0.10 - 0.11) / 3
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        os.makedirs(d)
        exp_lib.write_tables(exp_lib.summarize(10, _results()), str(d))
    for name in ("results.csv", "results.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    with open(a / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["setting"] for r in table] == ["real", "classic", "gan", "cas"]
    assert {"setting", "ratio", "n_seeds", "mean", "std"} <= set(table[0])
    assert float(table[1]["mean"]) == pytest.approx(np.mean([0.90, 0.95, 0.92]))
    md = (a / "results.md").read_text()
    assert "GAN samples did NOT help" in md and "| 10 | gan | 1:1 | 3 | 74.7 +/- 5.0 |" in md
    better = dict(_results())
    better[("gan", 1.0)] = [0.85, 0.95, 0.90]  # +5 points on every seed
    assert "GAN samples helped" in "\n".join(exp_lib.verdict(exp_lib.summarize(10, better)))


def test_plot_is_a_png_with_one_panel_per_size(tmp_path):
    from PIL import Image

    rows = exp_lib.summarize(10, _results()) + exp_lib.summarize(20, _results())
    path = exp_lib.plot(rows, str(tmp_path / "p.png"))
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] > 2 * 300  # two panels side by side
    for color in (exp_lib.COLORS["real"], exp_lib.COLORS["gan"], exp_lib.COLORS["cas"]):
        assert (image == np.asarray(color, np.uint8)).all(-1).any()  # bars drawn in the setting's color


def test_config_errors_are_clear_before_anything_runs(tmp_path):
    exp = fast_preset.get_config()
    exp.ratios = (0.5,)
    exp.n_per_class = (5,)
    with pytest.raises(ValueError, match="whole number"):
        exp_lib.check_config(exp)
    exp = fast_preset.get_config()
    exp.evaluate_on = "train"
    with pytest.raises(ValueError, match="evaluate_on"):
        exp_lib.check_config(exp)
    (tmp_path / "results.csv").write_text("earlier results")
    with pytest.raises(FileExistsError, match="overwrite"):
        exp_lib.run(fast_preset.get_config(), str(tmp_path))
    assert (tmp_path / "results.csv").read_text() == "earlier results"
