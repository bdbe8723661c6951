"""Tests for the pure GAN train step and its data-parallel wrappers.

Every check compares against an independent reference: a run on another device
count or with another wrapper, numpy formulas, or a host-side recomputation of
what the step's documented contract says it computes.

conftest.py gives this process 8 virtual CPU devices.
"""

from __future__ import annotations

import contextlib
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.common import DATA_AXIS
from jaxgan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from jaxgan.train import sample_latents
from jaxgan.train.steps import global_example_indices

BATCH = 16
N_CRITIC = 2
N_STEPS = 3
REL_TOL = 1e-5


# --------------------------------------------------------------------------- helpers


def _devices(n):
    devices = jax.devices()
    assert len(devices) >= 8, "conftest.py must force 8 host devices"
    return devices[:n]


def _host(tree):
    """A numpy copy of a pytree (so a later `replicate` copies instead of aliasing)."""
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _leaves_with_paths(tree):
    return jax.tree_util.tree_flatten_with_path(_host(tree))[0]


def _rel_errors(a, b):
    """Per-leaf ||a - b|| / ||b|| (float leaves); integer leaves must match exactly."""
    a_leaves, b_leaves = _leaves_with_paths(a), _leaves_with_paths(b)
    assert jax.tree_util.tree_structure(_host(a)) == jax.tree_util.tree_structure(_host(b))
    errors = {}
    for (path, x), (_, y) in zip(a_leaves, b_leaves):
        name = jax.tree_util.keystr(path)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if not np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(x, y, err_msg=name)
            continue
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        denom = np.linalg.norm(y64)
        diff = np.linalg.norm(x64 - y64)
        errors[name] = 0.0 if diff == 0.0 else diff / max(denom, 1e-30)
    return errors


def _assert_states_close(a, b, tol=REL_TOL, what=""):
    errors = _rel_errors(a, b)
    worst = max(errors.items(), key=lambda kv: kv[1])
    print(f"{what}: worst per-leaf relative error {worst[1]:.2e} at {worst[0]}")
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{what}: leaves off by more than {tol} relative: {bad}"


def _structure_and_avals(state):
    leaves, treedef = jax.tree_util.tree_flatten(state)
    return treedef, [(tuple(x.shape), np.dtype(x.dtype)) for x in leaves]


@contextlib.contextmanager
def _count_backend_compiles():
    """Counts XLA compilations (of anything) inside the block: backend compiles, and programs
    taken from the persistent compilation cache (tests/conftest.py turns it on) instead."""
    events = []

    def on_duration(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    def on_event(name, **kwargs):
        if name == "/jax/compilation_cache/cache_hits":
            events.append(0.0)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)
        jax.monitoring.unregister_event_listener(on_event)


def _mlp_nets(latent_dim=8, hidden=32, out_shape=(2,)):
    return (
        MLPGenerator(latent_dim=latent_dim, out_shape=out_shape, hidden=hidden, depth=2),
        MLPDiscriminator(hidden=hidden, depth=2),
    )


def _dcgan_nets():
    return (DCGANGenerator(latent_dim=16, image_size=32, channels=1, ngf=8), DCGANDiscriminator(image_size=32, ndf=8))


def _batches(sample_shape, n_critic=N_CRITIC, batch=BATCH, steps=N_STEPS, seed=0):
    rs = np.random.RandomState(seed)
    return [{"image": rs.uniform(-1, 1, (n_critic, batch, *sample_shape)).astype(np.float32)} for _ in range(steps)]


def _setup(kind, *, n_critic=N_CRITIC, tx=None, ema_decay=0.99, critic_loop="auto", loss="non_saturating", nets=None):
    generator, discriminator = nets if nets is not None else (_mlp_nets() if kind == "mlp" else _dcgan_nets())
    tx = tx if tx is not None else optax.adam(1e-3, b1=0.5)
    step = jaxgan.make_train_step(
        generator=generator,
        discriminator=discriminator,
        g_tx=tx,
        d_tx=tx,
        loss=jaxgan.get_loss(loss),
        n_critic=n_critic,
        ema_decay=ema_decay,
        critic_loop=critic_loop,
    )
    example = np.zeros((2, *step.sample_shape), np.float32)
    state = jaxgan.create_train_state(
        jax.random.PRNGKey(42),
        generator=generator,
        discriminator=discriminator,
        example_images=example,
        g_tx=tx,
        d_tx=tx,
    )
    return step, _host(state)


