"""k-means cluster conditioning: jaxgan.data.clusters, G drawing the real batch's labels, the loop's
cluster-labelled runs and sampling them."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.data import clusters


def _blobs(seed=0, per=200, k=4, dim=6):
    """Well-separated Gaussian blobs (centres 10 apart, sd 0.1): the true partition is unambiguous."""
    rng = np.random.default_rng(seed)
    centres = np.eye(k, dim) * 10.0
    truth = np.repeat(np.arange(k), per)
    x = centres[truth] + 0.1 * rng.normal(size=(k * per, dim))
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), truth[order]


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    x, truth = _blobs()
    labels = clusters.kmeans_labels(x, 4, seed=0)
    assert labels.dtype == np.int32 and labels.shape == truth.shape
    # Same partition up to renaming: each true blob maps to exactly one cluster, and back.
    table = np.zeros((4, 4), int)
    np.add.at(table, (truth, labels), 1)
    assert np.all((table > 0).sum(axis=1) == 1) and np.all((table > 0).sum(axis=0) == 1)
    np.testing.assert_array_equal(clusters.kmeans_labels(x, 4, seed=0), labels)


def test_kmeans_scales_uint8_images_and_refuses_bad_counts():
    x, truth = _blobs(k=2, dim=3)
    images = np.where(x > 5, 255, 0).astype(np.uint8).reshape(-1, 1, 3, 1)
    labels = clusters.kmeans_labels(images, 2, seed=0)
    assert len(set(zip(truth, labels))) == 2  # the two blobs, whatever their names
    with pytest.raises(ValueError, match="cannot form 5 clusters"):
        clusters.kmeans_labels(np.zeros((3, 2)), 5, seed=0)
    with pytest.raises(ValueError, match="int >= 1"):
        clusters.kmeans_labels(np.zeros((3, 2)), 0, seed=0)


def test_frequencies_and_draws():
    labels = np.array([0, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(clusters.label_frequencies(labels, 5), [1 / 6, 0, 2 / 6, 3 / 6, 0])
    with pytest.raises(ValueError, match="outside"):
        clusters.label_frequencies(labels, 3)
    p = np.array([0.5, 0.0, 0.2, 0.3])
    draws = clusters.draw_labels(p, 200_000, seed=1)
    assert draws.dtype == np.int32
    # Binomial sd of a frequency at n = 200,000 is <= 0.0012; 5 sd.
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws), p, atol=0.006)
    np.testing.assert_array_equal(clusters.draw_labels(p, 100, seed=1), draws[:100])
    with pytest.raises(ValueError, match="summing to 1"):
        clusters.draw_labels([0.5, 0.2], 10, seed=0)


def test_saved_labels_round_trip_and_refuse_another_run(tmp_path):
    path = str(tmp_path / clusters.LABELS_FILE)
    assert clusters.load_labels(path, num_clusters=3, seed=0, num_examples=4) is None
    assert clusters.load_frequencies(path) is None
    labels = np.array([0, 2, 2, 1], np.int32)
    clusters.save_labels(path, labels, num_clusters=3, seed=7)
    np.testing.assert_array_equal(clusters.load_labels(path, num_clusters=3, seed=7, num_examples=4), labels)
    np.testing.assert_allclose(clusters.load_frequencies(path), [0.25, 0.25, 0.5])
    with pytest.raises(ValueError, match="belongs to another run"):
        clusters.load_labels(path, num_clusters=4, seed=7, num_examples=4)
    assert (tmp_path / clusters.LABELS_FILE).exists()  # refused, not overwritten


def _conditional_mlp_step(fake_labels, num_classes=5, latent_dim=4):
    from jaxgan.losses import get_loss
    from jaxgan.nets import MLPDiscriminator, MLPGenerator

    g = MLPGenerator(latent_dim=latent_dim, out_shape=(2,), hidden=8, depth=1, num_classes=num_classes)
    d = MLPDiscriminator(hidden=8, depth=1, num_classes=num_classes)
    step = jaxgan.make_train_step(
        generator=g,
        discriminator=d,
        g_tx=optax.sgd(0.1),
        d_tx=optax.sgd(0.1),
        loss=get_loss("non_saturating"),
        fake_labels=fake_labels,
    )
    return step, step.init_state(0, np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("fake_labels", ["real", "uniform"])
def test_generator_draws_the_real_batch_labels(fake_labels):
    """G's input is [z, one_hot(label)], so the first-layer kernel row of a class G never sees gets a zero
    gradient. Every real label is 2: with fake_labels="real" only row 2 of G's label rows moves; with
    "uniform" (32 draws of 5 classes) the others move too."""
    step, state = _conditional_mlp_step(fake_labels)
    mesh = jaxgan.make_mesh(jax.devices()[:1])
    run = jaxgan.shard_map_step(step, mesh)
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(1, 32, 2)).astype(np.float32), "label": np.full((1, 32), 2, np.int32)}
    kernel = lambda s: np.array(jax.device_get(s.g.params)["Dense_0"]["kernel"])[4:]  # the 5 label rows
    before = kernel(state)
    new, _ = run(jaxgan.replicate(state, mesh), batch)  # donates the state
    moved = np.abs(kernel(new) - before).max(axis=1) > 0
    if fake_labels == "real":
        np.testing.assert_array_equal(moved, [False, False, True, False, False])
    else:
        assert moved.sum() >= 4


def test_fake_labels_and_cluster_labels_are_validated():
    from jaxgan import config as config_lib

    with pytest.raises(ValueError, match="fake_labels='sometimes' is unknown"):
        _conditional_mlp_step("sometimes")
    config = config_lib.base_config()
    config.model.fake_labels = "sometimes"
    with pytest.raises(ValueError, match="model.fake_labels"):
        config_lib.validate(config, 1)
    config = config_lib.base_config()
    config.data.cluster_labels = 10
    with pytest.raises(ValueError, match="set model.num_classes=10"):
        config_lib.validate(config, 1)
    config.model.num_classes = 10
    with pytest.raises(ValueError, match="fake_labels='real'"):
        config_lib.validate(config, 1)
    config.data.cluster_labels = -1
    with pytest.raises(ValueError, match="int >= 0"):
        config_lib.validate(config, 1)


def test_cluster_labelled_run_keeps_its_clusters_and_samples_with_their_frequencies(tmp_path):
    """A 2-step stacked-digits run conditioned on 20 k-means clusters: the saved labels are scikit-learn's
    k-means of the training images (recomputed here), the sampler draws ids with their frequencies, and a
    workdir holding other clusters is refused without being overwritten."""
    from sklearn.cluster import KMeans

    from experiments import mode_collapse
    from jaxgan import loop
    from jaxgan import workdir as workdir_lib

    config = mode_collapse.train_config("stacked_digits", "kmeans_sn_hinge_ema_decay", train_steps=2)
    assert (
        config.model.num_classes,
        config.model.fake_labels,
        config.model.conditioning,
        config.model.pack,
        config.batch_size,
        config.data.image_size,
    ) == (3000, "real", "projection", 1, 256, 8)
    assert (config.model.label_embed_dim, config.model.projection_dim, config.model.projection_embed_sn) == (
        128,
        128,
        True,
    )
    config.data.image_size, config.data.num_examples = 8, 500
    config.data.cluster_labels = config.model.num_classes = 20
    config.model.g_width = config.model.d_width = 8
    config.batch_size, config.progress_bar = 16, False
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(config, workdir, evaluators=[])
    saved = np.load(tmp_path / "run" / clusters.LABELS_FILE)
    images = loop.load_training_arrays(config.data, seed=config.seed)["image"]
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    expect = KMeans(n_clusters=20, n_init=1, max_iter=100, random_state=config.seed).fit(x).labels_
    np.testing.assert_array_equal(saved["labels"], expect)
    np.testing.assert_allclose(saved["frequencies"], np.bincount(expect, minlength=20) / len(expect))

    gan = workdir_lib.load_generator(workdir)
    np.testing.assert_allclose(gan.label_frequencies, saved["frequencies"])
    assert gan.sample_uint8(50, seed=3).shape == (50, 8, 8, 3)
    with pytest.raises(ValueError, match="belongs to another run"):
        config.data.cluster_labels = config.model.num_classes = 10
        loop.train_and_evaluate(config, workdir, evaluators=[])
    np.testing.assert_array_equal(np.load(tmp_path / "run" / clusters.LABELS_FILE)["labels"], expect)


def test_cluster_configurations_refuse_the_two_dimensional_sweep(tmp_path):
    """The 2-D sweep trains its seeds outside the loop, which makes the clusters: asked for alone there, a
    cluster configuration fails before training; in a list with other data sets it is skipped there."""
    from experiments import mode_collapse

    name = "kmeans_sn_hinge_ema_decay"
    with pytest.raises(ValueError, match="k-means clusters"):
        mode_collapse.train_config("ring", name)
    assert not mode_collapse.available("grid", name) and mode_collapse.available("stacked_digits", name)
    assert mode_collapse.available("ring", "gan")
    exp = mode_collapse.experiment_config()
    exp.data, exp.configs = "ring,grid", name
    with pytest.raises(ValueError, match="k-means clusters"):
        mode_collapse.sweep(exp, str(tmp_path))
