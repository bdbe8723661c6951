"""The stabilizers, conditioning and K discriminators inside the train step.

The penalties themselves are tested against finite differences in
regularizers_test.py; here the step's wiring is checked against independent
host-side recomputations, closed forms and device-count invariance.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan import regularizers
from jaxgan.latent import LatentCodes
from jaxgan.nets import MLPDiscriminator, MLPGenerator
from jaxgan.train import Regularization

SHAPE = (8, 8, 1)
BATCH = 16
_CODES = LatentCodes((3,), 0)


def _nets(**d_kwargs):
    return (
        MLPGenerator(latent_dim=4, out_shape=SHAPE, hidden=16, depth=1, tanh_output=True),
        MLPDiscriminator(hidden=16, depth=1, **d_kwargs),
    )


def _step(reg=Regularization(), *, lr=0.05, n_critic=2, loss="hinge", nets=None, **kwargs):
    g, d = nets or _nets()
    tx = optax.sgd(lr)
    return jaxgan.make_train_step(
        generator=g,
        discriminator=d,
        g_tx=tx,
        d_tx=tx,
        loss=jaxgan.get_loss(loss),
        n_critic=n_critic,
        ema_decay=0.9,
        regularization=reg,
        **kwargs,
    )


def _batch(n_critic=2, seed=0):
    return {"image": np.random.RandomState(seed).uniform(-1, 1, (n_critic, BATCH, *SHAPE)).astype(np.float32)}


def _host(tree):
    return jax.tree_util.tree_map(lambda x: np.array(x), jax.device_get(tree))


def _run(step, state, batches, n_devices):
    mesh = jaxgan.make_mesh(jax.devices()[:n_devices])
    run = jaxgan.shard_map_step(step, mesh)
    state = jaxgan.replicate(_host(state), mesh)
    metrics = []
    for batch in batches:
        state, m = run(state, batch)
        metrics.append({k: float(v) for k, v in m.items()})
    return _host(state), metrics


def _assert_close(a, b, rtol=1e-5, atol=1e-6):
    for (path, x), (_, y) in zip(
        jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    ):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path))


ALL_ON = Regularization(
    gradient_penalty=1.0,
    dragan=1.0,
    r1_gamma=1.0,
    r2_gamma=1.0,
    lecam=0.1,
    bcr_real=1.0,
    bcr_fake=1.0,
    diff_augment="color,translation,cutout",
    instance_noise=0.1,
    instance_noise_anneal_steps=10,
    feature_matching=1.0,
    mode_seeking=0.1,
    historical_averaging=0.01,
    replay_capacity=16,
    top_k_fraction=0.5,
    top_k_decay=0.5,
    top_k_decay_steps=1,
    entropy=0.05,
    entropy_k=2,
    orthogonal=1e-4,
)


def test_every_stabilizer_at_once_is_independent_of_the_device_count():
    """Per-example keys and global-batch means: 1 and 8 devices give one result."""
    step = _step(ALL_ON)
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    assert set(state.extras) == {"lecam", "replay", "g_average", "d_average"}
    batches = [_batch(seed=0), _batch(seed=1)]
    ref, ref_metrics = _run(step, state, batches, 1)
    got, metrics = _run(step, state, batches, 8)
    _assert_close(got, ref)
    for m, r in zip(metrics, ref_metrics):
        for k in r:
            np.testing.assert_allclose(m[k], r[k], rtol=1e-4, atol=1e-6, err_msg=k)
    for name in (
        "d_gradient_penalty",
        "d_dragan",
        "d_r1",
        "d_r2",
        "d_lecam",
        "d_bcr",
        "d_historical_average",
        "g_feature_matching",
        "g_mode_seeking",
        "g_historical_average",
        "g_entropy",
        "g_orthogonal",
    ):
        assert name in ref_metrics[-1] and np.isfinite(ref_metrics[-1][name]), name
    assert ref_metrics[-1]["d_r1"] > 0 and ref_metrics[-1]["d_bcr"] > 0
    assert [m["g_top_k_fraction"] for m in ref_metrics] == [1.0, 0.5]  # k = B at step 0, then nu B
    assert int(ref.extras["replay"].count) == 16
    # The state moved.
    assert not np.allclose(ref.d.params["logit"]["kernel"], state.d.params["logit"]["kernel"])


def test_n_gen_makes_that_many_g_updates_per_step():
    """n_gen=3: G's Adam counts 3 updates a step, D's n_critic; and the G updates differ from n_gen=1's."""
    g, d = _nets()
    kw = dict(generator=g, discriminator=d, loss=jaxgan.get_loss("hinge"), n_critic=2, ema_decay=0.9)
    three = jaxgan.make_train_step(g_tx=optax.adam(1e-2), d_tx=optax.adam(1e-2), n_gen=3, **kw)
    one = jaxgan.make_train_step(g_tx=optax.adam(1e-2), d_tx=optax.adam(1e-2), **kw)
    state = three.init_state(0, np.zeros((1, *SHAPE), np.float32))
    after3, metrics = _run(three, state, [_batch(), _batch(seed=1)], 1)
    after1, _ = _run(one, state, [_batch(), _batch(seed=1)], 1)
    counts = lambda tx_state: [int(x) for x in jax.tree_util.tree_leaves(tx_state) if np.ndim(x) == 0]
    assert counts(after3.g.opt_state) == [6] and counts(after3.d.opt_state) == [4]
    leaves = lambda params: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(params)])
    assert not np.allclose(leaves(after3.g.params), leaves(after1.g.params))
    assert np.isfinite(metrics[-1]["g_loss"])
    with pytest.raises(ValueError, match="n_gen must be an int >= 1"):
        jaxgan.make_train_step(g_tx=optax.adam(1e-2), d_tx=optax.adam(1e-2), n_gen=0, **kw)