def _drive(run, state, batches, *, donated):
    """Runs the compiled step over `batches`, recording what the invariants tests need."""
    record = {"metrics": [], "cache_sizes": [], "compiles": [], "avals": [], "steps": [], "deleted": []}
    before = _structure_and_avals(state)
    for batch in batches:
        old_leaves = jax.tree_util.tree_leaves(state)
        with _count_backend_compiles() as compiles:
            state, metrics = run(state, batch)
            jax.block_until_ready((state, metrics))
        record["compiles"].append(len(compiles))
        if hasattr(run.compiled, "_cache_size"):
            record["cache_sizes"].append(run.compiled._cache_size())
        record["avals"].append(_structure_and_avals(state))
        record["steps"].append(int(np.asarray(state.step)))
        if donated:
            record["deleted"].append(all(x.is_deleted() for x in old_leaves if isinstance(x, jax.Array)))
        record["metrics"].append({k: float(v) for k, v in metrics.items()})
        # A device-side copy: reading the state itself into numpy would pin its buffers
        # (a zero-copy view on CPU) and stop the next call from donating them.
        record.setdefault("states", []).append(_host(jax.tree_util.tree_map(jnp.copy, state)))
    record["before"] = before
    record["state"] = _host(state)
    return record


def _run_shard_map(step, state, batches, n_devices):
    mesh = jaxgan.make_mesh(_devices(n_devices))
    run = jaxgan.shard_map_step(step, mesh)
    return _drive(run, jaxgan.replicate(_host(state), mesh), batches, donated=True)


def _run_pmap(step, state, batches, n_devices):
    run = jaxgan.pmap_step(step, _devices(n_devices))
    return _drive(run, _host(state), batches, donated=False)


# --------------------------------------------------------------------------- parity


@pytest.fixture(scope="module", params=["mlp", "dcgan"])
def parity(request):
    """3 steps of the same GAN on the same global batches: 1 and 8 devices, shard_map and pmap."""
    kind = request.param
    step, state = _setup(kind)
    batches = _batches(step.sample_shape)
    runs = {"kind": kind, "initial": state}
    for name, runner, n in (
        ("shard_map_1", _run_shard_map, 1),
        ("shard_map_8", _run_shard_map, 8),
        ("pmap_8", _run_pmap, 8),
    ):
        t0 = time.perf_counter()
        runs[name] = runner(step, state, batches, n)
        print(f"{kind} {name}: {time.perf_counter() - t0:.1f} s for {N_STEPS} steps incl. compile")
    return runs


# Steps compared at REL_TOL. Device counts sum gradients in different orders (~1e-7
# apart); in the DCGAN a ReLU/LeakyReLU input that close to 0 flips side and Adam,
# which normalizes each gradient, turns that into a visible difference: measured
# 2.7e-2 on one G BatchNorm moment at step 3 (~1e-6 at steps 1-2). So the
# DCGAN is compared after its first step (2 D updates with cross-replica BN, a G
# update, the EMA), the MLP after all three.
COMPARED_STEPS = {"mlp": N_STEPS, "dcgan": 1}


