"""Tests for jaxgan.regularizers and jaxgan.optim.

References: float64 central differences of a tiny numpy MLP (gradient
penalties), closed forms for a linear D (R1/R2, one-sided GP), numpy re-written
formulas (LeCam, bCR, MSGAN, feature matching, GMAN, historical averaging), a
step-by-step simulation of CycleGAN's ImagePool rule (replay buffer), the
StyleGAN2 hyperparameters computed by hand (lazy Adam) and optax.adam itself
(the lazy Adam chain), and one device versus 8 under shard_map (axis_name paths).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import optim
from jaxgan import regularizers as reg

# ----------------------------------------------------------------------------
# A tiny D, in JAX (float32) and numpy (float64) with the same weights.

_RS = np.random.RandomState(0)
MLP = dict(w1=_RS.normal(0, 0.7, (6, 5)), b1=_RS.normal(0, 0.3, 5), w2=_RS.normal(0, 1.0, 5), b2=0.2)


def _jax_mlp(params, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def _np_mlp(x):
    return np.tanh(x.reshape(x.shape[0], -1) @ MLP["w1"] + MLP["b1"]) @ MLP["w2"] + MLP["b2"]


def _jax_params():
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), MLP)


def _fd_grad_norms(x, h=1e-6):
    """Per-example ||dD/dx||_2 by float64 central differences on the numpy MLP."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(x.shape[0], -1)
    grads = np.zeros_like(flat)
    for j in range(flat.shape[1]):
        e = np.zeros(flat.shape[1])
        e[j] = h
        grads[:, j] = (_np_mlp((flat + e).reshape(x.shape)) - _np_mlp((flat - e).reshape(x.shape))) / (2 * h)
    return np.sqrt(np.sum(grads**2, axis=1))


def _data(batch=5, seed=1):
    rs = np.random.RandomState(seed)
    return (
        jnp.asarray(rs.normal(0, 1, (batch, 2, 3)), jnp.float32),
        jnp.asarray(rs.normal(1, 2, (batch, 2, 3)), jnp.float32),
    )


def test_gradient_norms_match_finite_differences():
    x, _ = _data()
    got = reg.gradient_norms(lambda v: _jax_mlp(_jax_params(), v), x)
    np.testing.assert_allclose(got, _fd_grad_norms(x), rtol=1e-5)


@pytest.mark.parametrize("one_sided", [False, True])
def test_wgan_gp_matches_finite_differences(one_sided):
    real, fake = _data()
    key = jax.random.PRNGKey(3)
    x_hat = np.asarray(reg.wgan_gp_interpolates(key, real, fake), np.float64)
    # x^ lies on the segment: x^ - x~ = eps (x - x~) with ONE eps in [0, 1] per example.
    eps = (x_hat - np.asarray(fake)) / (np.asarray(real) - np.asarray(fake))
    np.testing.assert_allclose(eps, eps[:, :1, :1] * np.ones_like(eps), rtol=1e-4, atol=1e-5)
    assert np.all((eps >= 0) & (eps <= 1)) and np.ptp(eps[:, 0, 0]) > 0.1
    norms = _fd_grad_norms(x_hat)
    excess = norms - 1.0
    want = np.mean(np.maximum(excess, 0.0) ** 2 if one_sided else excess**2)
    got = jax.jit(
        lambda r, f, k: reg.gradient_penalty(lambda v: _jax_mlp(_jax_params(), v), r, f, k, one_sided=one_sided)
    )(real, fake, key)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_one_sided_vs_two_sided_closed_form():
    # D(x) = s * <u, x> with ||u|| = 1 has gradient norm |s| everywhere.
    u = jnp.ones((1, 4)) / 2.0
    real, fake = jnp.zeros((3, 1, 4)), jnp.ones((3, 1, 4))
    key = jax.random.PRNGKey(0)
    for s, two, one in ((0.5, 0.25, 0.0), (2.0, 1.0, 1.0), (1.0, 0.0, 0.0)):
        d_fn = lambda x, s=s: s * jnp.sum(x * u, axis=(1, 2))
        np.testing.assert_allclose(reg.gradient_penalty(d_fn, real, fake, key), two, atol=1e-6)
        np.testing.assert_allclose(reg.gradient_penalty(d_fn, real, fake, key, one_sided=True), one, atol=1e-6)