@pytest.mark.parametrize(
    "reg", [Regularization(), Regularization(top_k_fraction=0.25, top_k_decay=0.5, top_k_decay_steps=1)]
)
def test_two_identical_discriminators_equal_one(reg):
    """GMAN plumbing: K=2 copies of the same D, mean aggregation == a single D (also with top-k G updates, each
    D choosing its own k at step 3)."""
    one = _step(reg, num_discriminators=1)
    two = _step(reg, num_discriminators=2)
    state1 = one.init_state(0, np.zeros((1, *SHAPE), np.float32))
    state2 = two.init_state(0, np.zeros((1, *SHAPE), np.float32))
    state1, state2 = (s.replace(step=jnp.asarray(3, s.step.dtype)) for s in (state1, state2))
    assert jax.tree_util.tree_leaves(state2.d.params)[0].shape[0] == 2
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), state1.d)
    state2 = state2.replace(d=stacked, g=state1.g, g_ema_params=state1.g_ema_params)
    a, _ = _run(one, state1, [_batch()], 2)
    b, _ = _run(two, state2, [_batch()], 2)
    _assert_close(b.g.params, a.g.params)
    for k in range(2):
        _assert_close(jax.tree_util.tree_map(lambda x: x[k], b.d.params), a.d.params)


def test_multiple_discriminators_keep_their_own_state():
    step = _step(num_discriminators=3, d_aggregation="softmax", d_temperature=0.5)
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    kernels = state.d.params["logit"]["kernel"]
    assert kernels.shape[0] == 3 and not np.allclose(kernels[0], kernels[1])  # independent inits
    final, metrics = _run(step, state, [_batch()], 2)
    assert np.isfinite(metrics[0]["g_loss"])
    moved = np.abs(final.d.params["logit"]["kernel"] - kernels).reshape(3, -1).max(axis=1)
    assert (moved > 0).all()


def _d_fn(discriminator, params):
    return lambda x: discriminator.apply({"params": params}, x, train=True)


