"""The mode-collapse benchmark's pieces (issue 6): PacGAN's 2-D nets, the "modes"
evaluator, the multi-seed driver and the table writer.

References are independent: numpy BatchNorm/maxout, hand-made point sets with
known mode counts, a plain one-seed training loop, hand-computed means and
standard errors.
"""

from __future__ import annotations

import csv
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgan
from jaxgan.nets import MLPDiscriminator, MLPGenerator


def _dense(params: dict, x: np.ndarray) -> np.ndarray:
    y = x @ np.asarray(params["kernel"], np.float64)
    return y + np.asarray(params["bias"], np.float64) if "bias" in params else y


# ----------------------------------------------------------------------------- nets


def test_mlp_generator_batch_norm_off_is_the_plain_mlp():
    z = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    g = MLPGenerator(latent_dim=3, out_shape=(2,), hidden=5, depth=2)
    variables = g.init(jax.random.PRNGKey(0), z, train=False)
    assert "batch_stats" not in variables
    p = variables["params"]
    h = np.maximum(_dense(p["Dense_0"], z), 0)
    h = np.maximum(_dense(p["Dense_1"], h), 0)
    want = _dense(p["Dense_2"], h)
    for train in (True, False):
        np.testing.assert_allclose(np.asarray(g.apply(variables, z, train=train)), want, rtol=1e-5, atol=1e-6)


def test_mlp_generator_batch_norm_normalises_with_batch_stats_in_training_and_running_stats_in_inference():
    z = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    g = MLPGenerator(latent_dim=3, out_shape=(2,), hidden=6, depth=2, batch_norm=True, bn_axis_name=None)
    variables = g.init(jax.random.PRNGKey(1), z, train=False)
    p = variables["params"]
    assert "bias" not in p["Dense_0"] and "bias" not in p["Dense_1"]  # BN's shift replaces the bias
    # Non-trivial scale and shift, so a BN that ignored them would fail.
    rng = np.random.default_rng(2)
    p = jax.tree_util.tree_map(lambda a: a, p)
    for name in ("BatchNorm_0", "BatchNorm_1"):
        p[name] = {
            "scale": jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=6), jnp.float32),
        }
    variables = {"params": p, "batch_stats": variables["batch_stats"]}

    def bn(x, q, mean, var):
        return (x - mean) / np.sqrt(var + 1e-5) * np.asarray(q["scale"]) + np.asarray(q["bias"])

    # Training: biased batch variance (numpy's default) over the batch.
    h0 = _dense(p["Dense_0"], z)
    a0 = np.maximum(bn(h0, p["BatchNorm_0"], h0.mean(0), h0.var(0)), 0)
    h1 = _dense(p["Dense_1"], a0)
    a1 = np.maximum(bn(h1, p["BatchNorm_1"], h1.mean(0), h1.var(0)), 0)
    out, mutated = g.apply(variables, z, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out), _dense(p["Dense_2"], a1), rtol=1e-4, atol=1e-5)
    # Running statistics: momentum 0.9 from (0, 1).
    np.testing.assert_allclose(
        np.asarray(mutated["batch_stats"]["BatchNorm_0"]["mean"]), 0.1 * h0.mean(0), rtol=1e-4, atol=1e-6
    )
    # Inference uses the running statistics, not the batch's.
    stats = mutated["batch_stats"]
    m0, v0 = (np.asarray(stats["BatchNorm_0"][k]) for k in ("mean", "var"))
    m1, v1 = (np.asarray(stats["BatchNorm_1"][k]) for k in ("mean", "var"))
    b0 = np.maximum(bn(h0, p["BatchNorm_0"], m0, v0), 0)
    b1 = np.maximum(bn(_dense(p["Dense_1"], b0), p["BatchNorm_1"], m1, v1), 0)
    got = g.apply({"params": p, "batch_stats": stats}, z, train=False)
    np.testing.assert_allclose(np.asarray(got), _dense(p["Dense_2"], b1), rtol=1e-4, atol=1e-5)