@pytest.mark.parametrize("name", ["shard_map_8", "pmap_8"])
def test_data_parallel_matches_single_device(parity, name):
    steps = COMPARED_STEPS[parity["kind"]]
    reference = parity["shard_map_1"]["states"][steps - 1]
    _assert_states_close(
        parity[name]["states"][steps - 1], reference, what=f"{parity['kind']} {name} vs 1 device after {steps} steps"
    )
    # The whole state moved: the comparison is not between two untouched states.
    for net in ("g", "d"):
        moved = _rel_errors(getattr(reference, net).params, getattr(parity["initial"], net).params)
        assert min(moved.values()) > 1e-4, moved
    for m, m_ref in zip(parity[name]["metrics"][:steps], parity["shard_map_1"]["metrics"][:steps]):
        for k in m_ref:
            np.testing.assert_allclose(m[k], m_ref[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_shard_map_and_pmap_agree(parity):
    _assert_states_close(
        parity["pmap_8"]["state"],
        parity["shard_map_8"]["state"],
        what=f"{parity['kind']} pmap vs shard_map on 8 devices",
    )


def test_batch_stats_are_present_and_compared(parity):
    """The DCGAN's running BatchNorm statistics are part of the compared state and moved
    during the 3 steps; the MLP has none."""
    state = parity["shard_map_8"]["state"]
    if parity["kind"] == "mlp":
        assert state.g.batch_stats == {} and state.d.batch_stats == {}
        return
    assert jax.tree_util.tree_leaves(state.g.batch_stats) and jax.tree_util.tree_leaves(state.d.batch_stats)
    for net in ("g", "d"):  # moved away from their init (mean 0, var 1)
        errs = _rel_errors(getattr(state, net).batch_stats, getattr(parity["initial"], net).batch_stats)
        assert min(errs.values()) > 1e-3, errs


@pytest.mark.parametrize("name", ["shard_map_1", "shard_map_8", "pmap_8"])
def test_compiles_once_and_keeps_state_layout(parity, name):
    record = parity[name]
    # Calls 2 and 3 compile nothing at all (neither the step nor any helper op).
    assert record["compiles"][0] >= 1, record["compiles"]
    assert record["compiles"][1:] == [0] * (N_STEPS - 1), record["compiles"]
    if record["cache_sizes"]:  # the jitted shard_map path: one cache entry throughout
        assert record["cache_sizes"] == [1] * N_STEPS, record["cache_sizes"]
    # Same tree structure, shapes and dtypes after every step.
    for avals in record["avals"]:
        assert avals[0] == record["before"][0]
        assert avals[1] == record["before"][1]
    assert record["steps"] == list(range(1, N_STEPS + 1))


@pytest.mark.parametrize("name", ["shard_map_1", "shard_map_8"])
def test_shard_map_donates_input_state(parity, name):
    assert parity[name]["deleted"] == [True] * N_STEPS


# --------------------------------------------------------------------------- critic loop


class _BNMLPGenerator(nn.Module):
    """A tiny G with cross-replica BatchNorm, so the critic loop carries G's stats."""

    latent_dim: int = 4

    @nn.compact
    def __call__(self, z, *, train=True):
        h = nn.Dense(16)(z)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=DATA_AXIS if train else None)(h)
        return nn.Dense(3)(nn.relu(h))


class _BNMLPDiscriminator(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=True):
        h = nn.Dense(16)(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=DATA_AXIS if train else None)(h)
        return nn.Dense(1)(nn.leaky_relu(h, 0.2))[:, 0]


def test_scan_and_unroll_critic_loops_agree():
    n_critic = 3
    results = {}
    for loop in ("scan", "unroll"):
        # SGD, not Adam: D's BatchNorm makes it blind to a constant shift of its input, so
        # the biases before it (and G's output bias) have a zero true gradient; Adam would
        # turn the ~1e-9 rounding noise there into full-size steps of either sign.
        step, state = _setup(
            "bn_mlp",
            n_critic=n_critic,
            critic_loop=loop,
            tx=optax.sgd(0.05),
            nets=(_BNMLPGenerator(), _BNMLPDiscriminator()),
        )
        batches = _batches(step.sample_shape, n_critic=n_critic, steps=2)
        results[loop] = _run_shard_map(step, state, batches, 2)
    _assert_states_close(results["scan"]["state"], results["unroll"]["state"], what="scan vs unroll")
    assert jax.tree_util.tree_leaves(results["scan"]["state"].g.batch_stats)
    moved = _rel_errors(results["unroll"]["state"].g.batch_stats, state.g.batch_stats)
    assert min(moved.values()) > 1e-3, moved


# --------------------------------------------------------------------------- K steps per call


@pytest.mark.parametrize("step_loop", ["scan", "unroll"])
def test_steps_per_call_equals_single_steps(step_loop):
    """K steps in one call (lax.scan or unrolled) == K calls of the single step, on 2 devices."""
    k = 4
    step, state = _setup("mlp", n_critic=2)
    batches = _batches(step.sample_shape, n_critic=2, steps=k)
    single = _run_shard_map(step, state, batches, 2)
    mesh = jaxgan.make_mesh(_devices(2))
    run = jaxgan.shard_map_step(step, mesh, steps_per_call=k, step_loop=step_loop)
    stacked = {"image": np.stack([b["image"] for b in batches])}
    first = jaxgan.replicate(_host(state), mesh)
    old_leaves = jax.tree_util.tree_leaves(first)
    end, per_step = run(first, stacked)
    assert int(end.step) == k
    assert all(x.is_deleted() for x in old_leaves), "the state must be donated"
    _assert_states_close(_host(end), single["state"], tol=1e-6, what=f"{k} steps per call ({step_loop})")
    per_step = jax.device_get(per_step)
    for name in single["metrics"][0]:
        np.testing.assert_allclose(
            per_step[name], [m[name] for m in single["metrics"]], rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_steps_per_call_rejects_a_batch_without_the_steps_axis():
    step, state = _setup("mlp", n_critic=2)
    mesh = jaxgan.make_mesh(_devices(2))
    run = jaxgan.shard_map_step(step, mesh, steps_per_call=3)
    batch = _batches(step.sample_shape, n_critic=2, steps=1)[0]
    with pytest.raises(ValueError, match=r"leading axis of 3"):
        run(jaxgan.replicate(state, mesh), batch)
    with pytest.raises(ValueError, match=r"steps per call\) must be an int >= 1"):
        jaxgan.multi_step(step, 0)


# --------------------------------------------------------------------------- randomness


def _reference_latents(key, n, latent_dim):
    return np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (latent_dim,))) for i in range(n)])