def test_penalty_at_zero_gradient_has_finite_param_gradient():
    # A D with zero input gradient: penalty (0 - 1)^2 = 1, and d/dw must not be NaN (sqrt at 0).
    real, fake = _data()

    def penalty(w):
        return reg.gradient_penalty(lambda x: w * jnp.sum(x, axis=(1, 2)), real, fake, jax.random.PRNGKey(0))

    np.testing.assert_allclose(penalty(0.0), 1.0)
    assert np.isfinite(jax.grad(penalty)(0.0))


def test_dragan_perturbation_follows_reference_code():
    rs = np.random.RandomState(4)
    x = jnp.asarray(rs.normal(0.5, 2.0, (400, 2, 3)), jnp.float32)
    xt = np.asarray(jax.jit(reg.dragan_interpolates)(jax.random.PRNGKey(5), x, c=0.5), np.float64)
    # x~ - x = alpha * 0.5 * std(x) * U[0,1], std over every element (np.std, ddof 0).
    scaled = (xt - np.asarray(x)) / (0.5 * np.std(np.asarray(x, np.float64)))
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0 + 1e-5
    np.testing.assert_allclose(scaled.mean(), 0.25, atol=0.02)  # E[alpha u] = 1/4
    # Per-example alpha: each example's scaled offsets are u * alpha_i, so max/mean ~ 2 (u uniform) per example
    # cannot exceed alpha_i; check that examples really differ in scale.
    assert np.ptp(scaled.reshape(400, -1).max(axis=1)) > 0.5


def test_dragan_penalty_matches_finite_differences():
    x, _ = _data(batch=6, seed=7)
    key = jax.random.PRNGKey(8)
    xt = jax.jit(reg.dragan_interpolates)(key, x)
    want = np.mean((_fd_grad_norms(xt) - 1.0) ** 2)
    got = jax.jit(lambda x, key: reg.dragan_penalty(lambda v: _jax_mlp(_jax_params(), v), x, key))(x, key)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_dragan_axis_name_uses_global_std():
    # Each device holds a constant batch (local std 0) but the global batch varies:
    # with axis_name the perturbation is non-zero and bounded by c * global std.
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
    x = jnp.repeat(jnp.arange(8.0), 2)[:, None, None] * jnp.ones((16, 1, 3))
    run = lambda axis_name: jax.jit(
        jax.shard_map(
            lambda v: reg.dragan_interpolates(jax.random.PRNGKey(0), v, axis_name=axis_name) - v,
            mesh=mesh,
            in_specs=P("data"),
            out_specs=P("data"),
        )
    )(x)
    np.testing.assert_array_equal(run(None), 0.0)
    offsets = np.asarray(run("data"))
    assert offsets.max() > 0 and offsets.max() <= 0.5 * np.std(np.asarray(x)) + 1e-6


def test_r1_r2_linear_closed_form_and_double_backprop():
    # D(x) = <w, x> + b: grad_x D = w for every example, so R1 = R2 = ||w||^2 and dR1/dw = 2 w.
    w = jnp.asarray(np.random.RandomState(9).normal(size=(2, 3)), jnp.float32)
    real, fake = _data()
    d = lambda w: lambda x: jnp.sum(x * w, axis=(1, 2)) + 0.7
    want = float(np.sum(np.asarray(w, np.float64) ** 2))
    np.testing.assert_allclose(reg.r1_penalty(d(w), real), want, rtol=1e-6)
    np.testing.assert_allclose(reg.r2_penalty(d(w), fake), want, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda w: reg.r1_penalty(d(w), real))(w), 2 * w, rtol=1e-6)


