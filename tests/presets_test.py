"""Every preset in experiments/configs trains a few steps: losses finite, both players move.

Each preset is shrunk (widths, batch, latent size) so the suite stays fast, but
keeps everything that makes it that preset: architecture, conditioning, loss,
n_critic, stabilizers and optimizer settings. Data: the offline digits.
"""

from __future__ import annotations

import importlib
import os

import jax
import numpy as np
import pytest

from jaxgan import data, orchestrate
from jaxgan.build import build_networks, build_optimizers, build_step
from jaxgan.config import validate
from jaxgan.train import make_mesh, replicate, shard_map_step
from jaxgan.train.kit import INIT_COMPILER_OPTIONS

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "configs")
# The image-to-image translation configs train another step (tests/translation_test.py).
NOT_GAN_ZOO = (
    "__init__.py",
    "test.py",
    "cyclegan.py",
    "pix2pix.py",
    # The GAN data-augmentation experiment's configs (tests/augment_classifier_test.py).
    "augment_classifier.py",
    "augment_classifier_full.py",
    # The video GAN's config (tests/video_test.py).
    "video_gan.py",
)
PRESETS = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f not in NOT_GAN_ZOO)


def test_the_issue_presets_exist():
    assert set(PRESETS) >= {
        "mlp_gan",
        "dcgan",
        "cgan",
        "cgan_projection",
        "acgan",
        "lsgan",
        "wgan",
        "wgan_gp",
        "sngan_resnet",
        "sagan",
        "biggan",
        "stylegan2",
    }


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return data.load_tfds_images(
        "sklearn_digits",
        split="train",
        data_dir=str(tmp_path_factory.mktemp("tfds")),
        image_size=32,
        channels=1,
        with_labels=True,
    )


def _shrunk(name):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    config.model.g_width = config.model.d_width = 8
    config.model.latent_dim = 8
    config.batch_size = 16
    config.critic_loop = "scan"  # compile time flat in n_critic
    return config


# sagan's nets and loss are biggan's without BigGAN's G additions: biggan's two steps train them (the suite's
# time budget); tests/config_build_test.py checks what the sagan file builds.
# tests/stylegan2_test.py trains the stylegan2(_ada) presets' step (on 1 and 8 devices, and resumes it).
TRAINED = [name for name in PRESETS if name not in ("sagan", "stylegan2", "stylegan2_ada")]


@pytest.mark.parametrize("name", TRAINED)
def test_preset_trains(name, digits):
    config = _shrunk(name)
    mesh = make_mesh(jax.devices()[:2])
    validate(config, mesh.size)
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    orchestrate.check_labels_fit(digits, step.num_classes)
    batcher = data.ArrayBatcher(digits, batch_size=config.batch_size, seed=0)
    state = step.init_state(0, data.to_model_range(digits["image"][:1]))
    initial = jax.tree_util.tree_map(np.asarray, jax.device_get(state))
    # Compiled with XLA's cheap optimization options: the test checks what a step does, not its speed,
    # and the presets' ResNet steps compile ~30% faster this way.
    run = shard_map_step(step, mesh, compiler_options=INIT_COMPILER_OPTIONS)
    state = replicate(state, mesh)
    for s in range(2):
        batch = {k: v for k, v in orchestrate.step_batch(batcher, s, config.n_critic).items() if k in step.batch_keys}
        state, metrics = run(state, batch)
        values = {k: float(v) for k, v in metrics.items()}
        assert all(np.isfinite(v) for v in values.values()), values
    final = jax.device_get(state)
    for net in ("g", "d"):
        before, after = getattr(initial, net).params, getattr(final, net).params
        moved = [
            float(np.abs(np.asarray(a) - b).max())
            for a, b in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(before))
        ]
        assert max(moved) > 0, f"{name}: {net} did not change"
    assert "d_loss" in values and "g_loss" in values
    if config.regularization.weight_clip:  # WGAN: every critic weight inside [-c, c] after the update
        c = config.regularization.weight_clip
        assert max(float(np.abs(np.asarray(x)).max()) for x in jax.tree_util.tree_leaves(final.d.params)) <= c


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: setattr(c.model, "name", "stylegan9"), r"valid names: \['dcgan', 'mlp', 'resnet', 'stylegan2'\]"),
        (lambda c: setattr(c, "loss", "wgan"), "config.loss='wgan' is unknown; valid names"),
        (lambda c: setattr(c.data, "image_size", 48), "48"),
        (
            lambda c: (setattr(c.model, "num_classes", 10), setattr(c.data, "source", "folder")),
            "folder of images has none",
        ),
        (lambda c: setattr(c, "batch_size", 17), "not divisible"),
        (
            lambda c: setattr(c.data, "source", "parquet"),
            r"valid: \('tfds', 'npz', 'folder', 'mixture', 'stacked_digits'\)",
        ),
        (lambda c: (setattr(c.data, "source", "mixture"), setattr(c.data, "name", "ring")), "needs model.name='mlp'"),
        (lambda c: (setattr(c.data, "source", "mixture"), setattr(c.data, "name", "spiral")), "not a mixture"),
        (
            lambda c: setattr(c, "lr_decay_steps", c.train_steps + 1),
            r"config.lr_decay_steps=1501 must be in \[0, total_steps=1500\], got 1501",
        ),
        (lambda c: (setattr(c, "lr_decay_steps", 1), setattr(c, "train_images", 6400)), "not config.train_images"),
        (
            lambda c: (
                setattr(c, "lr_decay_steps", 1),
                setattr(c.regularization, "r1_gamma", 1.0),
                setattr(c.regularization, "r1_every", 16),
            ),
            "lazy R1",
        ),
    ],
)
def test_config_errors_name_the_problem_before_building(change, match):
    config = importlib.import_module("experiments.configs.dcgan").get_config()
    change(config)
    with pytest.raises(ValueError, match=match):
        validate(config, 8)


def test_config_combination_errors_come_from_the_step():
    config = _shrunk("dcgan")
    config.regularization.weight_clip = 0.01  # with the non-saturating loss
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    with pytest.raises(ValueError, match="Weight clipping"):
        build_step(config, generator, discriminator, g_tx, d_tx)


def test_lr_decay_steps_decays_both_learning_rates_to_zero_per_update():
    """With a constant gradient every Adam update is -lr(t) (bias-corrected m = g, v = g^2), so the updates
    trace the schedule: G constant for train_steps - N updates then linear to 0; D the same over n_critic
    updates per step."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    config = importlib.import_module("experiments.configs.dcgan").get_config()
    config.train_steps, config.lr_decay_steps, config.n_critic = 8, 4, 2
    config.g_optimizer.learning_rate, config.d_optimizer.learning_rate = 1e-3, 4e-3
    validate(config, 1)
    g_tx, d_tx = build_optimizers(config)

    def updates(tx, count):
        params = jnp.zeros(3)
        state, out = tx.init(params), []
        for _ in range(count):
            update, state = tx.update(jnp.ones(3), state, params)
            out.append(float(-update[0]))
        return np.asarray(out)

    hand = lambda lr, total, decay: [lr if t < total - decay else lr * (total - t) / decay for t in range(total)]
    np.testing.assert_allclose(updates(g_tx, 8), hand(1e-3, 8, 4), rtol=1e-5)
    np.testing.assert_allclose(updates(d_tx, 16), hand(4e-3, 16, 8), rtol=1e-5)
