"""Tests for jaxgan.losses against float64 numpy formulas written from the papers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.losses import LOSSES, get_loss


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_log_sigmoid(x):
    # log sigmoid(x) = -log(1 + exp(-x)), evaluated without overflow in float64.
    return -np.logaddexp(0.0, -x)


# Reference formulas, each written directly from the objective's definition.
REFERENCE = {
    # Goodfellow et al. 2014: D maximizes log D(x) + log(1 - D(G(z))); G maximizes log D(G(z)).
    "non_saturating": (
        lambda r, f: -np.log(_np_sigmoid(r)) - np.log(1.0 - _np_sigmoid(f)),
        lambda f: -np.log(_np_sigmoid(f)),
    ),
    # Same D; G minimizes log(1 - D(G(z))).
    "minimax": (
        lambda r, f: -np.log(_np_sigmoid(r)) - np.log(1.0 - _np_sigmoid(f)),
        lambda f: np.log(1.0 - _np_sigmoid(f)),
    ),
    "wasserstein": (lambda r, f: f - r, lambda f: -f),
    "hinge": (lambda r, f: np.maximum(0.0, 1.0 - r) + np.maximum(0.0, 1.0 + f), lambda f: -f),
    "least_squares": (lambda r, f: 0.5 * (r - 1.0) ** 2 + 0.5 * f**2, lambda f: 0.5 * (f - 1.0) ** 2),
}

# Stable float64 forms of the same quantities for large |logits|, where the naive
# sigmoid formulas above round to log(0).
REFERENCE_STABLE = dict(REFERENCE)
REFERENCE_STABLE["non_saturating"] = (
    lambda r, f: -_np_log_sigmoid(r) - _np_log_sigmoid(-f),
    lambda f: -_np_log_sigmoid(f),
)
REFERENCE_STABLE["minimax"] = (
    lambda r, f: -_np_log_sigmoid(r) - _np_log_sigmoid(-f),
    lambda f: _np_log_sigmoid(-f),
)


def test_registry_has_the_expected_losses():
    # The relativistic losses are tested in tests/zoo_losses_test.py.
    assert set(LOSSES) == set(REFERENCE) | {"relativistic_average", "relativistic_average_hinge"}
    for name, loss in LOSSES.items():
        assert loss.name == name
        assert get_loss(name) is loss


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_loss_matches_numpy_reference(name):
    rs = np.random.RandomState(0)
    real = rs.uniform(-4, 4, size=64).astype(np.float32)
    fake = rs.uniform(-4, 4, size=64).astype(np.float32)
    loss = get_loss(name)
    ref_d, ref_g = REFERENCE[name]
    d = np.asarray(loss.d(jnp.asarray(real), jnp.asarray(fake)))
    g = np.asarray(loss.g(jnp.asarray(fake)))
    assert d.shape == (64,) and g.shape == (64,)
    np.testing.assert_allclose(d, ref_d(real.astype(np.float64), fake.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, ref_g(fake.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_hand_computed_values():
    r, f = jnp.array([0.0, 2.0]), jnp.array([0.0, -0.5])
    log2 = np.log(2.0)
    np.testing.assert_allclose(get_loss("non_saturating").d(r, f)[0], 2 * log2, rtol=1e-6)
    np.testing.assert_allclose(get_loss("non_saturating").g(f)[0], log2, rtol=1e-6)
    np.testing.assert_allclose(get_loss("minimax").g(f)[0], -log2, rtol=1e-6)
    np.testing.assert_allclose(get_loss("wasserstein").d(r, f), [0.0, -2.5])
    np.testing.assert_allclose(get_loss("wasserstein").g(f), [0.0, 0.5])
    # hinge: max(0, 1 - 2) + max(0, 1 - 0.5) = 0.5; at 0: 1 + 1 = 2.
    np.testing.assert_allclose(get_loss("hinge").d(r, f), [2.0, 0.5])
    # LSGAN: 0.5*(0-1)^2 + 0 = 0.5; 0.5*(2-1)^2 + 0.5*0.25 = 0.625; G: 0.5*(0-1)^2, 0.5*(-1.5)^2.
    np.testing.assert_allclose(get_loss("least_squares").d(r, f), [0.5, 0.625])
    np.testing.assert_allclose(get_loss("least_squares").g(f), [0.5, 1.125])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_large_logits_are_finite_and_correct(name):
    big = np.array([-50.0, -30.0, 30.0, 50.0], np.float32)
    real, fake = big, big[::-1].copy()
    loss = get_loss(name)
    ref_d, ref_g = REFERENCE_STABLE[name]
    d = np.asarray(loss.d(jnp.asarray(real), jnp.asarray(fake)))
    g = np.asarray(loss.g(jnp.asarray(fake)))
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(g)), (d, g)
    np.testing.assert_allclose(d, ref_d(real.astype(np.float64), fake.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, ref_g(fake.astype(np.float64)), rtol=1e-5, atol=1e-6)
    # Gradients stay finite too (what training actually needs).
    grads = jax.grad(lambda r, f: jnp.sum(loss.d(r, f)) + jnp.sum(loss.g(f)), argnums=(0, 1))(
        jnp.asarray(real), jnp.asarray(fake)
    )
    assert all(np.all(np.isfinite(np.asarray(x))) for x in grads)


def test_non_saturating_gradient_does_not_vanish_where_minimax_does():
    # The point of the non-saturating loss: at a confidently rejected fake (logit -10),
    # d/df of -log sigmoid(f) is -(1 - sigmoid(f)) ~ -1, of log(1 - sigmoid(f)) is -sigmoid(f) ~ -4.5e-5.
    f = jnp.array(-10.0)
    ns = float(jax.grad(lambda x: get_loss("non_saturating").g(x))(f))
    mm = float(jax.grad(lambda x: get_loss("minimax").g(x))(f))
    np.testing.assert_allclose(ns, -(1 - _np_sigmoid(-10.0)), rtol=1e-5)
    np.testing.assert_allclose(mm, -_np_sigmoid(-10.0), rtol=1e-4)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_shape_mismatch_raises(name):
    with pytest.raises(ValueError, match=r"real logits \(4,\) and fake logits \(3,\) differ in shape"):
        get_loss(name).d(jnp.zeros(4), jnp.zeros(3))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        get_loss("vanilla")
    message = str(excinfo.value)
    assert "'vanilla'" in message
    assert str(sorted(LOSSES)) in message


def test_ema_decay_warmup_closed_form():
    from jaxgan.train.steps import ema_decay_with_warmup

    decay = ema_decay_with_warmup(0.999)
    for step, expected in [(0, 0.1), (5, 6 / 15), (1000, 1001 / 1010), (100000, 0.999)]:
        np.testing.assert_allclose(float(decay(np.float32(step))), expected, rtol=1e-6)