def test_r1_of_a_packed_d_is_taken_per_tuple():
    # A packed linear D: logit of tuple j = sum over its 2 members i of <w_i, x_(2j+i)>, so the gradient of
    # tuple j's logit w.r.t. the tuple is (w_0, w_1) and R1 = ||w_0||^2 + ||w_1||^2 for every tuple.
    w = jnp.asarray(np.random.RandomState(3).normal(size=(2, 2, 3)), jnp.float32)
    x = jnp.asarray(np.random.RandomState(4).normal(size=(6, 2, 3)), jnp.float32)
    packed_d = lambda v: jnp.sum(v.reshape(-1, 2, 2, 3) * w, axis=(1, 2, 3))  # [6, 2, 3] -> 3 logits
    want = float(np.sum(np.asarray(w, np.float64) ** 2))
    np.testing.assert_allclose(reg.r1_penalty(*reg.packed_samples(packed_d, x, 2)), want, rtol=1e-6)
    with pytest.raises(ValueError, match="one logit per example"):
        reg.r1_penalty(packed_d, x)  # unpacked, 6 samples but 3 logits
    with pytest.raises(ValueError, match="not divisible by pack=4"):
        reg.packed_samples(packed_d, x, 4)


def test_r1_of_mlp_matches_finite_differences():
    x, _ = _data(seed=10)
    got = reg.r1_penalty(lambda v: _jax_mlp(_jax_params(), v), x)
    np.testing.assert_allclose(got, np.mean(_fd_grad_norms(x) ** 2), rtol=1e-5)


def test_d_fn_must_return_one_logit_per_example():
    x, _ = _data()
    with pytest.raises(ValueError, match=r"one logit per example, shape \(5,\).*returned \(5, 1\).*\[:, 0\]"):
        reg.r1_penalty(lambda v: jnp.sum(v, axis=(1, 2))[:, None], x)


def test_clip_weights_matches_numpy_clip():
    params = {"a": jnp.array([-0.5, 0.005, 0.3]), "b": {"c": jnp.array([[0.02, -0.02]])}}
    got = reg.clip_weights(params, 0.01)
    np.testing.assert_allclose(got["a"], [-0.01, 0.005, 0.01])
    np.testing.assert_allclose(got["b"]["c"], [[0.01, -0.01]])
    with pytest.raises(ValueError, match=r"clipping bound c must be > 0"):
        reg.clip_weights(params, 0.0)


# ----------------------------------------------------------------------------
# LeCam, bCR, MSGAN, feature matching, historical averaging.


def test_lecam_penalty_and_update_match_numpy():
    rs = np.random.RandomState(11)
    r, f = rs.normal(1, 1, 8), rs.normal(-1, 1, 8)
    anchors = reg.LeCamAnchors(real=jnp.float32(0.4), fake=jnp.float32(-0.3))
    want = np.mean((r - (-0.3)) ** 2) + np.mean((f - 0.4) ** 2)
    got = reg.lecam_penalty(jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32), anchors)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    new = reg.lecam_update(anchors, jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32), decay=0.99)
    np.testing.assert_allclose(new.real, 0.99 * 0.4 + 0.01 * r.mean(), rtol=1e-6)
    np.testing.assert_allclose(new.fake, 0.99 * -0.3 + 0.01 * f.mean(), rtol=1e-6)
    # Anchors are constants in the penalty: d/dr = 2 (r - alpha_F) / B only.
    grad = jax.grad(lambda r: reg.lecam_penalty(r, jnp.asarray(f, jnp.float32), anchors))(jnp.asarray(r, jnp.float32))
    np.testing.assert_allclose(grad, 2 * (r + 0.3) / 8, rtol=1e-5)
    init = reg.lecam_init()
    assert float(init.real) == 0.0 and float(init.fake) == 0.0


