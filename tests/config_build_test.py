"""The config layer against hand-written expectations: presets build what their files say.

`jaxgan.config` holds the fields and the config-only checks, `jaxgan.build` the builders,
`jaxgan.nets.registry` the one mapping of `config.model` fields per architecture, and
`jaxgan.run_config` the schedule and the checks every orchestrator shares. The numbers below are
read off the experiment files and the papers' settings by hand, not computed with jaxgan.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgan import build, compile_cache, config as config_lib, run_config
from jaxgan.nets import ARCHITECTURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def _preset(name: str, *args):
    return importlib.import_module(f"experiments.configs.{name}").get_config(*args)


# preset: (G class, G fields, D class, D fields, loss, n_critic, (lr, b1, b2) of both optimizers,
#          Schedule (train, log, sample, checkpoint, eval, real images per step)).
DCGAN_G = dict(latent_dim=100, image_size=32, channels=1, ngf=32, upsample="subpixel", num_classes=0)
DCGAN_D = dict(image_size=32, ndf=32, batch_norm=True, spectral_norm=False, num_classes=0, pack=1, width_multiplier=1.0)
RESNET_G = dict(latent_dim=128, image_size=32, channels=1, ngf=64)
RESNET_D = dict(image_size=32, ndf=64, spectral_norm=True, width_multiplier=1.0)
EXPECTED: dict = {
    "dcgan": (
        "DCGANGenerator",
        DCGAN_G,
        "DCGANDiscriminator",
        DCGAN_D,
        "non_saturating",
        1,
        (2e-4, 0.5, 0.999),
        (1500, 50, 250, 500, 0, 64),
    ),
    "lsgan": (
        "DCGANGenerator",
        DCGAN_G,
        "DCGANDiscriminator",
        DCGAN_D,
        "least_squares",
        1,
        (2e-4, 0.5, 0.999),
        (1500, 50, 250, 500, 0, 64),
    ),
    "wgan": (
        "DCGANGenerator",
        DCGAN_G,
        "DCGANDiscriminator",
        dict(DCGAN_D, batch_norm=False),
        "wasserstein",
        5,
        (5e-5, 0.0, 0.99),  # RMSProp: decay 0.99, no momentum
        (3000, 50, 250, 500, 0, 320),
    ),
    "wgan_gp": (
        "DCGANGenerator",
        DCGAN_G,
        "DCGANDiscriminator",
        dict(DCGAN_D, batch_norm=False),
        "wasserstein",
        5,
        (1e-4, 0.0, 0.9),
        (3000, 50, 250, 500, 0, 320),
    ),
    "cgan": (
        "DCGANGenerator",
        dict(DCGAN_G, num_classes=10),
        "DCGANDiscriminator",
        dict(DCGAN_D, num_classes=10, conditioning="concat", aux_classifier=False),
        "non_saturating",
        1,
        (2e-4, 0.5, 0.999),
        (1500, 50, 250, 500, 0, 64),
    ),
    "acgan": (
        "DCGANGenerator",
        dict(DCGAN_G, num_classes=10),
        "DCGANDiscriminator",
        dict(DCGAN_D, num_classes=10, conditioning="none", aux_classifier=True),
        "non_saturating",
        1,
        (2e-4, 0.5, 0.999),
        (1500, 50, 250, 500, 0, 64),
    ),
    "cgan_projection": (
        "ResNetGenerator",
        dict(RESNET_G, num_classes=10),
        "ResNetDiscriminator",
        dict(RESNET_D, num_classes=10, conditioning="projection"),
        "hinge",
        5,
        (2e-4, 0.0, 0.9),
        (5000, 50, 250, 500, 0, 320),
    ),
    "sagan": (
        "ResNetGenerator",
        dict(RESNET_G, num_classes=10, attention_resolution=16, hierarchical_latent=False, spectral_norm=True),
        "ResNetDiscriminator",
        dict(RESNET_D, num_classes=10, conditioning="projection", attention_resolution=16),
        "hinge",
        1,
        ((1e-4, 0.0, 0.9), (4e-4, 0.0, 0.9)),  # G, D: two time-scales
        (5000, 50, 250, 500, 0, 64),
    ),
    "biggan": (
        "ResNetGenerator",
        dict(RESNET_G, num_classes=10, attention_resolution=16, hierarchical_latent=True, shared_embedding_dim=128)
        | dict(spectral_norm=True),
        "ResNetDiscriminator",
        dict(RESNET_D, num_classes=10, conditioning="projection", attention_resolution=16),
        "hinge",
        2,
        ((1e-4, 0.0, 0.999), (4e-4, 0.0, 0.999)),
        (5000, 50, 250, 500, 0, 128),
    ),
    # Adam (0, 0.99) at 0.0025 with StyleGAN2's lazy corrections by hand: c = k / (k + 1), lr c, beta^c;
    # G's k = 4 (path length), D's k = 16 (R1).
    "stylegan2": (
        "StyleGAN2Generator",
        dict(z_dim=64, w_dim=64, image_size=32, channels=1, channel_base=1024, channel_max=64, mapping_layers=2)
        | dict(style_mixing_prob=0.9, num_classes=10, latent_dim=64 + 66 + 16 + 2 * (64 + 256 + 1024)),
        "StyleGAN2Discriminator",
        dict(image_size=32, channel_base=1024, channel_max=64, num_classes=10, conditioning="projection")
        | dict(minibatch_std=True, mapping_layers=8),
        "non_saturating",
        1,
        ((0.0025 * 4 / 5, 0.0, 0.99 ** (4 / 5)), (0.0025 * 16 / 17, 0.0, 0.99 ** (16 / 17))),
        (5000, 50, 250, 500, 0, 32),
    ),
    "sngan_resnet": (
        "ResNetGenerator",
        dict(RESNET_G, num_classes=0),
        "ResNetDiscriminator",
        dict(RESNET_D, num_classes=0),
        "hinge",
        5,
        (2e-4, 0.0, 0.9),
        (5000, 50, 250, 500, 0, 320),
    ),
    "mlp_gan": (
        "MLPGenerator",
        dict(latent_dim=64, hidden=256, depth=3, out_shape=(32, 32, 1), tanh_output=True),
        "MLPDiscriminator",
        dict(hidden=256, depth=3, maxout_pieces=0),
        "non_saturating",
        1,
        (2e-4, 0.5, 0.999),
        (3000, 50, 250, 500, 0, 64),
    ),
    "test": (
        "DCGANGenerator",
        dict(DCGAN_G, latent_dim=16, ngf=8),
        "DCGANDiscriminator",
        dict(DCGAN_D, ndf=8),
        "non_saturating",
        1,
        (2e-4, 0.5, 0.999),
        (6, 2, 3, 3, 0, 16),
    ),
}


def _adam_updates(lr, b1, b2, grads, eps=1e-8):
    """Adam by hand (Kingma & Ba 2015, Algorithm 1): the updates of a scalar parameter."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        out.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return out