def test_r1_metric_equals_a_host_recomputation():
    """With lr 0 the step's R1 is gamma-free E||dD/dx||^2 on each real sub-batch (host: per-example grads)."""
    g, d = _nets()
    step = _step(Regularization(r1_gamma=2.0), lr=0.0, nets=(g, d))
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    batch = _batch()
    _, metrics = _run(step, state, [batch], 2)
    single = lambda x: d.apply({"params": state.d.params}, x[None], train=True)[0]
    grads = [np.asarray(jax.vmap(jax.grad(single))(jnp.asarray(batch["image"][j]))) for j in range(2)]
    expected = np.mean([np.mean(np.sum(gr.reshape(BATCH, -1).astype(np.float64) ** 2, axis=1)) for gr in grads])
    np.testing.assert_allclose(metrics[0]["d_r1"], expected, rtol=1e-5)


def test_r1_of_a_packed_d_equals_a_host_recomputation_per_tuple():
    """pack=2: R1 is E over packed tuples of ||d logit / d tuple||^2 (host: one grad per tuple of 2 inputs)."""
    g, d = _nets(pack=2)
    step = _step(Regularization(r1_gamma=2.0, r2_gamma=1.0), lr=0.0, nets=(g, d))
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    batch = _batch()
    _, metrics = _run(step, state, [batch], 2)
    one_tuple = lambda pair: d.apply({"params": state.d.params}, pair, train=True)[0]  # [2, ...] -> 1 logit
    expected = []
    for j in range(2):
        pairs = jnp.asarray(batch["image"][j]).reshape(BATCH // 2, 2, *SHAPE)
        grads = np.asarray(jax.vmap(jax.grad(one_tuple))(pairs), np.float64)
        expected.append(np.mean(np.sum(grads.reshape(BATCH // 2, -1) ** 2, axis=1)))
    np.testing.assert_allclose(metrics[0]["d_r1"], np.mean(expected), rtol=1e-5)
    assert metrics[0]["d_r2"] > 0


def test_lazy_r1_is_a_separate_update_every_k_steps():
    """r1_every=2: at step 0, D gets an extra SGD update on gamma/2 * k * R1; at step 1 it does not."""
    g, d = _nets()
    reg = Regularization(r1_gamma=2.0, r1_every=2)
    lazy, plain = _step(reg, nets=(g, d), n_critic=1), _step(nets=(g, d), n_critic=1)
    state = lazy.init_state(0, np.zeros((1, *SHAPE), np.float32))
    batch = _batch(n_critic=1)
    # Step 0 (R1 due) vs the same step without R1.
    with_r1, m_lazy = _run(lazy, state, [batch], 2)
    without, _ = _run(plain, state, [batch], 2)
    real = jnp.asarray(batch["image"][0])
    r1_grad = jax.grad(lambda p: regularizers.r1_penalty(_d_fn(d, p), real))(without.d.params)
    expected = jax.tree_util.tree_map(lambda p, gr: p - 0.05 * (2.0 / 2 * 2) * gr, without.d.params, r1_grad)
    _assert_close(with_r1.d.params, expected, rtol=1e-4, atol=1e-6)
    assert m_lazy[0]["d_r1_lazy"] > 0
    # Step 1: not due; the metric says so.
    _, m2 = _run(lazy, state.replace(step=jnp.ones((), jnp.int32)), [batch], 2)
    assert m2[0]["d_r1_lazy"] == 0.0


def test_lecam_anchors_and_historical_average_follow_their_closed_forms():
    g, d = _nets()
    decay = 0.9
    step = _step(Regularization(lecam=0.5, lecam_decay=decay, historical_averaging=0.1), lr=0.0, nets=(g, d))
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    batch = _batch()
    final, _ = _run(step, state, [batch], 2)
    real_means = [float(np.mean(np.asarray(_d_fn(d, state.d.params)(batch["image"][j])))) for j in range(2)]
    expected_real = decay * (1 - decay) * real_means[0] + (1 - decay) * real_means[1]  # from 0, two updates
    np.testing.assert_allclose(float(final.extras["lecam"].real), expected_real, rtol=1e-5)
    # lr 0: params unchanged, so the running mean of {p0, p1} is p0.
    _assert_close(final.extras["g_average"], state.g.params)
    # And with lr > 0 the average after one step is (p0 + p1) / 2.
    moving = _step(Regularization(historical_averaging=0.1), nets=(g, d))
    state = moving.init_state(0, np.zeros((1, *SHAPE), np.float32))
    final, _ = _run(moving, state, [batch], 2)
    _assert_close(
        final.extras["d_average"], jax.tree_util.tree_map(lambda a, b: (a + b) / 2, state.d.params, final.d.params)
    )


def test_replay_buffer_stores_the_first_fakes_in_order():
    """n_critic 1, capacity = batch: after one step the buffer holds exactly D's fakes of that step."""
    g, d = _nets()
    step = _step(Regularization(replay_capacity=BATCH), lr=0.0, nets=(g, d), n_critic=1)
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    final, _ = _run(step, state, [_batch(n_critic=1)], 2)
    d_key = jax.random.split(jax.random.fold_in(jax.random.fold_in(jnp.asarray(state.rng), 0), 0), 1)[0]
    z = np.stack(
        [np.asarray(jax.random.normal(jax.random.fold_in(jax.random.fold_in(d_key, 0), i), (4,))) for i in range(BATCH)]
    )
    fakes = np.asarray(g.apply({"params": state.g.params}, z, train=True))
    np.testing.assert_allclose(final.extras["replay"].images, fakes, rtol=1e-5, atol=1e-6)
    assert int(final.extras["replay"].count) == BATCH


def test_acgan_class_loss_equals_host_cross_entropy():
    from jaxgan.nets import MLPGenerator as G

    g = G(latent_dim=4, out_shape=SHAPE, hidden=16, depth=1, tanh_output=True, num_classes=3)
    d = MLPDiscriminator(hidden=16, depth=1, num_classes=3, conditioning="none", aux_classifier=True)
    step = _step(lr=0.0, nets=(g, d), n_critic=1, loss="non_saturating")
    assert step.batch_keys == ("image", "label") and step.acgan
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    batch = _batch(n_critic=1)
    batch["label"] = np.arange(BATCH, dtype=np.int32)[None] % 3
    _, metrics = _run(step, state, [batch], 2)
    _, inter = d.apply(
        {"params": state.d.params}, batch["image"][0], batch["label"][0], train=True, mutable=["intermediates"]
    )
    logits = np.asarray(inter["intermediates"]["class_logits"][0], np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    real_ce = -np.mean(log_p[np.arange(BATCH), batch["label"][0]])
    # d_class_loss = CE(real) + CE(fake); the fake part is checked through its sign (> 0) here.
    assert metrics[0]["d_class_loss"] > real_ce
    assert metrics[0]["g_class_loss"] > 0
    with pytest.raises(ValueError, match="no 'label' entry"):
        step.check_batch({"image": batch["image"]}, 2)


def test_infogan_losses_equal_a_host_recomputation_from_the_steps_latents():
    """lr 0, n_critic 1: d_info_loss and g_info_loss are info_loss of Q's outputs on G(z) for the z the step draws
    (D update: fold_in(split(fold_in(step key, 0), 1)[0], 0); G update: fold_in(fold_in(step key, 1), 0))."""
    from jaxgan import latent

    codes = latent.make_codes((3,), 1)
    g = MLPGenerator(latent_dim=4, out_shape=SHAPE, hidden=16, depth=1, tanh_output=True, latent_codes=codes)
    d = MLPDiscriminator(hidden=16, depth=1, pack=2, info_outputs=codes.q_outputs)
    step = _step(lr=0.0, nets=(g, d), n_critic=1, loss="non_saturating")
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    _, metrics = _run(step, state, [_batch(n_critic=1)], 2)
    step_key = jax.random.fold_in(state.rng, state.step)
    d_key = jax.random.split(jax.random.fold_in(step_key, 0), 1)[0]
    for name, update_key in (("d_info_loss", d_key), ("g_info_loss", jax.random.fold_in(step_key, 1))):
        latent_key = jax.random.fold_in(update_key, 0)
        z = jnp.stack([jax.random.normal(jax.random.fold_in(latent_key, i), (4,)) for i in range(BATCH)])
        fake = g.apply({"params": state.g.params}, z, train=True)
        _, inter = d.apply({"params": state.d.params}, fake, train=True, mutable=["intermediates"])
        q = np.asarray(inter["intermediates"]["info_outputs"][0], np.float64)
        ids, cont = (np.asarray(a) for a in latent.codes_from_latent(z, codes))
        log_p = q[:, :3] - np.log(np.exp(q[:, :3]).sum(axis=1, keepdims=True))
        expected = np.mean(-log_p[np.arange(BATCH), ids[:, 0]] + 0.5 * (q[:, 3] - cont[:, 0]) ** 2)
        np.testing.assert_allclose(metrics[0][name], expected, rtol=1e-5, err_msg=name)


def test_top_k_g_loss_equals_a_host_recomputation_from_the_steps_latents():
    """lr 0, step 3 of a schedule at max(0.25, 0.5^3): g_loss is the hinge G loss -D(G(z)) averaged over the
    4 of the 16 fakes D scores highest (Sinha et al. 2020), for the z the step draws (as the InfoGAN test)."""
    g, d = _nets()
    step = _step(
        Regularization(top_k_fraction=0.25, top_k_decay=0.5, top_k_decay_steps=1), lr=0.0, nets=(g, d), n_critic=1
    )
    state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
    state = state.replace(step=jnp.asarray(3, state.step.dtype))
    _, metrics = _run(step, state, [_batch(n_critic=1)], 2)
    latent_key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(state.rng, 3), 1), 0)
    z = jnp.stack([jax.random.normal(jax.random.fold_in(latent_key, i), (4,)) for i in range(BATCH)])
    logits = np.asarray(
        d.apply({"params": state.d.params}, g.apply({"params": state.g.params}, z, train=True), train=True), np.float64
    )
    assert metrics[0]["g_top_k_fraction"] == 0.25
    np.testing.assert_allclose(metrics[0]["g_loss"], -np.sort(logits)[-4:].mean(), rtol=1e-5)
    assert not np.isclose(metrics[0]["g_loss"], -logits.mean(), rtol=1e-3)


def test_infogan_q_learns_the_codes():
    """With lr > 0, Q's cross-entropy on a 4-way code falls from ~log 4 (G makes the code visible, Q reads
    it); with info_weight 0 (the same nets, the term only measured) it stays near log 4."""
    from jaxgan import latent

    codes = latent.make_codes((4,), 0)
    g = MLPGenerator(latent_dim=4, out_shape=SHAPE, hidden=16, depth=1, tanh_output=True, latent_codes=codes)
    d = MLPDiscriminator(hidden=16, depth=1, info_outputs=codes.q_outputs)
    tx = optax.adam(1e-2)
    final = {}
    for weight in (1.0, 0.0):
        step = jaxgan.make_train_step(
            generator=g,
            discriminator=d,
            g_tx=tx,
            d_tx=tx,
            n_critic=1,
            loss=jaxgan.get_loss("non_saturating"),
            regularization=Regularization(info_weight=weight),
        )
        state = step.init_state(0, np.zeros((1, *SHAPE), np.float32))
        _, metrics = _run(step, state, [_batch(n_critic=1, seed=s) for s in range(150)], 1)
        assert abs(metrics[0]["g_info_loss"] - np.log(4)) < 0.3
        final[weight] = np.mean([m["g_info_loss"] for m in metrics[-10:]])
    assert final[1.0] < 0.4 * np.log(4) and final[0.0] > 0.8 * np.log(4), final


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reg=Regularization(weight_clip=0.01), loss="hinge"), "Weight clipping"),
        (dict(reg=Regularization(gradient_penalty=10.0), nets=_nets(pack=2)), "packed D"),
        (dict(reg=Regularization(diff_augment="nope")), "Unknown DiffAugment"),
        (dict(reg=Regularization(r1_every=0)), "r1_every"),
        (dict(reg=Regularization(top_k_fraction=0.0)), "top_k_fraction must lie in"),
        (dict(reg=Regularization(top_k_decay=1.5)), "top_k_decay must lie in"),
        (dict(reg=Regularization(top_k_decay_steps=0)), "top_k_decay_steps"),
        (dict(reg=Regularization(g_adversarial_weight=0.0)), "without a loss"),
        (dict(nets=(MLPGenerator(latent_dim=4, out_shape=SHAPE, num_classes=3), MLPDiscriminator())), "num_classes"),
        (dict(num_discriminators=0), "num_discriminators"),
        (
            dict(
                reg=Regularization(replay_capacity=8),
                nets=(MLPGenerator(latent_dim=4, out_shape=SHAPE, num_classes=3), MLPDiscriminator(num_classes=3)),
            ),
            "replay buffer stores past fakes without their class labels",
        ),
        (dict(d_aggregation="median"), "d_aggregation"),
        (
            dict(nets=(MLPGenerator(latent_dim=4, out_shape=SHAPE, latent_codes=_CODES), MLPDiscriminator())),
            "Q head has info_outputs=3",
        ),
        (dict(nets=(MLPGenerator(latent_dim=4, out_shape=SHAPE), MLPDiscriminator(info_outputs=3))), "info_outputs=0"),
        (
            dict(
                reg=Regularization(replay_capacity=8),
                nets=(
                    MLPGenerator(latent_dim=4, out_shape=SHAPE, latent_codes=_CODES),
                    MLPDiscriminator(info_outputs=3),
                ),
            ),
            "without their InfoGAN codes",
        ),
    ],
)
def test_incompatible_options_fail_before_compiling(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _step(**kwargs)


def test_diff_augment_needs_images():
    g, d = MLPGenerator(latent_dim=2, out_shape=(2,)), MLPDiscriminator()
    with pytest.raises(ValueError, match="augments images"):
        _step(Regularization(diff_augment="translation"), nets=(g, d))


def test_pack_must_divide_the_per_device_batch():
    step = _step(nets=_nets(pack=3))
    with pytest.raises(ValueError, match="pack=3"):
        step.check_batch(_batch(), 2)


def test_ema_half_life_and_rampup_closed_form():
    """StyleGAN2-ADA: beta = 0.5 ** (B / h), h = min(half_life, images_seen * rampup)."""
    from jaxgan.train import ema_decay_from_half_life

    plain = ema_decay_from_half_life(half_life_images=10_000, batch_size=64)
    ramped = ema_decay_from_half_life(half_life_images=10_000, batch_size=64, rampup=0.05)
    for step in (0, 1, 100, 3125, 100_000):
        s = jnp.asarray(step, jnp.int32)
        np.testing.assert_allclose(float(plain(s)), 0.5 ** (64 / 10_000), rtol=1e-6)
        h = min(10_000.0, step * 64 * 0.05)
        np.testing.assert_allclose(float(ramped(s)), 0.0 if h == 0 else 0.5 ** (64 / h), rtol=1e-5)
    # After h images the old weights count for one half: beta ** (h / B) = 1/2.
    assert abs(float(plain(jnp.int32(5))) ** (10_000 / 64) - 0.5) < 1e-5


def test_a_state_without_the_stabilizers_extras_fails_clearly():
    step = _step(Regularization(lecam=0.1, replay_capacity=4))
    g, d = _nets()
    bare = jaxgan.create_train_state(
        0,
        generator=g,
        discriminator=d,
        example_images=np.zeros((1, *SHAPE), np.float32),
        g_tx=optax.sgd(0.05),
        d_tx=optax.sgd(0.05),
    )
    with pytest.raises(ValueError, match=r"lacks \['lecam', 'replay'\].*step\.init_state"):
        _run(step, bare, [_batch()], 1)