def test_maxout_discriminator_matches_numpy_and_packs_consecutive_samples():
    x = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    d = MLPDiscriminator(hidden=4, depth=2, maxout_pieces=3, pack=2)
    variables = d.init(jax.random.PRNGKey(3), x, train=False)
    p = variables["params"]
    packed = np.concatenate([x[0::2], x[1::2]], axis=1)  # sample 2k beside sample 2k+1
    h = _dense(p["hidden0"], packed).reshape(3, 4, 3).max(-1)
    h = _dense(p["hidden1"], h).reshape(3, 4, 3).max(-1)
    want = _dense(p["logit"], h)[:, 0]
    np.testing.assert_allclose(np.asarray(d.apply(variables, x, train=False)), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="maxout_pieces=1"):
        MLPDiscriminator(hidden=4, maxout_pieces=1).init(jax.random.PRNGKey(0), x, train=False)


# ----------------------------------------------------------------------------- the "modes" evaluator


def test_modes_evaluator_on_hand_made_ring_points():
    from jaxgan.metrics.evaluator import make_evaluator

    angles = 2 * np.pi * np.arange(8) / 8
    means = np.stack([np.cos(angles), np.sin(angles)], 1)
    # 100 points on each of modes 0..4 (0.02 = 2 sigma off: still high quality), 100 at the origin (bad).
    points = np.concatenate([np.repeat(means[:5] + [0.0, 0.02], 100, 0), np.zeros((100, 2))]).astype(np.float32)
    seen = []

    def sample_fn(num, seed):
        seen.append((num, seed))
        return points

    ev = make_evaluator("modes", data="ring", num_samples=len(points), seed=7)
    got = ev(sample_fn, step=0)
    assert seen == [(600, 7)]
    assert got["modes"] == 5
    assert got["high_quality"] == pytest.approx(500 / 600)
    assert got["reverse_kl"] == pytest.approx(math.log(8 / 5))  # uniform over 5 of 8 modes
    assert make_evaluator("modes").num_samples == 2500  # the protocol's size by default
    with pytest.raises(TypeError, match="float points"):
        ev(lambda n, s: np.zeros((600, 2), np.uint8), 0)
    with pytest.raises(ValueError, match="returned 3 samples"):
        ev(lambda n, s: points[:3], 0)