def _rmsprop_updates(lr, momentum, decay, grads, eps=1e-8):
    """RMSProp by hand, as torch.optim.RMSprop (v from 0, eps outside the root): a scalar's updates."""
    v = buf = 0.0
    out = []
    for g in grads:
        v = decay * v + (1 - decay) * g * g
        buf = momentum * buf + g / (np.sqrt(v) + eps)
        out.append(-lr * buf)
    return out


RMSPROP_PRESETS = {"wgan"}  # the paper's optimizer (Arjovsky et al. 2017, alg. 1); the others use Adam


def _tx_updates(tx, grads):
    params = jnp.zeros(())
    state, out = tx.init(params), []
    for g in grads:
        update, state = tx.update(jnp.asarray(g, jnp.float32), state, params)
        out.append(float(update))
    return out


EXPECTED["stylegan2_ada"] = EXPECTED["stylegan2"]  # the same nets, loss, optimizers and schedule, plus ADA


def test_preset_options_after_the_colon():
    """biggan/sagan ':paper' and the D:G variants, stylegan2 ':paper', stylegan2_ada's ADA; unknown options fail."""
    big = _preset("biggan", "paper,d4")
    assert (big.model.g_width, big.model.d_width, big.model.latent_dim, big.batch_size, big.n_critic) == (
        96,
        96,
        120,
        256,
        4,
    )
    assert big.ema_decay == 0.9999 and _preset("biggan").n_critic == 2 and _preset("sagan", "d2").n_critic == 2
    assert _preset("sagan", "paper").batch_size == 256
    paper = _preset("stylegan2", "paper")
    m = paper.model
    assert (m.latent_dim, m.w_dim, m.channel_base, m.channel_max, m.mapping_layers) == (512, 512, 32768, 512, 8)
    assert paper.regularization.r1_gamma == 10.0
    ada = _preset("stylegan2_ada").regularization
    assert (ada.ada_pipeline, ada.ada_target, ada.ada_p, ada.ada_interval, ada.ada_kimg) == ("bgc", 0.6, 0.0, 4, 100.0)
    assert _preset("stylegan2_ada", "paper").regularization.ada_kimg == 500.0
    with pytest.raises(ValueError, match=r"biggan preset: unknown options \['d3'\]"):
        _preset("biggan", "d3")