def test_sample_latents_is_keyed_by_example_index():
    key = jax.random.PRNGKey(7)
    expected = _reference_latents(key, BATCH, 5)
    got = np.asarray(sample_latents(key, jnp.arange(BATCH), 5))
    np.testing.assert_array_equal(got, expected)
    # A subset of indices gives exactly those rows.
    got_sub = np.asarray(sample_latents(key, jnp.array([3, 11]), 5))
    np.testing.assert_array_equal(got_sub, expected[[3, 11]])
    assert not np.allclose(expected[0], expected[1])


@pytest.mark.parametrize("n_devices", [1, 2, 8])
def test_latents_depend_on_global_index_not_device_count(n_devices):
    key = jax.random.PRNGKey(3)
    mesh = jaxgan.make_mesh(_devices(n_devices))
    local = BATCH // n_devices

    def per_device(x):  # x: this device's [local, 1] slice; only its length is used
        return sample_latents(key, global_example_indices(x.shape[0], DATA_AXIS), 6)

    f = jax.jit(
        jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=jax.sharding.PartitionSpec(DATA_AXIS),
            out_specs=jax.sharding.PartitionSpec(DATA_AXIS),
        )
    )
    got = np.asarray(f(jnp.zeros((BATCH, 1))))
    assert local * n_devices == BATCH
    np.testing.assert_array_equal(got, _reference_latents(key, BATCH, 6))


def _host_d_g(generator, discriminator, state):
    g = lambda z: generator.apply({"params": state.g.params}, z, train=True)
    d = lambda x: discriminator.apply({"params": state.d.params}, x, train=True)
    return g, d


@pytest.fixture(scope="module")
def frozen_mlp():
    """An MLP GAN whose optimizers do nothing (SGD, lr 0): each step only draws latents."""
    generator, discriminator = _mlp_nets()
    step, state = _setup("mlp", tx=optax.sgd(0.0), loss="wasserstein", nets=(generator, discriminator))
    mesh = jaxgan.make_mesh(_devices(8))
    run = jaxgan.shard_map_step(step, mesh)
    batch = _batches(step.sample_shape, steps=1)[0]
    return generator, discriminator, step, state, mesh, run, batch


