"""The GAN step after its split into terms, keys and kit computes what the step before it computed.

`tests/data/step_before_refactor/` holds, for every configuration of `tests/step_matrix.py`
(every `Regularization` option, every loss, conditioning, InfoGAN, K discriminators, packing,
BatchNorm, both critic loops, the EMA schedules, K steps per call, pmap and 2 devices), the state
and metrics that the code before the refactor computed from fixed seeds and batches, and an Orbax
checkpoint it wrote. Here the current code runs the same configurations and must match bit for
bit, with one documented exception: G's EMA, now `optax.incremental_update` (`jaxgan.train.ema`),
which forms the old weight as 1 - (1 - decay): `decay` itself for decay >= 0.5, one rounding off
below (the warm-up's first steps), so its leaves may differ by one rounding at their scale (measured:
one leaf of `ema_warmup` by 1 ulp, 3e-8; every other configuration bit-identical).

The fixture is bit-exact for one jax version and one set of XLA flags (tests/conftest.py's); with
others the comparison is skipped, naming the difference.
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.train import keys as keys_lib
from jaxgan.train import terms
from tests import step_matrix

FIXTURE = pathlib.Path(__file__).parent / "data" / "step_before_refactor"
# G's EMA is the one state part allowed to change (issue 28, point 6: optax.incremental_update): by one
# rounding at the leaf's scale (an element near 0, where decay * ema and (1 - decay) * params cancel, may
# then be several of its own ulps off).
EMA_PREFIX = ".g_ema_params"


def _one_rounding(leaf, want):
    return np.all(np.abs(leaf - want) <= np.spacing(np.max(np.abs(want))))


def _skip_unless_same_environment():
    recorded = json.loads((FIXTURE / "environment.json").read_text())
    now = step_matrix.environment()
    if recorded != now:
        pytest.skip(f"The fixture is bit-exact for {recorded}; this run has {now}.")


def _fixture(name):
    with np.load(FIXTURE / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


def _assert_state_matches(leaves, recorded, what):
    assert list(leaves) == list(recorded["paths"]), f"{what}: the state's leaf paths changed"
    for path, leaf in leaves.items():
        want = recorded[f"state/{path}"]
        assert leaf.shape == want.shape and leaf.dtype == want.dtype, f"{what}: {path}"
        if path.startswith(EMA_PREFIX):
            assert _one_rounding(leaf, want), f"{what}: {path} is {np.max(np.abs(leaf - want))} off"
        else:
            np.testing.assert_array_equal(leaf, want, err_msg=f"{what}: {path}")


# The suite replays a covering subset (the all-on configurations hold most terms at once); the whole matrix
# is for changes to the step: JAXGAN_FULL_STEP_MATRIX=1 python -m pytest tests/step_terms_test.py
SUBSET = (
    "loss_non_saturating",
    "all_on",
    "all_on_relativistic_bn_2dev",
    "critic_scan",
    "steps_per_call_scan",
    "pmap_2dev",
)
MATRIX = list(step_matrix.CONFIGS) if os.environ.get("JAXGAN_FULL_STEP_MATRIX") == "1" else list(SUBSET)


@pytest.mark.parametrize("name", MATRIX)
def test_step_matches_the_code_before_the_refactor(name):
    """Every state leaf and metric bit-exact (G's EMA to one rounding), the same leaf paths in the same order."""
    _skip_unless_same_environment()
    recorded = _fixture(name)
    _, state, metrics = step_matrix.run_config(name)
    _assert_state_matches(step_matrix.flatten(state), recorded, name)
    recorded_metrics = {k[len("metric/") :]: v for k, v in recorded.items() if k.startswith("metric/")}
    assert sorted(metrics) == sorted(recorded_metrics), name
    for k, v in metrics.items():
        np.testing.assert_array_equal(v, recorded_metrics[k], err_msg=f"{name}: metric {k}")


def test_a_checkpoint_written_before_restores_and_trains_on():
    """The Orbax checkpoint the old code wrote (after 2 steps) restores into the new step's state and the
    next step gives the old code's final state."""
    from jaxgan import checkpoint

    _skip_unless_same_environment()
    name = step_matrix.CHECKPOINT_CONFIG
    cfg = step_matrix.CONFIGS[name]
    step = step_matrix.build(cfg)
    target = step.init_state(0, np.zeros((1, *step_matrix.SHAPE), np.float32))
    manager = checkpoint.checkpoint_manager(str(FIXTURE / "ckpt"), read_only=True)
    restored, at = checkpoint.restore_latest(manager, target)
    assert at == step_matrix.CHECKPOINT_STEP
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(target)
    assert int(restored.step) == step_matrix.CHECKPOINT_STEP
    run = step_matrix.runner(step, cfg)
    state, _ = run(step_matrix.host(restored), step_matrix.batches(cfg)[step_matrix.CHECKPOINT_STEP])
    _assert_state_matches(step_matrix.flatten(state), _fixture(name), "restored checkpoint")


# --------------------------------------------------------------------------- terms


def test_terms_follow_the_registration_order_and_the_options():
    assert [t.name for t in terms.D_TERMS] == [
        "d_class_loss",
        "d_info_loss",
        "d_gradient_penalty",
        "d_dragan",
        "d_r1",
        "d_r2",
        "d_lecam",
        "d_bcr",
        "d_historical_average",
    ]
    assert [t.name for t in terms.G_TERMS] == [
        "g_class_loss",
        "g_info_loss",
        "g_feature_matching",
        "g_mode_seeking",
        "g_historical_average",
        "g_entropy",
        "g_orthogonal",
    ]
    plain = step_matrix.build(step_matrix.CONFIGS["loss_hinge"])
    assert plain.d_terms == () and plain.g_terms == ()
    step = step_matrix.build(step_matrix.CONFIGS["all_on"])
    assert [(t.name, t.weight) for t in step.d_terms] == [
        ("d_gradient_penalty", 1.0),
        ("d_dragan", 1.0),
        ("d_r1", 0.5),
        ("d_r2", 0.5),
        ("d_lecam", 0.1),
        ("d_bcr", 1.0),
        ("d_historical_average", 0.01),
    ]
    assert [t.name for t in step.g_terms] == ["g_feature_matching", "g_mode_seeking", "g_historical_average"]
    lazy = step_matrix.build(step_matrix.CONFIGS["r1_lazy"])
    assert lazy.d_terms == ()  # lazy R1 is its own update, not a term of every D update


def _sgd_step():
    g, d = step_matrix.TinyG(), step_matrix.TinyD()
    return jaxgan.make_train_step(
        generator=g,
        discriminator=d,
        g_tx=optax.sgd(0.1),
        d_tx=optax.sgd(0.1),
        loss=jaxgan.get_loss("hinge"),
        n_critic=1,
        critic_loop="unroll",
        ema_decay=0.9,
    )


def test_a_new_term_is_one_function_and_one_registration():
    """A registered D term with weight w and value sum(params) adds w to every gradient: with SGD(lr), every D
    param ends lr * w lower than without it, and the term's value is reported under its name."""
    batch = step_matrix.batches(step_matrix.Config(n_critic=1))[0]
    mesh = jaxgan.make_mesh(jax.devices()[:1])
    state0 = step_matrix.host(_sgd_step().init_state(0, np.zeros((1, *step_matrix.SHAPE), np.float32)))
    base, base_metrics = jaxgan.shard_map_step(_sgd_step(), mesh)(jaxgan.replicate(state0, mesh), batch)

    @terms.d_term("d_test_sum", weight=lambda reg: 0.25, when=lambda reg, step: True)
    def test_sum(ctx: terms.DContext) -> jax.Array:
        return sum(jnp.sum(p) for p in jax.tree_util.tree_leaves(ctx.params))

    try:
        step = _sgd_step()
        assert [t.name for t in step.d_terms] == ["d_test_sum"]
        new, metrics = jaxgan.shard_map_step(step, mesh)(jaxgan.replicate(state0, mesh), batch)
    finally:
        terms.D_TERMS.pop()
    assert "d_test_sum" in metrics and "d_test_sum" not in base_metrics
    expected = sum(float(np.sum(p)) for p in jax.tree_util.tree_leaves(state0.d.params))
    np.testing.assert_allclose(float(metrics["d_test_sum"]), expected, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(new.d.params), jax.tree_util.tree_leaves(base.d.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) - 0.1 * 0.25, atol=1e-5)


# --------------------------------------------------------------------------- keys


def test_named_keys_are_the_documented_folds():
    """The integers each named key folds in (jaxgan.train.keys' docstring): what the fixture also pins down."""
    key, fold = jax.random.PRNGKey(7), jax.random.fold_in
    same = lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    step = keys_lib.StepKeys.of(key, jnp.int32(3), 2)
    k = fold(key, 3)
    same(step.critic, jax.random.split(fold(k, 0), 2))
    same(step.generator, fold(k, 1))
    critic = keys_lib.CriticKeys.of(key)
    for i, name in enumerate(("latents", "labels", "replay", "examples")):
        same(getattr(critic, name), fold(key, i))
    generator = keys_lib.GeneratorKeys.of(key)
    for i, name in enumerate(("latents", "labels", "examples", "latents2")):
        same(getattr(generator, name), fold(key, i))
    indices = jnp.arange(3) + 5
    example = lambda i, *folds: _fold_all(fold(key, i), folds)
    per_d = keys_lib.CriticExampleKeys.of(key, indices)
    for name, folds in (
        ("real_inputs", (0, 0)),
        ("fake_inputs", (0, 1)),
        ("gradient_penalty", (1, 0)),
        ("dragan", (1, 1)),
        ("bcr_real", (1, 2)),
        ("bcr_fake", (1, 3)),
    ):
        same(getattr(per_d, name), jnp.stack([example(int(i), *folds) for i in indices]))
    per_g = keys_lib.GeneratorExampleKeys.of(key, indices)
    same(per_g.real_inputs, jnp.stack([example(int(i), 0) for i in indices]))
    same(per_g.fake_inputs, jnp.stack([example(int(i), 1) for i in indices]))
    inputs = keys_lib.InputKeys.of(per_g.real_inputs)
    same(inputs.instance_noise, jnp.stack([example(int(i), 0, 1) for i in indices]))


def _fold_all(key, folds):
    for f in folds:
        key = jax.random.fold_in(key, f)
    return key


# --------------------------------------------------------------------------- library forms (issue 28, point 6)


def _ulps(a, b):
    """Largest distance in float32 units in the last place between equal-shaped arrays."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return int(np.max(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))))


def test_global_norm_is_bit_identical_to_the_hand_written_one():
    rs = np.random.RandomState(0)
    tree = {
        "a": rs.normal(size=(17, 5)).astype(np.float32),
        "b": [rs.normal(size=(3,)).astype(np.float32)],
        "c": np.float32(2.5),
    }
    hand = jax.jit(
        lambda t: jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree_util.tree_leaves(t)))
    )
    assert _ulps(jax.jit(optax.tree.norm)(tree), hand(tree)) == 0
    assert float(optax.tree.norm({})) == 0.0


@pytest.mark.parametrize("decay", [0.999, 0.9, 0.5, 0.1])
def test_ema_update_differs_from_the_hand_form_by_at_most_one_rounding(decay):
    """optax.incremental_update's decay * ema + (1 - decay) * params, fused by XLA in another order than the
    hand-written form: equal in exact arithmetic, apart by at most one rounding at the operands' scale."""
    rs = np.random.RandomState(1)
    ema, params = (jnp.asarray(rs.normal(size=4096).astype(np.float32)) for _ in range(2))
    d = jnp.float32(decay)
    hand = jax.jit(lambda e, p, d: d * e + (1.0 - d) * p)(ema, params, d)
    lib = jax.jit(jaxgan.train.ema_update)(ema, params, d)
    scale = np.maximum(np.abs(np.asarray(ema)), np.abs(np.asarray(params)))
    assert np.all(np.abs(np.asarray(lib) - np.asarray(hand)) <= 2 * np.spacing(scale.astype(np.float32)))


# --------------------------------------------------------------------------- the kit shared by the applications


def test_translation_and_video_steps_use_the_shared_kit():
    """One `compile_init` and one wrapper pair: the applications re-export the kit's, and the video step
    answers `uses_convolution`, so `compiler_options="auto"` picks the GAN step's CPU options for it."""
    from jaxgan.train import kit, parallel
    from jaxgan.translation import steps as tsteps
    from jaxgan.video import steps as vsteps
    from jaxgan.video.nets import ImageDiscriminator, VideoDiscriminator, VideoGenerator

    assert tsteps.compile_init is kit.compile_init and tsteps.INIT_COMPILER_OPTIONS is kit.INIT_COMPILER_OPTIONS
    tx = optax.adam(1e-3)
    g = VideoGenerator(content_dim=4, motion_dim=3, frame_size=16, channels=1, width=4)
    step = vsteps.VideoGANStep(
        generator=g,
        video_d=VideoDiscriminator(frame_size=16, width=4),
        image_d=ImageDiscriminator(frame_size=16, width=4),
        g_tx=tx,
        d_tx=tx,
        num_frames=4,
    )
    assert step.uses_convolution()
    assert parallel.resolve_compiler_options("auto", jax.devices()[:1], step) == parallel.CPU_CONV_STEP_COMPILER_OPTIONS