def test_every_gan_zoo_preset_has_expectations():
    configs = os.path.join(ROOT, "experiments", "configs")
    zoo = {f[:-3] for f in os.listdir(configs) if f.endswith(".py")} - {
        "__init__",
        "cyclegan",
        "pix2pix",
        "video_gan",
        "augment_classifier",
        "augment_classifier_full",
    }
    assert zoo == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_builds_what_its_file_says(name):
    g_class, g_fields, d_class, d_fields, loss, n_critic, optimizers, schedule = EXPECTED[name]
    if not isinstance(optimizers[0], tuple):  # one (lr, b1, b2) for both players
        optimizers = (optimizers, optimizers)
    config = _preset(name)
    built = build.build_validated(config, 8)
    assert type(built.generator).__name__ == g_class and type(built.discriminator).__name__ == d_class
    assert {k: getattr(built.generator, k) for k in g_fields} == g_fields
    assert {k: getattr(built.discriminator, k) for k in d_fields} == d_fields
    step = built.step
    assert (step.loss.name, step.n_critic, step.critic_loop, step.num_discriminators, step.fake_labels) == (
        loss,
        n_critic,
        "auto",
        1,
        "uniform",
    )
    assert step.sample_shape == (32, 32, 1)
    assert step.regularization.weight_clip == (0.01 if name == "wgan" else 0.0)
    assert step.regularization.gradient_penalty == (10.0 if name == "wgan_gp" else 0.0)
    assert step.regularization.orthogonal == (1e-4 if name == "biggan" else 0.0)
    if name.startswith("stylegan2"):
        reg = step.regularization
        assert (reg.r1_gamma, reg.r1_every, reg.path_length, reg.path_length_every) == (0.01, 16, 2.0, 4)
        # StyleGAN2-ADA's EMA by hand: half-life 10k images, ramped to 5% of the images seen; 32 per step.
        for s, h in ((0, 0.0), (100, 100 * 32 * 0.05), (10_000, 10_000.0)):
            want = 0.5 ** (32 / h) if h else 0.0
            assert float(step.ema_decay(jnp.asarray(s))) == pytest.approx(want, rel=1e-5)
    else:  # The EMA warm-up rule min(0.999, (1 + s) / (10 + s)), by hand.
        for s, decay in ((0, 0.1), (10, 11 / 20), (10_000, 0.999)):
            assert float(step.ema_decay(jnp.asarray(s))) == pytest.approx(decay, rel=1e-6)
    grads = [1.0, 3.0, -2.0]
    by_hand = _rmsprop_updates if name in RMSPROP_PRESETS else _adam_updates
    for tx, (lr, b1, b2) in zip((built.g_tx, built.d_tx), optimizers):
        np.testing.assert_allclose(_tx_updates(tx, grads), by_hand(lr, b1, b2, grads), rtol=2e-5)
    s = config_lib.resolve_schedule(config)
    assert (s.train_steps, s.log_every, s.sample_every, s.checkpoint_every, s.eval_every, s.images_per_step) == schedule


def test_mlp_preset_parameter_counts_by_hand():
    built = build.build(_preset("mlp_gan"))
    state = jax.eval_shape(lambda: built.step.init_state(0, np.zeros((1, 32, 32, 1), np.float32)))
    count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))
    # G: z 64 -> 256 -> 256 -> 256 -> 32*32*1, each Dense with its bias.
    g = (64 * 256 + 256) + 2 * (256 * 256 + 256) + (256 * 1024 + 1024)
    # D: 1024 -> 256 -> 256 -> 256 -> 1 logit.
    d = (1024 * 256 + 256) + 2 * (256 * 256 + 256) + (256 + 1)
    assert (count(state.g.params), count(state.d.params)) == (g, d) == (411_392, 394_241)