def test_bcr_matches_numpy():
    rs = np.random.RandomState(12)
    r, ra, f, fa = (rs.normal(size=6) for _ in range(4))
    want = 10.0 * np.mean((r - ra) ** 2) + 5.0 * np.mean((f - fa) ** 2)
    got = reg.bcr_penalty(*(jnp.asarray(v, jnp.float32) for v in (r, ra, f, fa)), lambda_real=10.0, lambda_fake=5.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"bCR real logits: shapes \(6,\) and \(5,\) differ"):
        reg.bcr_penalty(jnp.zeros(6), jnp.zeros(5), jnp.zeros(6), jnp.zeros(6))


def test_mode_seeking_matches_numpy():
    rs = np.random.RandomState(13)
    g1, g2 = rs.normal(size=(4, 3, 3, 1)), rs.normal(size=(4, 3, 3, 1))
    z1, z2 = rs.normal(size=(4, 8)), rs.normal(size=(4, 8))
    ratio = np.mean(np.abs(g1 - g2)) / np.mean(np.abs(z1 - z2))
    args = [jnp.asarray(v, jnp.float32) for v in (g1, g2, z1, z2)]
    np.testing.assert_allclose(reg.mode_seeking_ratio(*args), ratio, rtol=1e-5)
    np.testing.assert_allclose(reg.mode_seeking_loss(*args), 1.0 / (ratio + 1e-5), rtol=1e-5)


def test_feature_matching_matches_numpy():
    rs = np.random.RandomState(14)
    fr, ff = rs.normal(size=(6, 4, 2)), rs.normal(0.5, 1, size=(6, 4, 2))
    want = np.sum((fr.mean(0) - ff.mean(0)) ** 2)
    np.testing.assert_allclose(reg.feature_matching_loss(jnp.asarray(fr), jnp.asarray(ff)), want, rtol=1e-5)


def test_axis_name_paths_equal_the_global_batch():
    """LeCam update, MSGAN and feature matching on 8 devices x 2 examples equal one device with all 16."""
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
    rs = np.random.RandomState(15)
    shift = np.repeat(np.arange(8.0), 2)  # per-device means differ from the global one
    r = jnp.asarray(rs.normal(size=16) + shift, jnp.float32)
    f = jnp.asarray(rs.normal(size=16) - shift, jnp.float32)
    g1, g2 = (jnp.asarray(rs.normal(size=(16, 3)) * (1 + shift[:, None]), jnp.float32) for _ in range(2))
    z1, z2 = (jnp.asarray(rs.normal(size=(16, 2)), jnp.float32) for _ in range(2))
    anchors = reg.lecam_init(real=1.0, fake=-1.0)

    def fn(r, f, g1, g2, z1, z2, axis_name=None):
        new = reg.lecam_update(anchors, r, f, decay=0.9, axis_name=axis_name)
        return (
            new.real,
            new.fake,
            reg.mode_seeking_ratio(g1, g2, z1, z2, axis_name=axis_name),
            reg.feature_matching_loss(g1, g2, axis_name=axis_name),
        )

    want = fn(r, f, g1, g2, z1, z2)
    got = jax.jit(
        jax.shard_map(lambda *a: fn(*a, axis_name="data"), mesh=mesh, in_specs=(P("data"),) * 6, out_specs=(P(),) * 4)
    )(r, f, g1, g2, z1, z2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5)


def test_historical_average_is_the_running_mean():
    rs = np.random.RandomState(16)
    history = [{"w": rs.normal(size=(2, 3)), "b": rs.normal(size=3)} for _ in range(5)]
    avg = jax.tree_util.tree_map(jnp.zeros_like, history[0])
    for count, params in enumerate(history):
        avg = reg.historical_average_update(avg, jax.tree_util.tree_map(jnp.asarray, params), count)
    for name in ("w", "b"):
        np.testing.assert_allclose(avg[name], np.mean([h[name] for h in history], axis=0), rtol=1e-5, atol=1e-6)
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    want = sum(np.sum((np.asarray(params[k]) - np.asarray(avg[k])) ** 2) for k in params)
    np.testing.assert_allclose(reg.historical_average_penalty(params, avg), want, rtol=1e-5)
    grads = jax.grad(reg.historical_average_penalty)(params, avg)
    np.testing.assert_allclose(grads["w"], 2 * (np.asarray(params["w"]) - np.asarray(avg["w"])), rtol=1e-5)
    with pytest.raises(ValueError, match=r"same tree structure"):
        reg.historical_average_penalty(params, {"w": avg["w"]})