def test_modes_evaluator_on_hand_made_grid_points():
    from jaxgan.metrics.evaluator import ModesEvaluator

    means = np.array([(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], np.float64)
    # Mode k gets k + 1 points 0.14 (2.8 sigma) off its mean, plus one point 0.16 (3.2 sigma) off each.
    good = np.concatenate([np.repeat(means[k : k + 1] + [0.14, 0.0], k + 1, 0) for k in range(25)])
    bad = means + [0.0, 0.16]
    got = ModesEvaluator(data="grid").evaluate_samples(np.concatenate([good, bad]).astype(np.float32))
    p = np.arange(1, 26) / np.arange(1, 26).sum()
    assert got["modes"] == 25
    assert got["high_quality"] == pytest.approx(len(good) / (len(good) + 25))
    assert got["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 25))), rel=1e-6)
    with pytest.raises(ValueError, match="valid"):
        ModesEvaluator(data="spiral")


# ----------------------------------------------------------------------------- the multi-seed driver


def _tiny_mixture_config(**overrides):
    from experiments import mode_collapse

    config = mode_collapse.train_config("ring", "gan", "fast")
    config.model.g_width, config.model.d_width, config.model.depth, config.model.d_depth = 8, 8, 2, 2
    config.batch_size, config.data.num_examples = 8, 64
    for key, value in overrides.items():
        target = config
        *path, last = key.split(".")
        for name in path:
            target = target[name]
        target[last] = value
    return config


def test_multi_seed_driver_equals_single_seed_runs():
    """Seed s of the vmapped, scanned driver == the loop's own step (shard_map_step) run alone on seed s
    (packed D, G BatchNorm, maxout D, LeCam anchors in the state's extras, an EMA schedule), with all
    seeds on one device and split over two (one reference for both)."""
    from jaxgan import config as config_lib
    from jaxgan import data
    from jaxgan.loop import load_training_arrays, step_batch
    from jaxgan.train import make_mesh, replicate, shard_map_step
    from jaxgan.train.seeds import multi_seed_steps, stack_trees, tree_index
    from experiments import mode_collapse

    config = _tiny_mixture_config(
        **{"model.pack": 2, "batch_size": 16, "regularization.lecam": 0.1, "ema_half_life_images": 50.0}
    )
    seeds, num_steps = (3, 5), 4
    g, d = config_lib.build_networks(config)
    g_tx, d_tx = config_lib.build_optimizers(config)
    step = config_lib.build_step(config, g, d, g_tx, d_tx)

    single = shard_map_step(step, make_mesh(jax.devices()[:1]))
    want = []
    for seed in seeds:
        arrays = load_training_arrays(config.data, seed=seed)
        batcher = data.ArrayBatcher(arrays, batch_size=config.batch_size, seed=seed)
        state = replicate(step.init_state(seed, arrays["image"][:1]), make_mesh(jax.devices()[:1]))
        for s in range(2 * num_steps):
            state, _ = single(state, step_batch(batcher, s, config.n_critic))
        want.append(jax.device_get(state))

    for num_devices in (1, 2):
        run = multi_seed_steps(step, devices=jax.devices()[:num_devices])
        states, arrays, batchers = mode_collapse.init_seeds(config, step, seeds)
        for start in (0, num_steps):  # two calls: the second resumes where the first stopped
            states, metrics = run(
                states, arrays, mode_collapse.batch_indices(batchers, start, num_steps, config.n_critic)
            )
        assert metrics["d_loss"].shape == (len(seeds), num_steps)
        for i in range(len(seeds)):
            got = jax.device_get(tree_index(states, i))
            assert int(got.step) == 2 * num_steps
            jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got, want[i])
    # Another batch order changes D's result beyond the tolerance: the comparison is not vacuous.
    other = run(
        stack_trees([step.init_state(s, arrays["image"][0, :1]) for s in seeds]),
        arrays,
        mode_collapse.batch_indices(batchers, 1, num_steps, config.n_critic),
    )[0]
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(
            jax.device_get(tree_index(other, 0)).d.params["hidden0"]["kernel"],
            tree_index(jax.device_get(states), 0).d.params["hidden0"]["kernel"],
            rtol=2e-5,
            atol=2e-6,
        )


def test_multi_seed_driver_rejects_bad_indices():
    from jaxgan import config as config_lib
    from jaxgan.train.seeds import multi_seed_steps
    from experiments import mode_collapse

    config = _tiny_mixture_config()
    g, d = config_lib.build_networks(config)
    step = config_lib.build_step(config, g, d, *config_lib.build_optimizers(config))
    states, arrays, batchers = mode_collapse.init_seeds(config, step, (0, 1))
    run = multi_seed_steps(step)
    with pytest.raises(ValueError, match="expected \\[S=2, K"):
        run(states, arrays, np.zeros((3, 1, 1, 8), np.int32))
    with pytest.raises(ValueError, match="outside"):
        run(states, arrays, np.full((2, 1, 1, 8), 64, np.int32))
    three = multi_seed_steps(step, devices=jax.devices()[:3])
    with pytest.raises(ValueError, match="2 seeds do not split evenly over 3 devices"):
        three(states, arrays, np.zeros((2, 1, 1, 8), np.int32))


def test_seed_devices_split_the_seeds_evenly_and_the_sweep_asks_for_a_device_per_core(monkeypatch):
    from jaxgan.train.seeds import seed_devices
    from experiments import mode_collapse

    devices = jax.devices()[:8]
    assert seed_devices(10, devices) == devices[:5]  # 5 devices x 2 seeds
    assert seed_devices(8, devices) == devices and seed_devices(7, devices) == devices[:7]
    assert seed_devices(5, devices[:2]) == devices[:1] and seed_devices(4, devices[:2]) == devices[:2]
    with pytest.raises(ValueError, match="num_seeds"):
        seed_devices(0, devices)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setattr(mode_collapse.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    mode_collapse.one_cpu_device_per_core()
    assert os.environ["XLA_FLAGS"] == ("--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=3")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    mode_collapse.one_cpu_device_per_core()  # a count the user set is kept
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"


# ----------------------------------------------------------------------------- tables and figures


def test_summary_and_table_writer_on_given_numbers(tmp_path):
    from PIL import Image

    from experiments import mode_collapse

    per_seed = [
        {"modes": 8, "high_quality": 0.97, "reverse_kl": 0.01},
        {"modes": 7, "high_quality": 0.95, "reverse_kl": 0.05},
        {"modes": 8, "high_quality": 0.99, "reverse_kl": 0.03},
    ]
    row = mode_collapse.summarize("pacgan2", "ring", per_seed, num_modes=8, steps=100)
    # Hand-computed: mean 23/3; sample std of (8, 7, 8) = sqrt(1/3); s.e. = sqrt(1/3) / sqrt(3) = 1/3.
    assert row.modes_mean == pytest.approx(23 / 3) and row.modes_se == pytest.approx(1 / 3)
    assert row.hq_mean == pytest.approx(97.0) and row.hq_se == pytest.approx(2 / math.sqrt(3))
    assert row.rkl_mean == pytest.approx(0.03) and row.rkl_se == pytest.approx(0.02 / math.sqrt(3))
    assert row.all_modes_seeds == 2
    csv_path, md_path = mode_collapse.write_tables([row], str(tmp_path))
    with open(csv_path) as f:
        (line,) = list(csv.DictReader(f))
    assert line["config"] == "pacgan2" and float(line["modes_mean"]) == pytest.approx(23 / 3)
    assert line["all_modes_seeds"] == "2"
    md = open(md_path).read()
    assert "| ring | pacgan2 | 3 | 7.7 +/- 0.3 | 97.0 +/- 1.2 | 0.030 +/- 0.012 | 2/3 |" in md
    assert "7.9 / 95.6% / 0.07" in md  # the published PacGAN2 ring row beside it
    stacked = mode_collapse.summarize(
        "pacgan2",
        "stacked_digits",
        [{"modes": 1000, "high_quality": float("nan"), "reverse_kl": 0.05}],
        num_modes=1000,
        steps=100,
    )
    mode_collapse.write_tables([stacked], str(tmp_path))
    # PacGAN table 2 (Stacked MNIST): PacDCGAN2 1000 modes, KL 0.06; no high-quality column there.
    assert (
        "| stacked_digits | pacgan2 | 1 | 1000.0 +/- 0.0 | n/a | 0.050 +/- 0.000 | 1/1 | 100 | "
        "1000.0 modes / KL 0.06 (Stacked MNIST) |"
    ) in open(md_path).read()
    means = np.array([[1.0, 0.0], [-1.0, 0.0]])
    path = mode_collapse.samples_figure(
        np.zeros((2, 10, 2)) + [1.0, 0.0], means, str(tmp_path / "f.png"), titles=["a", "b"], panel=100
    )
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (114, 200, 3)
    # The samples sit on the first mean: a black pixel at its centre in each panel.
    centre = (int((1.0 + 1.35) / 2.7 * 100), 14 + 50)
    assert (image[centre[1], centre[0]] == 0).all() and (image[centre[1], 100 + centre[0]] == 0).all()


def test_configuration_names_and_the_pacgan_batch():
    from experiments import mode_collapse

    config = mode_collapse.train_config("grid", "pacgan4", "full")
    assert config.model.pack == 4 and config.batch_size == 400  # 100 packed inputs of 4 samples
    assert (config.model.g_width, config.model.depth, config.model.d_width, config.model.d_depth) == (400, 4, 200, 3)
    assert config.model.g_batch_norm and config.model.d_maxout_pieces == 5 and config.train_steps == 400_000
    assert config.g_optimizer.learning_rate == 1e-4 and config.g_optimizer.b1 == 0.8
    long_grid = mode_collapse.train_config("grid", mode_collapse.RECOMMENDED["grid"], "long")
    assert long_grid.train_steps == 160_000 and long_grid.lr_decay_steps == 80_000  # decay over the second half
    assert (long_grid.model.g_width, long_grid.model.d_width, long_grid.model.pack) == (128, 64, 2)
    assert mode_collapse.train_config("ring", "gan", "long", train_steps=10).train_steps == 10
    with pytest.raises(ValueError, match="no stacked-digits version"):
        mode_collapse.train_config("stacked_digits", "gan", "long")
    with pytest.raises(ValueError, match="no 2-D version"):
        mode_collapse.train_config("ring", "gan", "fast32")
    with pytest.raises(ValueError, match="Unknown configuration 'pacgan9'"):
        mode_collapse.train_config("ring", "pacgan9")
    with pytest.raises(ValueError, match="stacked_digits"):
        mode_collapse.train_config("spiral", "gan")


def test_the_tutorial_remedies_build_what_they_name():
    """entropy: G's loss gains -0.1 H; weak_d_*: D's width halved / quartered, G's untouched; n_gen2: two G
    updates a step; rmsprop: both optimizers are RMSProp (one update of a scalar, by hand)."""
    from experiments import mode_collapse
    from jaxgan import build

    def built(name):
        return build.build_validated(mode_collapse.train_config("ring", name, "fast"), 1)

    base = built("gan")
    assert [(t.name, t.weight) for t in built("entropy").step.g_terms] == [("g_entropy", -0.1)]

    def d_widths(b):
        params = jax.eval_shape(lambda: b.discriminator.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)), train=False))
        return [leaf.shape[-1] for leaf in jax.tree_util.tree_leaves(params["params"]) if leaf.ndim == 2]

    for name, fraction in (("weak_d_half", 2), ("weak_d_quarter", 4)):
        weak = built(name)
        assert [w * fraction for w in d_widths(weak)[:-1]] == d_widths(base)[:-1]  # every hidden layer; 1 logit
        assert weak.generator == base.generator
    assert built("n_gen2").step.n_gen == 2 and base.step.n_gen == 1
    lr = mode_collapse.PRESETS["fast"]["learning_rate"]
    for tx in (built("rmsprop").g_tx, built("rmsprop").d_tx):
        update, _ = tx.update(jnp.asarray(3.0), tx.init(jnp.zeros(())), jnp.zeros(()))
        np.testing.assert_allclose(float(update), -lr * 3.0 / (np.sqrt(0.01 * 9.0) + 1e-8), rtol=1e-6)