@pytest.mark.parametrize(
    "name, preset, schedule, networks",
    [
        (
            "cyclegan",
            "demo",
            (800, 50, 200, 200, 0, 2),
            dict(
                g_ab=("ResnetGenerator", dict(features=8, num_blocks=2, out_channels=3)),
                d_a=("PatchDiscriminator", dict(features=8, num_layers=3)),
            ),
        ),
        (
            "cyclegan",
            "paper",
            (266_800, 100, 5000, 5000, 0, 1),
            dict(
                g_ab=("ResnetGenerator", dict(features=64, num_blocks=9, out_channels=3)),
                d_a=("PatchDiscriminator", dict(features=64, num_layers=3)),
            ),
        ),
        (
            "pix2pix",
            "demo",
            (1000, 50, 250, 250, 0, 4),
            dict(
                generator=("UNetGenerator", dict(features=16, num_downs=6, out_channels=3, dropout_rate=0.5)),
                discriminator=("PatchDiscriminator", dict(features=16, num_layers=3)),
            ),
        ),
        (
            "pix2pix",
            "paper",
            (80_000, 100, 5000, 5000, 0, 1),
            dict(
                generator=("UNetGenerator", dict(features=64, num_downs=8, out_channels=3, dropout_rate=0.5)),
                discriminator=("PatchDiscriminator", dict(features=64, num_layers=3)),
            ),
        ),
        (
            "video_gan",
            "demo",
            (1500, 50, 100, 500, 500, 16),
            dict(
                generator=("VideoGenerator", dict(content_dim=50, motion_dim=10, frame_size=32, channels=1, width=32)),
                video_d=("VideoDiscriminator", dict(frame_size=32, width=16)),
            ),
        ),
        ("video_gan", "two_digits", (3000, 50, 100, 500, 500, 16), {}),
        (
            "video_gan",
            "test",
            (8, 4, 4, 4, 0, 8),
            dict(generator=("VideoGenerator", dict(content_dim=8, motion_dim=4, frame_size=16, channels=1, width=8))),
        ),
    ],
)
def test_application_presets_build_and_schedule_by_hand(name, preset, schedule, networks):
    from jaxgan.translation import orchestrate as translation
    from jaxgan.video import orchestrate as video

    config = _preset(name, preset)
    orchestrator = video if name == "video_gan" else translation
    orchestrator.validate(config, 1)
    step = orchestrator.build_step(config)
    for field, (cls, fields) in networks.items():
        net = getattr(step, field)
        assert type(net).__name__ == cls and {k: getattr(net, k) for k in fields} == fields
    s = run_config.schedule_from_config(config, images_per_step=config.batch_size)
    assert (s.train_steps, s.log_every, s.sample_every, s.checkpoint_every, s.eval_every, s.images_per_step) == schedule


# --- Networks by name: each config.model field mapped in one place per architecture ----------------------------


def _model(**fields):
    """A plain dict (no ConfigDict): the registry reads `[]` and `.get` only."""
    model = {k: v for k, v in config_lib.base_config().model.items()}
    model.update(fields)
    return model


def test_registry_maps_the_model_fields_of_each_architecture():
    codes = build.latent_codes(config_lib.base_config())
    kw = dict(latent_codes=codes, dtype=jnp.float32)
    g, d = ARCHITECTURES["dcgan"].from_config(
        _model(
            g_width=12,
            d_width=20,
            extra_layers=1,
            d_extra_layers=-1,
            g_extra_layers=3,
            downsample="patches",
            projection_embed_sn=False,
            d_capacity="half",
        ),
        (16, 16, 3),
        **kw,
    )
    assert (
        g.ngf,
        g.image_size,
        g.channels,
        g.extra_layers,
        d.ndf,
        d.image_size,
        d.extra_layers,
        d.downsample,
        d.embed_spectral_norm,
        d.width_multiplier,
    ) == (12, 16, 3, 3, 20, 16, 1, "patches", False, 0.5)
    g, d = ARCHITECTURES["mlp"].from_config(
        _model(g_width=7, d_width=9, depth=4, d_depth=0, g_batch_norm=True, d_maxout_pieces=3), (2,), **kw
    )
    assert (g.hidden, g.depth, g.out_shape, g.tanh_output, g.batch_norm) == (7, 4, (2,), False, True)
    assert (d.hidden, d.depth, d.maxout_pieces) == (9, 4, 3)  # d_depth 0: model.depth
    _, d = ARCHITECTURES["mlp"].from_config(_model(depth=4, d_depth=2), (2,), **kw)
    assert d.depth == 2
    _, d = ARCHITECTURES["mlp"].from_config(_model(depth=4, d_depth=2, d_capacity="shallow"), (2,), **kw)
    assert d.depth == 1  # the capacity preset wins over d_depth
    g, d = ARCHITECTURES["resnet"].from_config(_model(g_width=16, d_width=24, d_capacity="shallow"), (64, 64, 1), **kw)
    assert (g.ngf, g.image_size, d.ndf, d.image_size, d.depth) == (16, 64, 24, 64, 0)