def test_step_draws_documented_latents_for_d_and_g(frozen_mlp):
    """With lr 0 the metrics are pure functions of the latents; recompute them on the host
    from the documented key schedule (module docstring of jaxgan.train.keys)."""
    generator, discriminator, step, state, mesh, run, batch = frozen_mlp
    s = jaxgan.replicate(state, mesh)
    g, d = _host_d_g(generator, discriminator, state)
    real = batch["image"]
    for t in range(2):
        s, metrics = run(s, batch)
        step_key = jax.random.fold_in(jnp.asarray(state.rng), t)
        d_keys = jax.random.split(jax.random.fold_in(step_key, 0), N_CRITIC)
        g_key = jax.random.fold_in(step_key, 1)
        # Latents: fold_in(update key, 0), then fold_in(., global example index).
        d_fake = [
            np.asarray(d(g(_reference_latents(jax.random.fold_in(d_keys[j], 0), BATCH, step.latent_dim))))
            for j in range(N_CRITIC)
        ]
        g_fake = np.asarray(d(g(_reference_latents(jax.random.fold_in(g_key, 0), BATCH, step.latent_dim))))
        real_logits = [np.asarray(d(real[j])) for j in range(N_CRITIC)]
        np.testing.assert_allclose(float(metrics["d_fake_logit"]), np.mean(d_fake), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(metrics["d_real_logit"]), np.mean(real_logits), rtol=1e-5, atol=1e-6)
        # Wasserstein: d_loss = mean(fake - real), g_loss = -mean(fake) on G's own latents.
        np.testing.assert_allclose(
            float(metrics["d_loss"]), np.mean(d_fake) - np.mean(real_logits), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(float(metrics["g_loss"]), -np.mean(g_fake), rtol=1e-5, atol=1e-6)
        # The test can tell the draws apart: D's two updates and G's update see different fakes.
        assert abs(np.mean(d_fake[0]) - np.mean(d_fake[1])) > 1e-4
        assert abs(np.mean(g_fake) - np.mean(d_fake)) > 1e-4


def test_consecutive_steps_use_new_keys_and_reruns_reproduce(frozen_mlp):
    *_, state, mesh, run, batch = frozen_mlp
    s0 = jaxgan.replicate(state, mesh)
    s1, m0 = run(s0, batch)
    s2, m1 = run(s1, batch)
    # Params are frozen (lr 0) and the batch is the same: only the step's key differs.
    _assert_states_close(_host(s2).g.params, state.g.params, tol=0.0, what="frozen G")
    for k in ("d_fake_logit", "g_loss"):
        assert m0[k] != m1[k], (k, m0[k], m1[k])
    np.testing.assert_array_equal(float(m0["d_real_logit"]), float(m1["d_real_logit"]))
    # Re-running step 0 from the same state reproduces its metrics bit for bit.
    _, m0_again = run(jaxgan.replicate(state, mesh), batch)
    for k in m0:
        assert float(m0[k]) == float(m0_again[k]), k


# --------------------------------------------------------------------------- EMA


def test_ema_after_one_sgd_step():
    step, state = _setup("mlp", tx=optax.sgd(0.1), ema_decay=0.9)
    # Batch 6 on a 2-device mesh of this 8-device host: a numpy batch must divide
    # by the mesh's devices, not by all the host's devices.
    record = _run_shard_map(step, state, _batches(step.sample_shape, batch=6, steps=1), 2)
    new = record["state"]
    expected = jax.tree_util.tree_map(
        lambda old, p: 0.9 * old.astype(np.float64) + 0.1 * p.astype(np.float64), state.g_ema_params, new.g.params
    )
    for (path, got), (_, want) in zip(_leaves_with_paths(new.g_ema_params), _leaves_with_paths(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=jax.tree_util.keystr(path))
    # Not vacuous: params moved, and the EMA differs from both old and new params.
    assert min(_rel_errors(new.g.params, state.g.params).values()) > 1e-4
    assert min(_rel_errors(new.g_ema_params, new.g.params).values()) > 1e-5


def test_ema_decay_callable_is_called_with_the_step():
    calls = []

    def decay(step):
        calls.append((tuple(step.shape), np.dtype(step.dtype)))
        return 1.0 / (step.astype(jnp.float32) + 2.0)  # 1/2 at step 0, 1/3 at step 1

    step, state = _setup("mlp", tx=optax.sgd(0.1), ema_decay=decay)
    mesh = jaxgan.make_mesh(_devices(1))
    run = jaxgan.shard_map_step(step, mesh)
    batches = _batches(step.sample_shape, steps=2)
    s = jaxgan.replicate(state, mesh)
    ema = jax.tree_util.tree_map(lambda x: x.astype(np.float64), state.g_ema_params)
    for t, batch in enumerate(batches):
        s, _ = run(s, batch)
        host = _host(s)
        d = 1.0 / (t + 2.0)
        ema = jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * p.astype(np.float64), ema, host.g.params)
        for (path, got), (_, want) in zip(_leaves_with_paths(host.g_ema_params), _leaves_with_paths(ema)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"step {t} {path}")
    assert calls and all(c == ((), np.dtype(np.int32)) for c in calls), calls


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def mlp_runs():
    step, state = _setup("mlp")
    mesh = jaxgan.make_mesh(_devices(8))
    return step, state, mesh, jaxgan.shard_map_step(step, mesh), jaxgan.pmap_step(step, _devices(8))


def _bad_batches(step):
    good = _batches(step.sample_shape, steps=1)[0]["image"]
    return {
        "batch_12_on_8": (good[:, :12], ["12", "8", "multiple of 8"]),
        "wrong_sample_shape": (np.zeros((N_CRITIC, BATCH, 3), np.float32), ["(2, 16, 3)", "reshape"]),
        "wrong_n_critic": (np.zeros((3, BATCH, 2), np.float32), ["n_critic=2", "(3, 16, 2)"]),
        "uint8": (good.astype(np.uint8), ["uint8", "float32", "to_model_range"]),
        "float64": (good.astype(np.float64), ["float64", "float32"]),
    }


@pytest.mark.parametrize("case", ["batch_12_on_8", "wrong_sample_shape", "wrong_n_critic", "uint8", "float64"])
@pytest.mark.parametrize("wrapper", ["shard_map", "pmap"])
def test_bad_batch_fails_before_compilation(mlp_runs, case, wrapper):
    step, state, mesh, sm_run, pmap_run = mlp_runs
    images, fragments = _bad_batches(step)[case]
    run, s = (sm_run, jaxgan.replicate(state, mesh)) if wrapper == "shard_map" else (pmap_run, state)
    with _count_backend_compiles() as compiles:
        with pytest.raises(ValueError) as excinfo:
            run(s, {"image": images})
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert compiles == [], "the bad batch reached the compiler"
    if wrapper == "shard_map":
        assert sm_run.compiled._cache_size() == 0


def test_divisibility_is_checked_against_the_mesh_devices():
    step, state = _setup("mlp")
    mesh = jaxgan.make_mesh(_devices(4))
    run = jaxgan.shard_map_step(step, mesh)
    with pytest.raises(
        ValueError,
        match="batch size 6 is not divisible by the device count 4; use a batch size that is a multiple of 4",
    ):
        run(jaxgan.replicate(state, mesh), {"image": np.zeros((N_CRITIC, 6, 2), np.float32)})
    assert run.compiled._cache_size() == 0


def test_global_array_batch_is_checked_too(mlp_runs):
    step, state, mesh, sm_run, _ = mlp_runs
    images = jnp.zeros((N_CRITIC, BATCH, 2), jnp.int32)
    with pytest.raises(ValueError, match="int32"):
        sm_run(jaxgan.replicate(state, mesh), {"image": images})
    assert sm_run.compiled._cache_size() == 0


@pytest.mark.parametrize("n_critic", [0, -1, 1.5, True, "2"])
def test_bad_n_critic(n_critic):
    generator, discriminator = _mlp_nets()
    tx = optax.sgd(0.1)
    with pytest.raises(ValueError) as excinfo:
        jaxgan.make_train_step(
            generator=generator,
            discriminator=discriminator,
            g_tx=tx,
            d_tx=tx,
            loss=jaxgan.get_loss("hinge"),
            n_critic=n_critic,
        )
    assert repr(n_critic) in str(excinfo.value) and ">= 1" in str(excinfo.value)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        jaxgan.get_loss("wgan-gp")
    message = str(excinfo.value)
    assert "'wgan-gp'" in message
    for name in ("non_saturating", "minimax", "wasserstein", "hinge", "least_squares"):
        assert name in message


def test_generator_shape_mismatch_in_create_train_state():
    generator, discriminator = _mlp_nets(out_shape=(3,))
    tx = optax.sgd(0.1)
    with _count_backend_compiles() as compiles:
        with pytest.raises(ValueError) as excinfo:
            jaxgan.create_train_state(
                0,
                generator=generator,
                discriminator=discriminator,
                example_images=np.zeros((4, 2), np.float32),
                g_tx=tx,
                d_tx=tx,
            )
    message = str(excinfo.value)
    assert "(3,)" in message and "(2,)" in message and "match" in message
    assert compiles == []


# --------------------------------------------------------------------------- convergence

RING_MODES = 8
RING_RADIUS = 1.0
RING_SIGMA = 0.01
RING_SEED = 0
RING_STEPS = 2000
RING_BATCH = 256
RING_SAMPLES = 2500


def _ring_centers():
    angles = 2 * np.pi * np.arange(RING_MODES) / RING_MODES
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _ring_batch(rs, n):
    centers = _ring_centers()[rs.randint(RING_MODES, size=n)]
    return (centers + RING_SIGMA * rs.randn(n, 2)).astype(np.float32)


def _mode_coverage(samples):
    """(modes with >= 1 sample within 3 sigma, fraction of samples within 3 sigma of some mode)."""
    dist = np.linalg.norm(samples[:, None, :].astype(np.float64) - _ring_centers()[None], axis=-1)
    near = dist <= 3 * RING_SIGMA
    return int(near.any(axis=0).sum()), float(near.any(axis=1).mean())


def _ring_gan():
    # Tuned on seeds 0-13: the EMA generator covered 8/8 modes after 2,000 steps for
    # every seed (7-8 at 1,500; the raw G wanders more, 7-8 at 2,000). Tried and
    # dropped: the non-saturating loss with latent 8 (G stuck collapsed at the
    # ring's centre on 4 of 10 seeds), hidden 256 (collapsed on 4 of 4 seeds).
    generator = MLPGenerator(latent_dim=2, out_shape=(2,), hidden=128, depth=3)
    discriminator = MLPDiscriminator(hidden=128, depth=3)
    tx = optax.adam(1e-3, b1=0.5)
    step = jaxgan.make_train_step(
        generator=generator,
        discriminator=discriminator,
        g_tx=tx,
        d_tx=tx,
        loss=jaxgan.get_loss("least_squares"),
        n_critic=1,
        ema_decay=0.99,
    )
    state = jaxgan.create_train_state(
        RING_SEED,
        generator=generator,
        discriminator=discriminator,
        example_images=np.zeros((1, 2), np.float32),
        g_tx=tx,
        d_tx=tx,
    )
    return generator, step, state


def _g_samples(generator, params):
    z = jax.random.normal(jax.random.PRNGKey(1234), (RING_SAMPLES, generator.latent_dim))
    return np.asarray(jax.jit(lambda p, z: generator.apply({"params": p}, z, train=False))(params, z))


def test_mlp_gan_covers_the_ring_of_gaussians():
    generator, step, state = _ring_gan()
    initial_modes, initial_quality = _mode_coverage(_g_samples(generator, state.g.params))
    mesh = jaxgan.make_mesh(_devices(1))
    run = jaxgan.shard_map_step(step, mesh)
    rs = np.random.RandomState(RING_SEED)
    s = jaxgan.replicate(_host(state), mesh)
    t0 = time.perf_counter()
    for _ in range(RING_STEPS):
        s, metrics = run(s, {"image": _ring_batch(rs, RING_BATCH)})
    final = _host(s)
    elapsed = time.perf_counter() - t0
    modes, quality = _mode_coverage(_g_samples(generator, final.g_ema_params))
    raw_modes, raw_quality = _mode_coverage(_g_samples(generator, final.g.params))
    print(
        f"ring: {RING_STEPS} steps in {elapsed:.1f} s; EMA G covers {modes}/8 modes, "
        f"{quality:.1%} of samples within 3 sigma; raw G {raw_modes}/8, {raw_quality:.1%}; "
        f"fresh G {initial_modes}/8, {initial_quality:.1%}; last metrics "
        f"{ {k: round(float(v), 3) for k, v in metrics.items()} }"
    )
    assert int(final.step) == RING_STEPS
    assert initial_modes < 7, "a fresh G already covers the ring: the check would be vacuous"
    assert modes >= 7, (modes, quality)


def test_auto_compiler_options_turn_ynn_fusions_off_only_for_convolutions_on_cpu():
    from jaxgan.train.parallel import CPU_CONV_STEP_COMPILER_OPTIONS, resolve_compiler_options

    mlp_step, _ = _setup("mlp")
    dcgan_step, _ = _setup("dcgan")
    cpus = _devices(2)
    assert resolve_compiler_options("auto", cpus, mlp_step) is None
    assert resolve_compiler_options("auto", cpus, dcgan_step) == CPU_CONV_STEP_COMPILER_OPTIONS
    assert resolve_compiler_options({"xla_cpu_use_onednn": True}, cpus, mlp_step) == {"xla_cpu_use_onednn": True}
    assert resolve_compiler_options(None, cpus, dcgan_step) is None
    with pytest.raises(TypeError, match="compiler_options"):
        resolve_compiler_options("fast", cpus, mlp_step)