def test_sn_hinge_configurations_build_a_batch_norm_free_spectrally_normalised_d():
    """`sn_hinge` is Miyato et al.'s D: every D kernel spectrally normalised, no BatchNorm, the hinge loss;
    the 2-D data's MLP D takes the same overrides."""
    import jax

    from experiments import mode_collapse
    from jaxgan import config as config_lib

    for data in ("stacked_digits", "grid"):
        config = mode_collapse.train_config(data, "pacgan2_sn_hinge_ema_decay", train_steps=10)
        assert (config.loss, config.model.spectral_norm, config.model.pack, config.lr_decay_steps) == (
            "hinge",
            True,
            2,
            5,
        )
        _, discriminator = config_lib.build_networks(config)
        x = np.zeros((4, *config_lib.data_shape(config)), np.float32)
        variables = jax.eval_shape(lambda: discriminator.init(jax.random.PRNGKey(0), x, train=False))
        names = " ".join(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(variables))
        assert "BatchNorm" not in names, names
        layers = [
            p[-2].key for p, _ in jax.tree_util.tree_leaves_with_path(variables["params"]) if p[-1].key == "kernel"
        ]
        assert len(layers) >= 2 and all(f"{layer}/kernel/u" in names for layer in layers), names  # power-iteration u
    assert mode_collapse.evaluates_ema("pacgan2_sn_hinge_ema_decay")
    recommended = mode_collapse.train_config("stacked_digits", mode_collapse.RECOMMENDED["stacked_digits"])
    assert (recommended.loss, recommended.model.spectral_norm, recommended.data.cluster_labels) == (
        "hinge",
        True,
        recommended.model.num_classes,
    )
    assert recommended.data.cluster_labels >= mode_collapse.CLUSTERS["stacked_digits"]
    assert set(mode_collapse.RECOMMENDED.values()) <= set(mode_collapse.DEFAULT_SWEEP)  # the table shows them


