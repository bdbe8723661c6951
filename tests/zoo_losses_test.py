"""Tests for the relativistic losses and label smoothing in jaxgan.losses.

References: float64 numpy formulas written from the papers, hand-computed
values, and (for the global-batch mean) the single-device value and gradient on
the whole batch versus jax.shard_map over the 8 fake CPU devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan.losses import LOSSES, SMOOTHABLE, get_loss

RELATIVISTIC = ("relativistic_average", "relativistic_average_hinge")


def _softplus(x):
    return np.logaddexp(0.0, x)


def _np_relativistic(name, r, f):
    """(d, g) per example, from Jolicoeur-Martineau 2018 sec. 4.3 with numpy means."""
    rr, rf = r - f.mean(), f - r.mean()
    if name == "relativistic_average":  # -log sigmoid(y) = softplus(-y), -log(1 - sigmoid(y)) = softplus(y)
        return _softplus(-rr) + _softplus(rf), _softplus(-rf) + _softplus(rr)
    return np.maximum(0, 1 - rr) + np.maximum(0, 1 + rf), np.maximum(0, 1 - rf) + np.maximum(0, 1 + rr)


def test_g_needs_real_only_for_relativistic():
    for name, loss in LOSSES.items():
        assert loss.g_needs_real == (name in RELATIVISTIC), name


def test_relativistic_hand_computed():
    # real = [1, 3] (mean 2), fake = [0, -2] (mean -1).
    # D~(x_r) = r - (-1) = [2, 4];  D~(x_f) = f - 2 = [-2, -4].
    r, f = jnp.array([1.0, 3.0]), jnp.array([0.0, -2.0])
    # RaHinge D: relu(1 - [2, 4]) + relu(1 + [-2, -4]) = [0, 0].
    np.testing.assert_allclose(get_loss("relativistic_average_hinge").d(r, f), [0.0, 0.0])
    # RaHinge G: relu(1 - [-2, -4]) + relu(1 + [2, 4]) = [3 + 3, 5 + 5].
    np.testing.assert_allclose(get_loss("relativistic_average_hinge").g(f, r), [6.0, 10.0])
    # RaSGAN D at example 0: softplus(-2) + softplus(-2) = 2 log(1 + e^-2).
    ln = np.log1p(np.exp(-2.0))
    np.testing.assert_allclose(get_loss("relativistic_average").d(r, f)[0], 2 * ln, rtol=1e-6)
    # RaSGAN G at example 1: softplus(4) + softplus(4) = 2 log(1 + e^4).
    np.testing.assert_allclose(get_loss("relativistic_average").g(f, r)[1], 2 * np.log1p(np.exp(4.0)), rtol=1e-6)
    # Equal logits everywhere: D~ = 0, so RaSGAN gives 2 log 2 and RaHinge 2 for D and G alike.
    z = jnp.zeros(3)
    np.testing.assert_allclose(get_loss("relativistic_average").d(z, z), [2 * np.log(2.0)] * 3, rtol=1e-6)
    np.testing.assert_allclose(get_loss("relativistic_average_hinge").g(z, z), [2.0] * 3)


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_matches_numpy(name):
    rs = np.random.RandomState(1)
    r, f = rs.normal(0, 3, 32), rs.normal(-1, 3, 32)
    loss = get_loss(name)
    ref_d, ref_g = _np_relativistic(name, r, f)
    np.testing.assert_allclose(
        loss.d(jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32)), ref_d, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        loss.g(jnp.asarray(f, jnp.float32), jnp.asarray(r, jnp.float32)), ref_g, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_g_without_real_logits_raises(name):
    with pytest.raises(ValueError, match=r"needs D's logits on the real batch.*g\(fake_logits, real_logits\)"):
        get_loss(name).g(jnp.zeros(4))


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_pmean_equals_global_batch(name):
    """8 devices x 4 examples with axis_name equal one device holding all 32: values and gradients."""
    loss = get_loss(name)
    rs = np.random.RandomState(2)
    # Shift the halves so per-device means differ a lot from the global mean:
    # a local mean would give visibly different values.
    r = jnp.asarray(rs.normal(0, 1, 32) + np.repeat(np.arange(8.0), 4), jnp.float32)
    f = jnp.asarray(rs.normal(0, 1, 32) - np.repeat(np.arange(8.0), 4), jnp.float32)
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))

    def total(r, f, axis_name=None):
        # The global mean of D's and G's losses.
        return (loss.d(r, f, axis_name=axis_name), loss.g(f, r, axis_name=axis_name))

    ref_d, ref_g = total(r, f)
    ref_grads = jax.grad(lambda r, f: jnp.mean(loss.d(r, f)) + 2 * jnp.mean(loss.g(f, r)), argnums=(0, 1))(r, f)

    def per_device(r, f):
        d, g = total(r, f, "data")
        # Each device differentiates its LOCAL mean loss; pmean's transpose adds the
        # other devices' share through the global means. The global loss is the mean of
        # the local ones, so the global gradient is the local gradient / 8.
        grads = jax.grad(
            lambda r, f: jnp.mean(loss.d(r, f, axis_name="data")) + 2 * jnp.mean(loss.g(f, r, axis_name="data")),
            argnums=(0, 1),
        )(r, f)
        return d, g, jax.tree_util.tree_map(lambda x: x / 8, grads)

    sharded = jax.jit(
        jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=(P("data"), P("data")),
            out_specs=(P("data"), P("data"), (P("data"), P("data"))),
        )
    )
    d, g, grads = sharded(r, f)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # Without axis_name each device would use its local means: a different loss.
    local = jax.jit(
        jax.shard_map(lambda r, f: loss.d(r, f), mesh=mesh, in_specs=(P("data"), P("data")), out_specs=P("data"))
    )(r, f)
    assert np.max(np.abs(np.asarray(local) - np.asarray(ref_d))) > 0.1


@pytest.mark.parametrize("name", sorted(set(LOSSES) - set(RELATIVISTIC)))
def test_other_losses_ignore_axis_name_and_real(name):
    loss = get_loss(name)
    r, f = jnp.array([0.3, -1.2]), jnp.array([2.0, 0.5])
    np.testing.assert_array_equal(loss.d(r, f, axis_name="data"), loss.d(r, f))
    np.testing.assert_array_equal(loss.g(f, r, axis_name="data"), loss.g(f))


@pytest.mark.parametrize("name", SMOOTHABLE)
def test_one_sided_label_smoothing_matches_cross_entropy(name):
    # Salimans et al. 2016 sec. 3.4: real target 0.9 -> -0.9 log D(x) - 0.1 log(1 - D(x)); fakes keep target 0.
    rs = np.random.RandomState(3)
    r, f = rs.uniform(-5, 5, 16), rs.uniform(-5, 5, 16)
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    want = -0.9 * np.log(sig(r)) - 0.1 * np.log(1 - sig(r)) - np.log(1 - sig(f))
    smoothed = get_loss(name, real_label=0.9)
    np.testing.assert_allclose(
        smoothed.d(jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32)), want, rtol=1e-5, atol=1e-6
    )
    # G's loss is unchanged, and real_label=1.0 is the registered loss itself.
    np.testing.assert_array_equal(smoothed.g(jnp.asarray(f)), get_loss(name).g(jnp.asarray(f)))
    assert get_loss(name, real_label=1.0) is LOSSES[name]
    # Hand value: at r = 0 (D = 1/2) the real term is log 2 for any target; at f = 0 fakes add log 2.
    np.testing.assert_allclose(smoothed.d(jnp.zeros(1), jnp.zeros(1)), [2 * np.log(2.0)], rtol=1e-6)
    # The smoothed optimum of the real term is D(x) = 0.9, i.e. logit log 9: its gradient vanishes there.
    grad = jax.grad(lambda x: smoothed.d(x, jnp.zeros(1))[0])(jnp.array([np.log(9.0)], jnp.float32))
    np.testing.assert_allclose(grad, [0.0], atol=1e-6)


@pytest.mark.parametrize("name", sorted(set(LOSSES) - set(SMOOTHABLE)))
def test_label_smoothing_undefined_elsewhere_raises(name):
    with pytest.raises(ValueError, match=rf"only defined for the cross-entropy losses.*not '{name}'"):
        get_loss(name, real_label=0.9)


@pytest.mark.parametrize("bad", [0.5, 0.2, 1.1, -1.0])
def test_label_smoothing_out_of_range_raises(bad):
    with pytest.raises(ValueError, match=r"real_label must lie in \(0.5, 1\]"):
        get_loss("non_saturating", real_label=bad)