def test_workdir_config_of_an_earlier_version_builds_and_samples(tmp_path):
    """config.json as experiments/train.py wrote it at commit 78fab71 (25 fields fewer than today: no
    model.downsample, dtype, fake_labels, steps_per_call, ...): it builds exactly what today's defaults build,
    and jaxgan.workdir.load_generator and tools/sample.py sample its checkpoint."""
    from jaxgan import checkpoint
    from jaxgan import workdir as workdir_lib
    from jaxgan.sampling import generate

    workdir = tmp_path / "old_run"
    workdir.mkdir()
    shutil.copy(os.path.join(DATA, "config_78fab71.json"), workdir / "config.json")
    old = workdir_lib.load_config(str(workdir))
    assert "downsample" not in old.model and "steps_per_call" not in old and "top_k_fraction" not in old.regularization
    built, today = build.build(old), build.build(config_lib.base_config())
    assert (built.generator, built.discriminator) == (today.generator, today.discriminator)
    assert built.step.regularization == today.step.regularization and built.step.n_critic == 1

    state = built.step.init_state(3, np.zeros((1, 32, 32, 1), np.float32))
    with checkpoint.checkpoint_manager(str(workdir / "checkpoints"), async_save=False) as manager:
        checkpoint.save(manager, 7, state)
    gan = workdir_lib.load_generator(str(workdir))
    assert gan.step == 7
    key = jax.random.PRNGKey(5)
    z = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (100,))) for i in range(3)])
    expected = np.asarray(generate(built.generator, state.g_ema_params, state.g.batch_stats, z))
    np.testing.assert_allclose(gan.sample(3, seed=5, batch_size=4), expected, atol=1e-6)

    out = tmp_path / "s.npz"
    result = subprocess.run(
        [sys.executable, "tools/sample.py", f"--workdir={workdir}", "--num=3", "--seed=5", f"--out={out}"],
        cwd=ROOT,
        env=dict(os.environ, XLA_FLAGS=""),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as f:
        np.testing.assert_array_equal(f["images"], gan.sample_uint8(3, seed=5))


# --- Each option checked once, where it is used ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message, direct",
    [
        ("n_critic", 0, r"config.n_critic=0 must be an int >= 1 \(D updates per G update\), got 0", dict(n_critic=0)),
        ("critic_loop", "sometimes", r"config.critic_loop='sometimes' must be one of", dict(critic_loop="sometimes")),
        (
            "model.fake_labels",
            "sometimes",
            r"config.model.fake_labels='sometimes' is unknown; valid: \('uniform', 'real'\)",
            dict(fake_labels="sometimes"),
        ),
        ("num_discriminators", 0, r"config.num_discriminators=0 must be an int >= 1", dict(num_discriminators=0)),
        ("d_temperature", 0.0, r"config.d_temperature=0.0 must be > 0", dict(d_temperature=0.0)),
        ("regularization.r1_every", 0, r"config.regularization.r1_every=0 must be an int >= 1, got 0", None),
        ("step_loop", "sometimes", r"config.step_loop='sometimes' must be one of", None),
        ("steps_per_call", 0, r"config.steps_per_call=0 \(steps per call\) must be an int >= 1, got 0", None),
        ("g_optimizer.b1", 1.5, r"config.g_optimizer.b1=1.5 must lie in \[0, 1\), got 1.5", None),
        ("d_optimizer.b2", 1.0, r"config.d_optimizer.b2=1.0 must lie in \[0, 1\), got 1.0", None),
        ("g_optimizer.name", "sgd", r"config.g_optimizer.name='sgd' is unknown; valid: \('adam', 'rmsprop'\)", None),
        ("n_gen", 0, r"config.n_gen=0 must be an int >= 1 \(G updates per step\), got 0", dict(n_gen=0)),
        ("lr_decay_steps", 1501, r"config.lr_decay_steps=1501 must be in \[0, total_steps=1500\], got 1501", None),
    ],
)
def test_step_options_are_checked_once_by_their_builder(field, value, message, direct):
    """The config names the field and its value, but the check is the builder's: config.check_fields alone lets
    the value through, and the step built without any config raises the same check."""
    config = config_lib.base_config()
    parent, leaf = (config, field) if "." not in field else (config[field.split(".")[0]], field.split(".")[1])
    parent[leaf] = value
    config_lib.check_fields(config, 1)  # not the config's check
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config, 1)
    if direct is not None:
        from jaxgan.losses import get_loss
        from jaxgan.train import make_train_step

        ok = build.build(config_lib.base_config())
        argument = next(iter(direct))
        with pytest.raises(ValueError, match=rf"^{argument}\b"):  # the same check, before any config named it
            make_train_step(
                generator=ok.generator,
                discriminator=ok.discriminator,
                g_tx=ok.g_tx,
                d_tx=ok.d_tx,
                loss=get_loss("non_saturating"),
                **direct,
            )