def test_packed_r1_configuration_builds_a_batch_norm_free_step():
    """`pacgan4_r1_ema_decay`: R1 on a packed D (per packed tuple), which the step used to refuse."""
    from experiments import mode_collapse
    from jaxgan import config as config_lib

    for data in ("stacked_digits", "grid"):
        config = mode_collapse.train_config(data, "pacgan4_r1_ema_decay", train_steps=10)
        assert (config.model.pack, config.model.d_batch_norm, config.regularization.r1_gamma) == (4, False, 0.1)
        generator, discriminator = config_lib.build_networks(config)
        step = config_lib.build_step(config, generator, discriminator, *config_lib.build_optimizers(config))
        assert step.pack == 4 and step.regularization.r1_gamma == 0.1


def test_ten_thousand_cluster_configuration_deepens_g_only():
    """`kmeans10k_deep_g_sn_hinge_ema_decay`: 10,000 clusters, the class embedding outside D's spectral norm,
    one extra 3x3 conv in G (at 4x4, 8 px) and none in D, G twice as wide; otherwise `kmeans_sn_hinge_ema_decay`."""
    import jax

    from experiments import mode_collapse
    from jaxgan import config as config_lib

    config = mode_collapse.train_config("stacked_digits", "kmeans10k_deep_g_sn_hinge_ema_decay")
    base = mode_collapse.train_config("stacked_digits", "kmeans_sn_hinge_ema_decay")
    assert (config.data.cluster_labels, config.model.num_classes, config.model.projection_embed_sn) == (
        10_000,
        10_000,
        False,
    )
    for key in ("batch_size", "loss", "lr_decay_steps", "train_steps"):
        assert config[key] == base[key], key
    config_lib.validate(config, 1)
    generator, discriminator = config_lib.build_networks(config)
    x, labels = np.zeros((2, 8, 8, 3), np.float32), np.zeros((2,), np.int32)
    g_vars = jax.eval_shape(lambda: generator.init(jax.random.PRNGKey(0), np.zeros((2, 100), np.float32), labels))
    d_vars = jax.eval_shape(lambda: discriminator.init(jax.random.PRNGKey(0), x, labels))
    assert (config.model.g_width, config.model.d_width) == (2 * base.model.g_width, base.model.d_width) == (128, 64)
    assert g_vars["params"]["extra0"]["kernel"].shape == (3, 3, 128, 128) and "extra1" not in g_vars["params"]
    assert not any("extra" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(d_vars))
    assert d_vars["params"]["embed"]["embedding"].shape == (10_000, 128)


