"""The train step driven from a user's own loop.

Mirrors the README section "Use the train step in your own code": only the
jaxgan core API (nets, losses, state, step, mesh helpers), Optax and numpy; none
of jaxgan's loop, config, data or checkpoint code.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

import jaxgan
from jaxgan.nets import MLPDiscriminator, MLPGenerator

STEPS = 50


# --- A user's own training loop: a GAN learning a 2-D Gaussian ----------------
# Build the networks, the optimizers, the state and the compiled step once, then
# feed numpy batches shaped [B, *sample_shape] (n_critic == 1) and read metrics.
def _user_loop(steps: int = STEPS):
    generator = MLPGenerator(latent_dim=4, out_shape=(2,), hidden=32)
    discriminator = MLPDiscriminator(hidden=32)
    tx = optax.adam(2e-4, b1=0.5)
    state = jaxgan.create_train_state(
        0,
        generator=generator,
        discriminator=discriminator,
        example_images=np.zeros((1, 2), np.float32),
        g_tx=tx,
        d_tx=tx,
    )
    step = jaxgan.make_train_step(
        generator=generator,
        discriminator=discriminator,
        g_tx=tx,
        d_tx=tx,
        loss=jaxgan.get_loss("non_saturating"),
        n_critic=1,
        ema_decay=0.99,
    )
    mesh = jaxgan.make_mesh(jax.devices()[:1])  # or make_mesh() for every device
    train_step = jaxgan.shard_map_step(step, mesh)
    state = jaxgan.replicate(state, mesh)  # the step donates (consumes) this state

    rng = np.random.default_rng(0)
    history = []
    for _ in range(steps):
        batch = {"image": rng.normal([1.0, -1.0], 0.1, size=(64, 2)).astype(np.float32)}
        state, metrics = train_step(state, batch)
        history.append({k: float(v) for k, v in metrics.items()})
    return state, history


# ------------------------------------------------------------------------------


def test_user_loop():
    generator = MLPGenerator(latent_dim=4, out_shape=(2,), hidden=32)
    discriminator = MLPDiscriminator(hidden=32)
    tx = optax.adam(2e-4, b1=0.5)
    # The same initial state as the loop builds (same seed), kept on the host for comparison.
    initial = jax.device_get(
        jaxgan.create_train_state(
            0,
            generator=generator,
            discriminator=discriminator,
            example_images=np.zeros((1, 2), np.float32),
            g_tx=tx,
            d_tx=tx,
        )
    )

    state, history = _user_loop()
    final = jax.device_get(state)

    assert int(final.step) == STEPS
    assert len(history) == STEPS
    assert set(history[0]) >= {"d_loss", "g_loss", "d_real_logit", "d_fake_logit"}
    assert all(np.isfinite(v) for metrics in history for v in metrics.values())
    for net in ("g", "d"):
        before = jax.tree_util.tree_leaves(getattr(initial, net).params)
        after = jax.tree_util.tree_leaves(getattr(final, net).params)
        assert all(np.all(np.isfinite(a)) for a in after)
        assert all(not np.array_equal(a, b) for a, b in zip(after, before)), f"{net} params did not all change"
    # The EMA of G trails G: it moved from the initial params but not all the way.
    for ema, g, g0 in zip(
        *(jax.tree_util.tree_leaves(t) for t in (final.g_ema_params, final.g.params, initial.g.params))
    ):
        assert not np.array_equal(ema, g0) and not np.array_equal(ema, g)