def test_config_errors_names_the_field_and_its_value():
    config = ml_collections.ConfigDict(dict(n_critic=0, model=dict(fake_labels="x"), regularization=dict(r1_every=0)))
    cases = [
        (
            dict(fake_labels="model.fake_labels"),
            "fake_labels='x' is unknown",
            "config.model.fake_labels='x' is unknown",
        ),  # the message names the value already
        (dict(n_critic="n_critic"), "n_critic must be >= 1, got 0.", "config.n_critic=0 must be >= 1, got 0."),
        (
            dict(regularization="regularization"),
            "regularization.r1_every must be >= 1",
            "config.regularization.r1_every=0 must be >= 1",
        ),
        (dict(n_critic="n_critic"), "n_critics must be", "n_critics must be"),  # another word: left as it is
        (dict(n_critic="n_critic"), "Weight clipping ...", "Weight clipping ..."),
    ]
    for fields, raised, renamed in cases:
        with pytest.raises(ValueError) as error:
            with run_config.config_errors(config, **fields):
                raise ValueError(raised)
        assert str(error.value) == renamed


def test_check_schedule_names_field_value_and_fix():
    config = ml_collections.ConfigDict(
        dict(batch_size=12, train_steps=10, log_every_steps=1, sample_every_steps=1, checkpoint_every_steps=1)
    )
    run_config.check_schedule(config, 4)
    with pytest.raises(
        ValueError,
        match="config.batch_size=12 is not divisible by the 8 devices; set a positive multiple of the device count 8.",
    ):
        run_config.check_schedule(config, 8)
    config.batch_size, config.log_every_steps = 8, 0
    with pytest.raises(ValueError, match=r"config.log_every_steps=0 must be >= 1."):
        run_config.check_schedule(config, 8)
    config.log_every_steps, config.eval_every_steps = 1, -1
    with pytest.raises(ValueError, match=r"config.eval_every_steps=-1 must be >= 0 \(0 = never\)."):
        run_config.check_schedule(config, 8)


def test_schedule_from_config_by_hand():
    config = ml_collections.ConfigDict(
        dict(
            train_steps=100,
            log_every_steps=7,
            sample_every_steps=20,
            checkpoint_every_steps=50,
            checkpoint_every_images=1000,
            train_images=0,
        )
    )
    s = run_config.schedule_from_config(config, images_per_step=96)
    # No eval field: never. checkpoint_every_images 1000 / 96 = 10.4 -> 11 steps; the rest as given.
    assert (s.train_steps, s.log_every, s.sample_every, s.checkpoint_every, s.eval_every, s.images_per_step) == (
        100,
        7,
        20,
        11,
        0,
        96,
    )


def test_compile_cache_builds_once_per_key_and_keeps_the_most_recent():
    built = []
    make = lambda name: lambda: built.append(name) or name
    key = compile_cache.config_key("t", ml_collections.ConfigDict(dict(a=1, b=[1, 2])))
    assert key == compile_cache.config_key("t", {"b": [1, 2], "a": 1})  # the JSON, not the object
    assert compile_cache.cached(key, make("x")) == compile_cache.cached(key, make("y")) == "x"
    assert built == ["x"]
    for i in range(compile_cache.MAX_ENTRIES):
        compile_cache.cached(("t", i), make(i))
    assert compile_cache.cached(key, make("z")) == "z"  # evicted: built again