def test_recommended_stacked_configuration_is_the_deep_g_on_twenty_thousand_clusters():
    """`kmeans20k_deep_g_sn_hinge_ema_decay` (recommended for stacked digits) differs from the 10,000-cluster
    version only in the number of clusters (and so of classes): the train configs are equal field by field
    apart from those two."""
    from experiments import mode_collapse

    assert mode_collapse.RECOMMENDED["stacked_digits"] == "kmeans20k_deep_g_sn_hinge_ema_decay"
    config = mode_collapse.train_config("stacked_digits", "kmeans20k_deep_g_sn_hinge_ema_decay").to_dict()
    fewer = mode_collapse.train_config("stacked_digits", "kmeans10k_deep_g_sn_hinge_ema_decay").to_dict()
    assert (config["data"].pop("cluster_labels"), config["model"].pop("num_classes")) == (20_000, 20_000)
    assert (fewer["data"].pop("cluster_labels"), fewer["model"].pop("num_classes")) == (10_000, 10_000)
    assert config == fewer


def test_top_k_configuration_decays_k_once_per_epoch(monkeypatch):
    """`top_k`: Sinha et al.'s nu = 0.5 and gamma = 0.99 per epoch, an epoch being num_examples // batch_size
    steps: 1000 batches of 100 points for 2-D data (PacGAN's epoch), 100,000 / 256 for clustered stacked digits."""
    from experiments import mode_collapse
    from jaxgan import config as config_lib

    ring = mode_collapse.train_config("ring", "top_k", "full")
    assert (ring.regularization.top_k_fraction, ring.regularization.top_k_decay) == (0.5, 0.99)
    assert ring.regularization.top_k_decay_steps == 1000
    step = config_lib.build_step(ring, *config_lib.build_networks(ring), *config_lib.build_optimizers(ring))
    assert step.regularization.top_k_decay_steps == 1000
    monkeypatch.setitem(
        mode_collapse.CONFIGURATIONS,
        "_test_top_k_clusters",
        {
            **mode_collapse.CONFIGURATIONS["kmeans_sn_hinge_ema_decay"],
            "regularization.top_k_fraction": 0.5,
            "regularization.top_k_decay_steps": -1,
        },
    )
    stacked = mode_collapse.train_config("stacked_digits", "_test_top_k_clusters")
    assert stacked.batch_size == 256 and stacked.regularization.top_k_decay_steps == 100_000 // 256
    assert mode_collapse.train_config("ring", "gan").regularization.top_k_fraction == 1.0  # off elsewhere