# ----------------------------------------------------------------------------
# Replay buffer: CycleGAN's ImagePool.


def _unique_fakes(start, n, shape=(2, 2, 1)):
    """Fakes whose every pixel equals the example's id, so each is recognizable."""
    return jnp.broadcast_to(jnp.arange(start, start + n, dtype=jnp.float32)[:, None, None, None], (n, *shape))


def _simulate(sim, fakes, mixed):
    """Replays ImagePool.query on a python list: checks each returned image, returns #from history."""
    capacity = sim["capacity"]
    from_history = 0
    for fake_id, out_id in zip(np.asarray(fakes)[:, 0, 0, 0], np.asarray(mixed)[:, 0, 0, 0]):
        if len(sim["ids"]) < capacity:
            assert out_id == fake_id  # not full: store and return the new fake
            sim["ids"].append(fake_id)
        elif out_id == fake_id:
            pass  # full, coin says "return the new one": buffer untouched
        else:
            assert out_id in sim["ids"], (out_id, sim["ids"])  # a stored image, replaced by the new one
            sim["ids"][sim["ids"].index(out_id)] = fake_id
            from_history += 1
    return from_history


def test_replay_buffer_follows_the_image_pool_rule():
    capacity = 6
    buf = reg.replay_buffer_init(capacity, (2, 2, 1))
    query = jax.jit(reg.replay_buffer_query)
    sim = {"capacity": capacity, "ids": []}
    # 1) Not full: only the current fakes come back, and they are stored in order.
    fakes = _unique_fakes(0, 4)
    mixed, buf = query(buf, fakes, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(mixed, fakes)
    assert int(buf.count) == 4
    np.testing.assert_array_equal(buf.images[:4], fakes)
    np.testing.assert_array_equal(buf.images[4:], 0.0)
    _simulate(sim, fakes, mixed)
    # 2) Fills up mid-batch, then the full rule applies; then many full batches.
    total, history = 0, 0
    for step in range(1, 9):
        fakes = _unique_fakes(100 * step, 32)
        mixed, buf = query(buf, fakes, jax.random.PRNGKey(step))
        if step == 1:
            np.testing.assert_array_equal(mixed[:2], fakes[:2])  # the last two free slots
        history += _simulate(sim, fakes, mixed)
        total += 32
        # Stored content equals the simulated pool, slot by slot.
        np.testing.assert_array_equal(np.asarray(buf.images)[:, 0, 0, 0], sim["ids"])
        assert int(buf.count) == capacity
    # About half of the examples (once full) came from history.
    assert 0.4 < history / (total - 2) < 0.6, history / (total - 2)


def test_replay_buffer_sharded_equals_single_device():
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
    buf = reg.replay_buffer_init(5, (2, 2, 1))
    run = jax.jit(
        jax.shard_map(
            lambda b, f: reg.replay_buffer_query(b, f, jax.random.PRNGKey(1), axis_name="data"),
            mesh=mesh,
            in_specs=(P(), P("data")),
            out_specs=(P("data"), P()),
        )
    )
    single = jax.jit(lambda b, f: reg.replay_buffer_query(b, f, jax.random.PRNGKey(1)))
    sharded_buf, single_buf = buf, buf
    for step in range(3):
        fakes = _unique_fakes(16 * step, 16)
        got, sharded_buf = run(sharded_buf, fakes)
        want, single_buf = single(single_buf, fakes)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(sharded_buf.images, single_buf.images)
        np.testing.assert_array_equal(sharded_buf.count, single_buf.count)
    assert np.any(np.asarray(got) != np.asarray(fakes))  # the history was used


def test_replay_buffer_bad_input():
    with pytest.raises(ValueError, match=r"capacity must be an int >= 1"):
        reg.replay_buffer_init(0, (2, 2, 1))
    with pytest.raises(ValueError, match=r"do not fit the buffer's samples \(2, 2, 1\)"):
        reg.replay_buffer_query(reg.replay_buffer_init(3, (2, 2, 1)), jnp.zeros((4, 3, 3, 1)), jax.random.PRNGKey(0))


# ----------------------------------------------------------------------------
# GMAN aggregation, instance noise.


def test_gman_aggregation_matches_numpy_and_its_limits():
    losses = np.array([0.3, 1.7, -0.4, 0.9])
    jl = jnp.asarray(losses, jnp.float32)
    np.testing.assert_allclose(reg.aggregate_losses(jl, mode="mean"), losses.mean(), rtol=1e-6)
    np.testing.assert_allclose(reg.aggregate_losses(jl, mode="max"), 1.7, rtol=1e-6)
    # GMAN-lambda: w = exp(lambda L) / sum exp(lambda L), lambda = 1 / temperature.
    for temperature in (0.5, 2.0):
        w = np.exp(losses / temperature) / np.sum(np.exp(losses / temperature))
        np.testing.assert_allclose(
            reg.aggregate_losses(jl, mode="softmax", temperature=temperature), np.sum(w * losses), rtol=1e-5
        )
        # The weights are not stopped: d/dL_i = w_i (1 + lambda (L_i - sum_j w_j L_j)).
        lam, agg = 1 / temperature, np.sum(w * losses)
        grad = jax.grad(lambda v: reg.aggregate_losses(v, mode="softmax", temperature=temperature))(jl)
        np.testing.assert_allclose(grad, w * (1 + lam * (losses - agg)), rtol=1e-5)
    # Limits: lambda = 0 (temperature inf) is the mean, lambda -> inf the max.
    np.testing.assert_allclose(
        reg.aggregate_losses(jl, mode="softmax", temperature=float("inf")), losses.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(reg.aggregate_losses(jl, mode="softmax", temperature=1e-3), 1.7, rtol=1e-5)
    with pytest.raises(
        ValueError, match=r"Unknown aggregation mode 'median'; valid modes: \('mean', 'max', 'softmax'\)"
    ):
        reg.aggregate_losses(jl, mode="median")
    with pytest.raises(ValueError, match=r"temperature must be > 0"):
        reg.aggregate_losses(jl, mode="softmax", temperature=0.0)


def test_instance_noise_and_schedule():
    key = jax.random.PRNGKey(17)
    x = jnp.full((2000, 4), 3.0)
    noisy = np.asarray(reg.add_instance_noise(key, x, 0.5)) - 3.0
    np.testing.assert_allclose(noisy.std(), 0.5, rtol=0.03)
    np.testing.assert_allclose(noisy.mean(), 0.0, atol=0.02)
    np.testing.assert_array_equal(reg.add_instance_noise(key, x, 0.0), x)
    for step, want in ((0, 0.2), (250, 0.15), (1000, 0.0), (5000, 0.0)):
        np.testing.assert_allclose(
            reg.instance_noise_sigma(step, initial_sigma=0.2, anneal_steps=1000), want, rtol=1e-6, atol=1e-9
        )


# ----------------------------------------------------------------------------
# Lazy-regularization Adam (jaxgan.optim).


def test_lazy_adam_hyperparams_stylegan2_values():
    # StyleGAN2 (arXiv:1912.04958 app. B, mb_ratio): R1 every 16 minibatches, lr 0.002, betas (0, 0.99).
    lr, b1, b2 = optim.lazy_adam_hyperparams(0.002, 0.0, 0.99, 16)
    assert math.isclose(lr, 0.002 * 16 / 17, rel_tol=1e-12)  # 0.0018823529...
    assert b1 == 0.0
    assert math.isclose(b2, math.exp(16 / 17 * math.log(0.99)), rel_tol=1e-12)
    assert math.isclose(b2, 0.99058546, rel_tol=1e-8)  # exp(-0.0094591 ...)
    sched_lr, _, _ = optim.lazy_adam_hyperparams(lambda step: 0.01 / (1 + step), 0.5, 0.9, 4)
    assert math.isclose(sched_lr(1), 0.005 * 4 / 5, rel_tol=1e-12)
    with pytest.raises(ValueError, match=r"every must be an int >= 1"):
        optim.lazy_adam_hyperparams(0.002, 0.0, 0.99, 0)


@pytest.mark.parametrize("lazy_every", [0, 16])
def test_adam_chain_equals_optax_adam(lazy_every):
    c = lazy_every / (lazy_every + 1) if lazy_every else 1.0
    ours = optim.adam(0.01, 0.5, 0.99, lazy_every=lazy_every)
    ref = optax.adam(0.01 * c, b1=0.5**c, b2=0.99**c)
    params = {"w": jnp.array([0.5, -1.0, 2.0])}
    s1, s2 = ours.init(params), ref.init(params)
    for i in range(4):
        grads = {"w": jnp.array([0.3, -0.1, 1.0]) * (i + 1)}
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = ref.update(grads, s2, params)
        np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)
    with pytest.raises(ValueError, match=r"lazy_every must be an int >= 0"):
        optim.adam(0.01, lazy_every=-1)


def test_r1_param_gradient_under_shard_map_equals_one_device():
    """The step's pattern: params marked device-varying, nested-grad R1 per device, pmean of the grads."""
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
    w = jnp.asarray([0.5, -0.3, 0.8, 0.1], jnp.float32)
    x = jnp.asarray(np.random.RandomState(18).normal(size=(16, 4)), jnp.float32)
    loss = lambda w, x: reg.r1_penalty(lambda v: jnp.tanh(v @ w), x)

    def per_device(w, x):
        return jax.lax.pmean(jax.grad(loss)(jax.lax.pcast(w, "data", to="varying"), x), "data")

    got = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))(w, x)
    np.testing.assert_allclose(got, jax.grad(loss)(w, x), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------
# Top-k G updates (Sinha et al. 2020).


def test_top_k_schedule_is_sinhas():
    """k / B = max(nu, gamma ** epoch): 1 at the start, gamma^e after e epochs, never under nu."""
    sched = lambda step: float(reg.top_k_fraction(step, min_fraction=0.5, decay=0.99, decay_steps=390))
    assert sched(0) == 1.0 and sched(389) == 1.0
    np.testing.assert_allclose(sched(390), 0.99, rtol=1e-6)
    np.testing.assert_allclose(sched(390 * 10 + 5), 0.99**10, rtol=1e-5)
    assert sched(390 * 68) == pytest.approx(0.99**68) and 0.99**68 > 0.5
    assert sched(390 * 69) == 0.5 and sched(10**7) == 0.5  # 0.99**69 < 0.5: clamped at nu
    for bad in (dict(min_fraction=0.0), dict(min_fraction=1.5), dict(decay=0.0), dict(decay_steps=0)):
        kwargs = dict(min_fraction=0.5, decay=0.99, decay_steps=390) | bad
        with pytest.raises(ValueError, match="min_fraction"):
            reg.top_k_fraction(0, **kwargs)


@pytest.mark.parametrize("fraction, k", [(1.0, 16), (0.5, 8), (0.3, 4), (0.01, 1)])
def test_top_k_mean_keeps_the_best_scored_samples(fraction, k):
    """The value is the mean loss of the k highest scores (numpy), and only those k get gradient."""
    rs = np.random.RandomState(19)
    losses = jnp.asarray(rs.normal(size=16), jnp.float32)
    scores = jnp.asarray(rs.permutation(16) - 3.5, jnp.float32)  # distinct, so the top k are unambiguous
    best = np.argsort(-np.asarray(scores))[:k]
    np.testing.assert_allclose(reg.top_k_mean(losses, scores, fraction), np.asarray(losses)[best].mean(), rtol=1e-6)
    grad = np.asarray(jax.grad(lambda v: reg.top_k_mean(v, scores, fraction))(losses))
    want = np.zeros(16)
    want[best] = 1.0 / k
    np.testing.assert_allclose(grad, want, rtol=1e-6)
    assert not np.asarray(jax.grad(lambda s: reg.top_k_mean(losses, s, fraction))(scores)).any()  # scores: no grad
    with pytest.raises(ValueError, match="equal vectors"):
        reg.top_k_mean(losses, scores[:8], fraction)


def test_top_k_mean_under_shard_map_chooses_over_the_global_batch():
    """8 devices x 2 samples: the pmean of the shares and of the gradients equal one device with all 16, even
    when the best-scored samples sit on a few devices."""
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
    rs = np.random.RandomState(20)
    w = jnp.asarray(rs.normal(size=3), jnp.float32)
    x = jnp.asarray(rs.normal(size=(16, 3)), jnp.float32)
    scores = jnp.asarray(np.r_[np.arange(4.0) + 10.0, rs.normal(size=12)], jnp.float32)  # top 4 on devices 0, 1
    loss = lambda w, x, s, axis_name=None: reg.top_k_mean(jnp.tanh(x @ w) ** 2, s, 0.25, axis_name=axis_name)

    def per_device(w, x, s):
        value, grad = jax.value_and_grad(loss)(jax.lax.pcast(w, "data", to="varying"), x, s, axis_name="data")
        return jax.lax.pmean(value, "data"), jax.lax.pmean(grad, "data")

    got = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P())))(
        w, x, scores
    )
    np.testing.assert_allclose(got[0], np.mean(np.tanh(np.asarray(x[:4]) @ np.asarray(w)) ** 2), rtol=1e-5)
    want = jax.value_and_grad(loss)(w, x, scores)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)