def test_infogan_configurations_give_one_code_value_per_mode():
    """`infogan`: an 8-way code on the ring, 25-way on the grid, three 10-way codes (one per channel) on
    stacked digits, with D's Q head sized to match; a 2-D InfoGAN step runs."""
    from experiments import mode_collapse
    from jaxgan import config as config_lib

    expect = {"ring": ((8,), 8), "grid": ((25,), 25), "stacked_digits": ((10, 10, 10), 30)}
    for data, (sizes, q_outputs) in expect.items():
        for name in ("infogan", "pacgan4_infogan_sn_hinge_ema_decay"):
            config = mode_collapse.train_config(data, name, train_steps=10)
            generator, discriminator = config_lib.build_networks(config)
            assert generator.latent_codes.categorical == sizes and discriminator.info_outputs == q_outputs
    config = mode_collapse.train_config("ring", "infogan", train_steps=2)
    generator, discriminator = config_lib.build_networks(config)
    step = config_lib.build_step(config, generator, discriminator, *config_lib.build_optimizers(config))
    state = step.init_state(0, np.zeros((1, 2), np.float32))
    mesh = jaxgan.make_mesh(jax.devices()[:1])
    run = jaxgan.shard_map_step(step, mesh)
    batch = {"image": np.random.RandomState(0).normal(size=(1, config.batch_size, 2)).astype(np.float32)}
    _, metrics = run(jaxgan.replicate(jax.device_get(state), mesh), batch)
    # Q starts near chance on the 8-way code: cross-entropy ~ log 8.
    assert abs(float(metrics["g_info_loss"]) - np.log(8)) < 0.5