def test_nearest_neighbour_entropy_matches_scipy_and_the_gaussian_closed_form():
    """Kozachenko-Leonenko by hand (scipy's k-d tree for the neighbours, eq. 20 of Kraskov et al. 2004) on the
    same points, and the exact entropy d/2 log(2 pi e s^2) of N(0, s^2 I) that it estimates."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma, gammaln

    rng = np.random.default_rng(0)
    n = 2048
    for d, s, k in ((2, 0.5, 1), (5, 2.0, 3)):
        x = rng.normal(scale=s, size=(n, d)).astype(np.float32)
        got = float(reg.nearest_neighbour_entropy(jnp.asarray(x), k=k))
        rho = cKDTree(x.astype(np.float64)).query(x, k=k + 1)[0][:, k]  # [:, 0] is the point itself
        by_hand = digamma(n) - digamma(k) + d / 2 * np.log(np.pi) - gammaln(d / 2 + 1) + d * np.mean(np.log(rho))
        assert got == pytest.approx(by_hand, abs=2e-3)
        assert got == pytest.approx(d / 2 * np.log(2 * np.pi * np.e * s**2), abs=0.1)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, N - 1\] with N = 4"):
        reg.nearest_neighbour_entropy(jnp.zeros((4, 2)), k=4)
    assert np.isfinite(float(reg.nearest_neighbour_entropy(jnp.zeros((4, 2)))))  # coinciding samples


def test_nearest_neighbour_entropy_and_its_gradient_under_shard_map_equal_one_device():
    """Each device's points find their neighbours among all 8 devices' (gathered), and the gradient flows
    back to every device's points."""
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(32, 3)), jnp.float32)
    one = lambda x: reg.nearest_neighbour_entropy(x, k=2)
    sharded = jax.shard_map(
        lambda x: reg.nearest_neighbour_entropy(x, k=2, axis_name="data"), mesh=mesh, in_specs=P("data"), out_specs=P()
    )
    np.testing.assert_allclose(jax.jit(sharded)(x), one(x), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(sharded))(x), jax.grad(one)(x), rtol=1e-4, atol=1e-6)