def test_stacked_digits_data_are_three_train_digits_and_a_run_is_scored(tmp_path):
    """The stacked-digits source stacks three train-split digits as channels (checked against the split
    itself), a wrong channel count fails before anything runs, and a 2-step run is scored and saved."""
    import json

    from experiments import mode_collapse
    from jaxgan import config as config_lib
    from jaxgan.loop import load_training_arrays
    from jaxgan.metrics import digits_classifier

    config = mode_collapse.train_config("stacked_digits", "pacgan2", train_steps=2)
    assert (config.data.source, config.data.channels, config.model.name, config.batch_size) == (
        "stacked_digits",
        3,
        "dcgan",
        128,
    )
    assert mode_collapse.train_config("stacked_digits", "pacgan2", "fast32").data.image_size == 32
    config.data.num_examples = 50
    images = load_training_arrays(config.data, seed=3)["image"]
    assert images.shape == (50, 8, 8, 3) and images.dtype == np.uint8  # the digits' own size
    train, _ = digits_classifier.load_split("train", image_size=8)
    test, _ = digits_classifier.load_split("test", image_size=8)
    for c in range(3):  # every channel is one train digit, never a held-out one
        diff = lambda pool: np.abs(images[:, None, :, :, c].astype(int) - pool[None].astype(int)).sum((2, 3))
        assert (diff(train).min(axis=1) == 0).all()
        assert (diff(test).min(axis=1) > 0).all()
    bad = mode_collapse.train_config("stacked_digits", "gan")
    bad.data.channels = 1
    with pytest.raises(ValueError, match="channels=3"):
        config_lib.validate(bad, 1)

    scores, samples = mode_collapse.train_image_seed(
        "stacked_digits", "gan", preset="fast", seed=0, train_steps=2, workdir=str(tmp_path / "run"), num_samples=300
    )
    assert 1 <= scores["modes"] <= 300 and scores["reverse_kl"] > 0 and math.isnan(scores["high_quality"])
    assert samples.shape == (100, 8, 8, 3) and samples.dtype == np.uint8
    assert json.load(open(tmp_path / "run" / "config.json"))["data"]["source"] == "stacked_digits"
    assert (tmp_path / "run" / "checkpoints" / "2").is_dir()


def test_command_line_trains_the_recommended_configuration_and_sample_exports_its_points(tmp_path):
    """The issue's commands: `experiments/mode_collapse.py --workdir --config.data --config.seed` trains
    RECOMMENDED[data] for one seed (modes.json, samples.png, checkpoints), and `tools/sample.py --num=2500`
    exports 2,500 `points` of the trained EMA G."""
    import json
    import subprocess
    import sys

    from experiments import mode_collapse
    from jaxgan.workdir import load_generator

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS="")
    workdir, out = tmp_path / "ring", tmp_path / "ring.npz"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/mode_collapse.py",
            f"--workdir={workdir}",
            "--config.data=ring",
            "--config.seed=3",
            "--config.train_steps=40",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.load(open(workdir / "modes.json"))
    assert (record["config"], record["seed"], record["steps"], record["weights"]) == (
        mode_collapse.RECOMMENDED["ring"],
        3,
        40,
        "ema",
    )
    assert os.path.exists(workdir / "samples.png") and "40" in os.listdir(workdir / "checkpoints")
    result = subprocess.run(
        [sys.executable, "tools/sample.py", f"--workdir={workdir}", "--num=2500", f"--out={out}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as f:
        points = f["points"]
    assert points.shape == (2500, 2) and np.isfinite(points).all() and points.std(axis=0).min() > 0
    generator = load_generator(str(workdir))
    assert generator.step == 40 and generator.ema
    np.testing.assert_allclose(points, generator.sample(2500, seed=0), rtol=1e-4, atol=1e-5)  # other XLA flags
