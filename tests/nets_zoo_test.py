"""Tests for the GAN zoo in jaxgan.nets: ResNet G/D, spectral norm, class
conditioning (concat, conditional BN, projection, ACGAN head), minibatch std and
discrimination, PacGAN packing, D capacity presets and the registry checks.

References: numpy.linalg.svd and float64 numpy power iterations (spectral norm),
numpy loops written from the papers' formulas (minibatch std, minibatch
discrimination, BatchNorm, projection), Flax's own nn.Conv (spectral-normalized
conv), an unpacked D fed hand-concatenated inputs (PacGAN), and closed-form
parameter counts (capacity presets).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgan
from jaxgan.losses import get_loss
from jaxgan.nets import (
    D_CAPACITY_PRESETS,
    ConditionalBatchNorm,
    DCGANDiscriminator,
    DCGANGenerator,
    MinibatchDiscrimination,
    MLPDiscriminator,
    MLPGenerator,
    NETWORKS,
    ResNetDiscriminator,
    ResNetGenerator,
    check_image_size,
    d_capacity_kwargs,
    get_network_classes,
    minibatch_stddev,
    pack_samples,
)
from jaxgan.nets.layers import apply_layer
from jaxgan.train.parallel import replicate, shard_map_step

KEY = jax.random.PRNGKey(0)


def _rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _count(params) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def _normalize(v):
    return v / np.linalg.norm(v)


def _init(module, *args, seed=0, **kwargs):
    """Variables of module's shapes filled from numpy (kernels ~ N(0, 1/fan_in)).

    Initialising with jax.random compiles a threefry kernel per parameter, which
    takes minutes on a loaded 2-core CPU; these tests need only generic weights.
    """
    shapes = jax.eval_shape(functools.partial(module.init, train=False, **kwargs), KEY, *args)
    rs = np.random.RandomState(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("/sigma']"):  # BatchNorm variance, spectral-norm sigma
            return np.ones(leaf.shape, np.float32)
        if name.endswith("['mean']"):
            return np.zeros(leaf.shape, np.float32)
        fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
        scale = 1.0 / np.sqrt(fan_in) if len(leaf.shape) > 1 else 0.1
        return (rs.randn(*leaf.shape) * scale + (1.0 if name.endswith("['scale']") else 0.0)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


class _SN(nn.Module):
    """A layer under spectral norm inside a parent module, as the discriminators use it."""

    layer: Any

    @nn.compact
    def __call__(self, x, *, train):
        return apply_layer(self.layer(), x, spectral_norm=True, train=train, axis_name=None)


# --------------------------------------------------------------------------- ResNet shapes


@pytest.mark.parametrize("size,n_blocks", [(32, 3), (64, 4), (128, 5)])
def test_resnet_shapes(size, n_blocks):
    g = ResNetGenerator(latent_dim=8, image_size=size, channels=1, ngf=4)
    d = ResNetDiscriminator(image_size=size, ndf=4)
    z = jax.ShapeDtypeStruct((3, 8), jnp.float32)
    x = jax.ShapeDtypeStruct((3, size, size, 1), jnp.float32)
    images, g_vars = jax.eval_shape(lambda z: g.init_with_output(KEY, z, train=False), z)
    logits, d_vars = jax.eval_shape(lambda x: d.init_with_output(KEY, x, train=False), x)
    assert images.shape == (3, size, size, 1) and images.dtype == jnp.float32
    assert logits.shape == (3,) and logits.dtype == jnp.float32
    # One up-block per doubling from 4x4 (4 * 2^n_blocks = size); D's down-blocks reach 8x8 at 32 px
    # (SNGAN) and 4x4 at 64/128 px (BigGAN), then the default plain blocks (2 at 32 px, 1 above).
    assert sorted(k for k in g_vars["params"] if k.startswith("up")) == [f"up{i}" for i in range(n_blocks)]
    n_down = {32: 2, 64: 4, 128: 5}[size] + {32: 2, 64: 1, 128: 1}[size]
    assert sorted(d_vars["params"]) == sorted([f"block{i}" for i in range(n_down)] + ["logit"])
    # Spectral norm (on by default) keeps its power iterates in "batch_stats", one u per kernel.
    assert set(d_vars) == {"params", "batch_stats"}
    n_kernels = sum(
        1
        for path, _ in jax.tree_util.tree_flatten_with_path(d_vars["params"])[0]
        if "kernel" in jax.tree_util.keystr(path)
    )
    n_u = sum(
        1
        for path, _ in jax.tree_util.tree_flatten_with_path(d_vars["batch_stats"])[0]
        if jax.tree_util.keystr(path).endswith("/u']")
    )
    assert n_u == n_kernels


def test_resnet_128_forward():
    """The one real 128 px forward (tiny widths), in training mode with conditioning."""
    g = ResNetGenerator(latent_dim=8, image_size=128, channels=3, ngf=8, num_classes=3, bn_axis_name=None)
    d = ResNetDiscriminator(image_size=128, ndf=8, num_classes=3, bn_axis_name=None)
    z, y = jnp.asarray(_rand(2, 8)), jnp.array([0, 2], jnp.int32)
    g_vars = _init(g, z, y)
    images, _ = jax.jit(functools.partial(g.apply, train=True, mutable=["batch_stats"]))(g_vars, z, y)
    d_vars = _init(d, images, y)
    logits, _ = jax.jit(functools.partial(d.apply, train=True, mutable=["batch_stats"]))(d_vars, images, y)
    assert images.shape == (2, 128, 128, 3) and logits.shape == (2,)
    assert float(jnp.max(jnp.abs(images))) <= 1.0 and float(jnp.std(images)) > 1e-3
    assert np.all(np.isfinite(np.asarray(logits)))


# --------------------------------------------------------------------------- spectral norm


def _power_iterate(w, u, steps):
    """float64 numpy power iteration for the top singular pair of w [in, out], u [out]."""
    for _ in range(steps):
        v = _normalize(w @ u)
        u = _normalize(w.T @ v)
    return u, float(v @ w @ u)


def _run_sn(module, x, steps):
    """Inits, then applies in training mode `steps` times, threading the stored u."""
    variables = _init(module, x)
    apply = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))
    for _ in range(steps):
        _, updates = apply(variables, x)
        variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    return variables


def test_spectral_norm_dense_unit_singular_value():
    w_in, w_out = 12, 7
    module = _SN(lambda: nn.Dense(w_out, name="dense"))
    x = jnp.eye(w_in)  # probe: the rows of the output are the rows of the normalized kernel (+ bias)
    variables = _run_sn(module, x, steps=60)
    kernel = np.asarray(variables["params"]["dense"]["kernel"], np.float64)
    top = np.linalg.svd(kernel, compute_uv=False)[0]
    assert abs(float(variables["batch_stats"]["dense_sn"]["dense/kernel/sigma"]) - top) <= 1e-2 * top
    bias = np.asarray(variables["params"]["dense"]["bias"])
    with jax.default_matmul_precision("highest"):
        out = np.asarray(module.apply(variables, x, train=False), np.float64)
    effective = out - bias
    assert abs(np.linalg.svd(effective, compute_uv=False)[0] - 1.0) <= 1e-2
    np.testing.assert_allclose(effective, kernel / top, rtol=1e-2, atol=1e-4)


def test_spectral_norm_conv_equals_conv_with_svd_normalized_kernel():
    module = _SN(lambda: nn.Conv(6, (3, 3), padding="SAME", name="conv"))
    x = jnp.asarray(_rand(2, 5, 5, 4))
    variables = _run_sn(module, x, steps=60)
    kernel = np.asarray(variables["params"]["conv"]["kernel"], np.float64)  # [3, 3, 4, 6]
    # The layer's matrix: all axes but the output one flattened -> [36, 6] (Miyato et al. 2018).
    top = np.linalg.svd(kernel.reshape(-1, 6), compute_uv=False)[0]
    assert abs(float(variables["batch_stats"]["conv_sn"]["conv/kernel/sigma"]) - top) <= 1e-2 * top
    reference = nn.Conv(6, (3, 3), padding="SAME")
    ref_params = {
        "params": {"kernel": jnp.asarray(kernel / top, jnp.float32), "bias": variables["params"]["conv"]["bias"]}
    }
    with jax.default_matmul_precision("highest"):
        want = np.asarray(reference.apply(ref_params, x))
        got = np.asarray(module.apply(variables, x, train=False))
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    # The same layer without spectral norm computes a different function (sigma != 1).
    assert abs(top - 1.0) > 0.1


def test_spectral_norm_updates_u_only_in_training():
    """One training call stores exactly one power-iteration step (numpy); evaluation stores nothing."""
    module = _SN(lambda: nn.Dense(5, name="dense"))
    x = jnp.asarray(_rand(3, 4))
    variables = _init(module, x)
    u0 = np.asarray(variables["batch_stats"]["dense_sn"]["dense/kernel/u"], np.float64)[0]
    _, frozen = module.apply(variables, x, train=False, mutable=["batch_stats"])
    np.testing.assert_array_equal(
        np.asarray(frozen["batch_stats"]["dense_sn"]["dense/kernel/u"])[0], u0.astype(np.float32)
    )
    _, updated = module.apply(variables, x, train=True, mutable=["batch_stats"])
    kernel = np.asarray(variables["params"]["dense"]["kernel"], np.float64)
    want_u, want_sigma = _power_iterate(kernel, _normalize(u0), 1)
    got = updated["batch_stats"]["dense_sn"]
    np.testing.assert_allclose(np.asarray(got["dense/kernel/u"])[0], want_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(got["dense/kernel/sigma"]), want_sigma, rtol=1e-5)


def test_spectral_norm_in_the_data_parallel_step():
    """A spectral-normalized D trains under shard_map on 2 devices (its u must come out
    replicated), and the stored u is the numpy power iteration of what the step does:
    two D applications with the old weights (real, fake), one with the updated ones (G step)."""
    g = MLPGenerator(latent_dim=3, out_shape=(2,), hidden=8)
    d = MLPDiscriminator(hidden=8, depth=1, spectral_norm=True)
    x = _rand(4, 2)
    tx = optax.sgd(0.1)
    state = jaxgan.create_train_state(0, generator=g, discriminator=d, example_images=x, g_tx=tx, d_tx=tx)
    old_params, old_stats = jax.device_get((state.d.params, state.d.batch_stats))
    mesh = jaxgan.make_mesh(jax.devices()[:2])
    step = jaxgan.train.make_train_step(generator=g, discriminator=d, g_tx=tx, d_tx=tx, loss=get_loss("hinge"))
    new_state, metrics = shard_map_step(step, mesh)(replicate(state, mesh), {"image": x})
    new_params, new_stats = jax.device_get((new_state.d.params, new_state.d.batch_stats))
    assert np.isfinite(float(metrics["d_loss"]))
    for layer in ("hidden0", "logit"):
        w0 = np.asarray(old_params[layer]["kernel"], np.float64)
        w1 = np.asarray(new_params[layer]["kernel"], np.float64)
        assert not np.allclose(w0, w1)
        u = _normalize(np.asarray(old_stats[f"{layer}_sn"][f"{layer}/kernel/u"], np.float64)[0])
        u, _ = _power_iterate(w0, u, 2)
        u, sigma = _power_iterate(w1, u, 1)
        got = new_stats[f"{layer}_sn"]
        np.testing.assert_allclose(np.asarray(got[f"{layer}/kernel/u"])[0], u, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(float(got[f"{layer}/kernel/sigma"]), sigma, rtol=1e-4)


# --------------------------------------------------------------------------- conditioning


def test_projection_discriminator_matches_hand_computation():
    d = ResNetDiscriminator(image_size=32, ndf=4, num_classes=5, spectral_norm=False)
    x, y = jnp.asarray(_rand(4, 32, 32, 3)), jnp.array([0, 3, 4, 3], jnp.int32)
    variables = _init(d, x, y)
    with jax.default_matmul_precision("highest"):
        logits, state = d.apply(variables, x, y, train=False, mutable=["intermediates"])
    phi = np.asarray(state["intermediates"]["features"][0], np.float64)  # [B, 4]
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    embedding = p["embed"]["embedding"]  # [5, 4]
    # Miyato & Koyama 2018 eq. 3: f(x, y) = psi(phi(x)) + y^T V phi(x), psi linear.
    want = phi @ p["logit"]["kernel"][:, 0] + p["logit"]["bias"][0]
    want = want + np.array([embedding[c] @ phi[i] for i, c in enumerate(np.asarray(y))])
    np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-5, atol=1e-5)
    # phi itself: ReLU then global sum pooling of the last block's output.
    with jax.default_matmul_precision("highest"):
        _, captured = d.apply(
            variables,
            x,
            y,
            train=False,
            mutable=["intermediates"],
            capture_intermediates=lambda m, _: m.name == "block3",
        )
    last = np.asarray(captured["intermediates"]["block3"]["__call__"][0], np.float64)
    np.testing.assert_allclose(phi, np.maximum(last, 0).sum(axis=(1, 2)), rtol=1e-5, atol=1e-5)


def test_factorized_projection_matches_hand_computation():
    # projection_dim=3: f(x, y) = psi(phi) + embed[y] . (W phi), Miyato & Koyama's V factorized as embed W.
    d = DCGANDiscriminator(
        image_size=8,
        ndf=4,
        num_classes=5,
        conditioning="projection",
        projection_dim=3,
        batch_norm=False,
        bn_axis_name=None,
    )
    x, y = jnp.asarray(_rand(4, 8, 8, 3)), jnp.array([0, 3, 4, 3], jnp.int32)
    variables = _init(d, x, y)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    assert p["embed"]["embedding"].shape == (5, 3) and set(p["projection"]) == {"kernel"}
    with jax.default_matmul_precision("highest"):
        logits, state = d.apply(variables, x, y, train=False, mutable=["intermediates"])
    phi = np.asarray(state["intermediates"]["features"][0], np.float64)
    projected = phi @ p["projection"]["kernel"]
    want = phi @ p["logit"]["kernel"][:, 0] + p["logit"]["bias"][0]
    want = want + np.einsum("bk,bk->b", p["embed"]["embedding"][np.asarray(y)], projected)
    np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-5, atol=1e-5)


def test_projection_embedding_spectral_norm_can_be_left_out():
    # Two labels on the same image differ only in the projection term (E[y1] - E[y2]) . phi: with the
    # embedding's spectral norm the rows are divided by its sigma, without it they are E's raw rows.
    x, y1, y2 = jnp.asarray(_rand(3, 8, 8, 3)), jnp.array([0, 1, 4], jnp.int32), jnp.array([2, 3, 0], jnp.int32)
    for embed_sn in (True, False):
        d = DCGANDiscriminator(
            image_size=8,
            ndf=4,
            num_classes=5,
            conditioning="projection",
            spectral_norm=True,
            embed_spectral_norm=embed_sn,
            batch_norm=False,
            bn_axis_name=None,
        )
        variables = d.init(KEY, x, y1, train=False)
        assert ("embed_sn" in variables["batch_stats"]) == embed_sn
        with jax.default_matmul_precision("highest"):
            l1, state = d.apply(variables, x, y1, train=False, mutable=["intermediates"])
            l2 = d.apply(variables, x, y2, train=False)
        phi = np.asarray(state["intermediates"]["features"][0], np.float64)
        table = np.asarray(variables["params"]["embed"]["embedding"], np.float64)
        if embed_sn:  # one power iteration from the stored u, in inference too
            u = np.asarray(variables["batch_stats"]["embed_sn"]["embed/embedding/u"][0], np.float64)
            table = table / _power_iterate(table, u, 1)[1]
        want = np.einsum("bk,bk->b", table[np.asarray(y1)] - table[np.asarray(y2)], phi)
        np.testing.assert_allclose(np.asarray(l1 - l2), want, rtol=1e-4, atol=1e-5)


def test_projection_options_need_a_projection_d():
    x, y = jnp.zeros((2, 8, 8, 3)), jnp.zeros((2,), jnp.int32)
    for d, match in (
        (DCGANDiscriminator(image_size=8, ndf=4, num_classes=2, projection_dim=4), "projection_dim=4"),
        (
            DCGANDiscriminator(image_size=8, ndf=4, num_classes=2, conditioning="projection", projection_dim=-1),
            "projection_dim must be an int >= 0",
        ),
        (
            DCGANDiscriminator(
                image_size=8, ndf=4, num_classes=2, conditioning="projection", embed_spectral_norm=False
            ),
            "embed_spectral_norm=False",
        ),
    ):
        with pytest.raises(ValueError, match=match):
            jax.eval_shape(functools.partial(d.init, train=False), KEY, x, y)


def test_acgan_head_sows_class_logits():
    d = DCGANDiscriminator(
        image_size=32, ndf=4, num_classes=3, conditioning="none", aux_classifier=True, bn_axis_name=None
    )
    x, y = jnp.asarray(_rand(2, 32, 32, 1)), jnp.array([1, 2], jnp.int32)
    variables = _init(d, x, y)
    with jax.default_matmul_precision("highest"):
        logits, state = d.apply(variables, x, y, train=False, mutable=["intermediates"])
        other_logits = d.apply(variables, x, jnp.array([0, 0], jnp.int32), train=False)
    inter = state["intermediates"]
    phi = np.asarray(inter["features"][0], np.float64)
    head = variables["params"]["classifier"]
    want = phi @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"], np.float64)
    np.testing.assert_allclose(np.asarray(inter["class_logits"][0]), want, rtol=1e-5, atol=1e-5)
    assert inter["class_logits"][0].shape == (2, 3)
    # conditioning="none": the source logit ignores the labels (ACGAN's D).
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(other_logits))


@pytest.mark.parametrize(
    "d,shape",
    [
        (MLPDiscriminator(hidden=8, depth=2), (3, 5)),
        (DCGANDiscriminator(ndf=4, bn_axis_name=None), (3, 32, 32, 1)),
    ],
    ids=["mlp", "dcgan"],
)
def test_features_are_the_logit_layer_input(d, shape):
    """The sown "features" phi are what the linear logit reads: logit = phi . w + b."""
    x = jnp.asarray(_rand(*shape))
    variables = _init(d, x)
    with jax.default_matmul_precision("highest"):
        logits, state = d.apply(variables, x, train=False, mutable=["intermediates"])
    phi = np.asarray(state["intermediates"]["features"][0], np.float64)
    head = variables["params"]["logit"]
    want = phi @ np.asarray(head["kernel"], np.float64)[:, 0] + float(head["bias"][0])
    np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-5, atol=1e-5)
    assert phi.shape[0] == shape[0] and state["intermediates"]["features"][0].dtype == jnp.float32


def _conditional_nets():
    common = dict(bn_axis_name=None)
    return [
        (
            "mlp",
            MLPGenerator(latent_dim=4, out_shape=(2,), hidden=8, num_classes=3),
            MLPDiscriminator(hidden=8, num_classes=3),
            (2,),
        ),
        (
            "mlp_embed",
            MLPGenerator(latent_dim=4, out_shape=(2,), hidden=8, num_classes=3, label_embed_dim=2),
            MLPDiscriminator(hidden=8, num_classes=3, conditioning="projection"),
            (2,),
        ),
        (
            "dcgan",
            DCGANGenerator(latent_dim=4, ngf=4, channels=1, num_classes=3, **common),
            DCGANDiscriminator(ndf=4, num_classes=3, **common),
            (32, 32, 1),
        ),
        (
            "dcgan_projection",
            DCGANGenerator(latent_dim=4, ngf=4, channels=1, num_classes=3, label_embed_dim=5, **common),
            DCGANDiscriminator(ndf=4, num_classes=3, conditioning="projection", **common),
            (32, 32, 1),
        ),
        (
            "resnet",
            ResNetGenerator(latent_dim=4, ngf=4, channels=1, num_classes=3, **common),
            ResNetDiscriminator(ndf=4, num_classes=3, **common),
            (32, 32, 1),
        ),
        (
            "resnet_concat",
            ResNetGenerator(latent_dim=4, ngf=4, channels=1, num_classes=3, **common),
            ResNetDiscriminator(ndf=4, num_classes=3, conditioning="concat", **common),
            (32, 32, 1),
        ),
    ]


@pytest.mark.parametrize("name,g,d,shape", _conditional_nets(), ids=[n[0] for n in _conditional_nets()])
def test_conditional_nets_use_labels(name, g, d, shape):
    del name
    z, x = jnp.asarray(_rand(4, 4)), jnp.asarray(_rand(4, *shape, seed=1))
    y1, y2 = jnp.array([0, 1, 2, 0], jnp.int32), jnp.array([1, 2, 0, 0], jnp.int32)
    # Random weights everywhere (cBN's per-class gamma/beta too: at init they are 1/0 for every class).
    g_vars, d_vars = _init(g, z, y1), _init(d, x, y1)
    g_apply = jax.jit(functools.partial(g.apply, train=False))
    d_apply = jax.jit(functools.partial(d.apply, train=False))
    s1, s2 = np.asarray(g_apply(g_vars, z, y1)), np.asarray(g_apply(g_vars, z, y2))
    l1, l2 = np.asarray(d_apply(d_vars, x, y1)), np.asarray(d_apply(d_vars, x, y2))
    # Samples/logits change exactly where the label changed (rows 0-2), not where it did not (row 3).
    assert np.all(np.abs(s1 - s2).reshape(4, -1).max(axis=1)[:3] > 1e-4)
    np.testing.assert_allclose(s1[3], s2[3], atol=1e-6)
    assert np.all(np.abs(l1 - l2)[:3] > 1e-5)
    np.testing.assert_allclose(l1[3], l2[3], atol=1e-6)
    # A conditional net refuses to run without labels.
    with pytest.raises(ValueError, match="needs labels"):
        g_apply(g_vars, z)
    with pytest.raises(ValueError, match="needs labels"):
        d_apply(d_vars, x)
    # Labels must be class ids [B], not one-hot vectors.
    with pytest.raises(ValueError, match="class ids of shape"):
        d_apply(d_vars, x, jax.nn.one_hot(y1, 3))


@pytest.mark.parametrize(
    "cls,args",
    [
        (MLPGenerator(latent_dim=4), (jnp.zeros((2, 4)),)),
        (MLPDiscriminator(), (jnp.zeros((2, 2)),)),
        (DCGANGenerator(latent_dim=4, ngf=4), (jnp.zeros((2, 4)),)),
        (DCGANDiscriminator(ndf=4), (jnp.zeros((2, 32, 32, 3)),)),
        (ResNetGenerator(latent_dim=4, ngf=4), (jnp.zeros((2, 4)),)),
        (ResNetDiscriminator(ndf=4), (jnp.zeros((2, 32, 32, 3)),)),
    ],
)
def test_unconditional_nets_reject_labels(cls, args):
    with pytest.raises(ValueError, match="unconditional.*got labels"):
        jax.eval_shape(lambda: cls.init(KEY, *args, jnp.zeros((2,), jnp.int32), train=False))


def test_concat_conditioning_is_one_hot_input_channels():
    """D with conditioning='concat' = an unconditional D fed [x, one-hot maps] (Mirza & Osindero 2014)."""
    cond = DCGANDiscriminator(ndf=4, num_classes=3, bn_axis_name=None)
    plain = DCGANDiscriminator(ndf=4, bn_axis_name=None)
    x, y = _rand(2, 32, 32, 1), np.array([2, 0], np.int32)
    variables = _init(cond, jnp.asarray(x), jnp.asarray(y))
    maps = np.broadcast_to(np.eye(3, dtype=np.float32)[y][:, None, None, :], (2, 32, 32, 3))
    with jax.default_matmul_precision("highest"):
        got = cond.apply(variables, jnp.asarray(x), jnp.asarray(y), train=False)
        want = plain.apply(variables, jnp.asarray(np.concatenate([x, maps], -1)), train=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_conditional_batchnorm_vs_numpy():
    c, k = 3, 4
    x = _rand(6, 2, 2, c) * 2 + 1
    y = np.array([0, 1, 3, 1, 2, 0], np.int32)
    module = ConditionalBatchNorm(k)
    variables = module.init(KEY, jnp.asarray(x), jnp.asarray(y), train=False)
    x64 = x.astype(np.float64)
    x_hat = (x64 - x64.mean(axis=(0, 1, 2))) / np.sqrt(x64.var(axis=(0, 1, 2)) + 1e-5)
    # At init every class has gamma = 1, beta = 0: a plain BN with no scale/bias.
    out, _ = module.apply(variables, jnp.asarray(x), jnp.asarray(y), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out), x_hat, rtol=1e-4, atol=1e-5)
    plain = nn.BatchNorm(use_running_average=False, use_scale=False, use_bias=False, momentum=0.9, epsilon=1e-5)
    plain_out, _ = plain.apply(plain.init(KEY, jnp.asarray(x)), jnp.asarray(x), mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out), np.asarray(plain_out), rtol=1e-5, atol=1e-6)
    # With per-class gamma/beta: gamma[y] * x_hat + beta[y] (de Vries et al. 2017).
    gamma, beta = _rand(k, c, seed=1), _rand(k, c, seed=2)
    params = {"gamma": {"embedding": jnp.asarray(gamma)}, "beta": {"embedding": jnp.asarray(beta)}}
    out, _ = module.apply(
        {**variables, "params": params}, jnp.asarray(x), jnp.asarray(y), train=True, mutable=["batch_stats"]
    )
    want = gamma[y][:, None, None, :] * x_hat + beta[y][:, None, None, :]
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- minibatch layers


def _mbstd_reference(x, group_size, num_features):
    """ProGAN/StyleGAN2 minibatch std written as loops (float64)."""
    x = np.asarray(x, np.float64)
    b, c = x.shape[0], x.shape[-1]
    g = min(group_size, b)
    m = b // g
    out = np.zeros(x.shape[:-1] + (num_features,))
    for j in range(m):
        members = [j + m * t for t in range(g)]  # sample i is in group i % m
        std = np.sqrt(x[members].var(axis=0) + 1e-8)  # [..., C] over the group's samples
        for f in range(num_features):
            value = std[..., f * (c // num_features) : (f + 1) * (c // num_features)].mean()
            for i in members:
                out[i, ..., f] = value
    return np.concatenate([x, out], axis=-1)


@pytest.mark.parametrize(
    "shape,group_size,num_features",
    [
        ((8, 3, 3, 4), 4, 1),
        ((8, 3, 3, 4), 2, 2),
        ((6, 2, 2, 3), 3, 1),
        ((3, 5), 4, 1),
        ((8, 6), 2, 3),
    ],
)
def test_minibatch_stddev_vs_numpy(shape, group_size, num_features):
    x = _rand(*shape) * np.arange(1, shape[0] + 1, dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    got = minibatch_stddev(jnp.asarray(x), group_size=group_size, num_features=num_features)
    np.testing.assert_allclose(np.asarray(got), _mbstd_reference(x, group_size, num_features), rtol=1e-5, atol=1e-6)


def test_minibatch_stddev_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="batch size 6 must be divisible by the group size"):
        minibatch_stddev(jnp.zeros((6, 4)), group_size=4)


def test_minibatch_discrimination_vs_numpy():
    f = _rand(5, 6)
    module = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    variables = module.init(KEY, jnp.asarray(f))
    with jax.default_matmul_precision("highest"):
        got = np.asarray(module.apply(variables, jnp.asarray(f)))
    t = np.asarray(variables["params"]["kernel"], np.float64).reshape(6, 3, 2)  # Salimans et al.: A x B x C
    m = np.einsum("ia,abc->ibc", f.astype(np.float64), t)
    o = np.zeros((5, 3))
    for i in range(5):
        for j in range(5):
            if j != i:
                o[i] += np.exp(-np.abs(m[i] - m[j]).sum(axis=-1))
    np.testing.assert_allclose(got, np.concatenate([f, o], axis=1), rtol=1e-5, atol=1e-6)


def test_discriminators_with_minibatch_layers_run():
    """The switches on every D: the logit depends on the other samples of the batch."""
    for d, shape in (
        (MLPDiscriminator(hidden=8, minibatch_std=True, mbstd_group_size=2, minibatch_discrimination=3), (4, 5)),
        (
            DCGANDiscriminator(
                ndf=4, minibatch_std=True, mbstd_group_size=2, minibatch_discrimination=3, bn_axis_name=None
            ),
            (4, 32, 32, 1),
        ),
        (
            ResNetDiscriminator(
                ndf=4, minibatch_std=True, mbstd_group_size=2, minibatch_discrimination=3, bn_axis_name=None
            ),
            (4, 32, 32, 1),
        ),
    ):
        x = _rand(*shape)
        variables = _init(d, jnp.asarray(x))
        apply = jax.jit(functools.partial(d.apply, train=False))
        x2 = x.copy()
        x2[1] += 1.0  # change sample 1 only
        l1, l2 = np.asarray(apply(variables, x)), np.asarray(apply(variables, x2))
        assert abs(l1[0] - l2[0]) > 1e-6, type(d).__name__


# --------------------------------------------------------------------------- PacGAN


def test_pack_samples_layout():
    x = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3)
    got = np.asarray(pack_samples(jnp.asarray(x), 2))
    np.testing.assert_array_equal(got, np.concatenate([x[0::2], x[1::2]], axis=-1))
    with pytest.raises(ValueError, match="batch size 4 is not divisible by pack=3"):
        pack_samples(jnp.asarray(x), 3)


@pytest.mark.parametrize("kind", ["mlp", "dcgan_concat", "resnet"])
def test_packing_equals_unpacked_d_on_concatenated_inputs(kind):
    pack, b = 3, 6
    if kind == "mlp":
        packed, plain, x, y = MLPDiscriminator(hidden=8, pack=pack), MLPDiscriminator(hidden=8), _rand(b, 2, 2), None
        manual = np.concatenate([x.reshape(b, -1)[k::pack] for k in range(pack)], axis=-1)
    elif kind == "dcgan_concat":
        # Each packed image carries its own one-hot label maps.
        kw = dict(ndf=4, bn_axis_name=None)
        packed, plain = DCGANDiscriminator(pack=pack, num_classes=2, **kw), DCGANDiscriminator(**kw)
        x, y = _rand(b, 32, 32, 1), np.array([0, 1, 1, 0, 0, 1], np.int32)
        with_maps = np.concatenate(
            [x, np.broadcast_to(np.eye(2, dtype=np.float32)[y][:, None, None], (b, 32, 32, 2))], -1
        )
        manual = np.concatenate([with_maps[k::pack] for k in range(pack)], axis=-1)
    else:
        kw = dict(ndf=4, bn_axis_name=None)
        packed, plain, x, y = ResNetDiscriminator(pack=pack, **kw), ResNetDiscriminator(**kw), _rand(b, 32, 32, 2), None
        manual = np.concatenate([x[k::pack] for k in range(pack)], axis=-1)
    args = (jnp.asarray(x),) if y is None else (jnp.asarray(x), jnp.asarray(y))
    variables = _init(packed, *args)
    with jax.default_matmul_precision("highest"):
        got = np.asarray(packed.apply(variables, *args, train=False))
        want = np.asarray(plain.apply(variables, jnp.asarray(manual), train=False))
    assert got.shape == (b // pack,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not divisible by pack=3"):
        jax.eval_shape(functools.partial(packed.init, train=False), KEY, *(a[:4] for a in args))


# --------------------------------------------------------------------------- capacity presets


def _conv(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)


def _mlp_d_params(n_in, hidden, depth):
    widths = [n_in] + [hidden] * depth
    return sum(a * b + b for a, b in zip(widths, widths[1:])) + widths[-1] + 1


def _dcgan_d_params(c, ndf):  # 32 px: conv(+bias) | conv-BN | conv-BN | dense from 4x4x4ndf
    return (
        _conv(4, c, ndf)
        + _conv(4, ndf, 2 * ndf, False)
        + 2 * 2 * ndf
        + _conv(4, 2 * ndf, 4 * ndf, False)
        + 2 * 4 * ndf
        + 16 * 4 * ndf
        + 1
    )


def _resnet32_d_params(c, w, depth):  # optimized block, down block, `depth` plain blocks, dense
    optimized = _conv(3, c, w) + _conv(3, w, w) + _conv(1, c, w)
    down = 2 * _conv(3, w, w) + _conv(1, w, w)
    return optimized + down + depth * 2 * _conv(3, w, w) + w + 1


@pytest.mark.parametrize("preset", sorted(D_CAPACITY_PRESETS))
def test_d_capacity_param_counts(preset):
    width = {"full": 1.0, "half": 0.5, "quarter": 0.25, "shallow": 1.0}[preset]
    counts = {}
    mlp = MLPDiscriminator(**{"hidden": 64, "depth": 3, **d_capacity_kwargs(preset, "mlp")})
    counts["mlp"] = (mlp, jnp.zeros((1, 10)), _mlp_d_params(10, int(64 * width), 1 if preset == "shallow" else 3))
    resnet = ResNetDiscriminator(ndf=16, **d_capacity_kwargs(preset, "resnet"))
    counts["resnet"] = (
        resnet,
        jnp.zeros((1, 32, 32, 3)),
        _resnet32_d_params(3, int(16 * width), 0 if preset == "shallow" else 2),
    )
    if preset != "shallow":
        dcgan = DCGANDiscriminator(ndf=16, **d_capacity_kwargs(preset, "dcgan"))
        counts["dcgan"] = (dcgan, jnp.zeros((1, 32, 32, 3)), _dcgan_d_params(3, int(16 * width)))
    else:
        with pytest.raises(ValueError, match="'shallow' is not defined for 'dcgan'"):
            d_capacity_kwargs(preset, "dcgan")
    for name, (module, x, want) in counts.items():
        variables = jax.eval_shape(functools.partial(module.init, train=False), KEY, x)
        assert _count(variables["params"]) == want, (name, preset)


# --------------------------------------------------------------------------- registry and bad input


def test_registry_and_image_size_checks():
    assert get_network_classes("resnet") == (ResNetGenerator, ResNetDiscriminator)
    assert set(NETWORKS) == {"mlp", "dcgan", "resnet", "stylegan2"}
    check_image_size("resnet", 128)
    check_image_size("dcgan", 64, channels=1)
    check_image_size("mlp", 28)
    with pytest.raises(ValueError) as excinfo:
        check_image_size("resnet", 48)
    assert "(32, 64, 128)" in str(excinfo.value) and "got 48" in str(excinfo.value)
    with pytest.raises(ValueError, match=r"\(8, 16, 32, 64\).*got 128.*\['mlp', 'resnet', 'stylegan2'\]"):
        check_image_size("dcgan", 128)
    with pytest.raises(ValueError, match="channels must be a positive int"):
        check_image_size("dcgan", 32, channels=0)
    with pytest.raises(
        ValueError, match=r"Unknown network 'biggan'; valid names: \['dcgan', 'mlp', 'resnet', 'stylegan2'\]"
    ):
        check_image_size("biggan", 32)
    with pytest.raises(ValueError, match="Unknown D capacity preset 'tiny'"):
        d_capacity_kwargs("tiny", "mlp")


@pytest.mark.parametrize(
    "module,x,match",
    [
        (ResNetGenerator(latent_dim=4, image_size=48), jnp.zeros((1, 4)), r"\(32, 64, 128\), got 48"),
        (ResNetDiscriminator(image_size=16), jnp.zeros((1, 16, 16, 3)), r"\(32, 64, 128\), got 16"),
        (ResNetDiscriminator(image_size=32), jnp.zeros((1, 64, 64, 3)), r"expects images \[B, 32, 32, C\]"),
        (DCGANDiscriminator(conditioning="cat"), jnp.zeros((1, 32, 32, 3)), "unknown conditioning 'cat'"),
        (MLPDiscriminator(aux_classifier=True), jnp.zeros((1, 2)), "aux_classifier=True needs num_classes > 0"),
        (MLPDiscriminator(num_classes=3, conditioning="none"), jnp.zeros((1, 2)), "would ignore the labels"),
        (MLPDiscriminator(width_multiplier=0.0), jnp.zeros((1, 2)), "width_multiplier must be > 0"),
        (MLPDiscriminator(minibatch_std=True, mbstd_group_size=4), jnp.zeros((6, 2)), "divisible by the group size"),
    ],
)
def test_bad_options_raise_clear_errors(module, x, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(functools.partial(module.init, train=False), KEY, x)


def test_pack_with_projection_is_rejected():
    d = ResNetDiscriminator(num_classes=2, pack=2)
    with pytest.raises(ValueError, match="pack=2 joins samples of different classes"):
        jax.eval_shape(
            functools.partial(d.init, train=False), KEY, jnp.zeros((2, 32, 32, 3)), jnp.zeros((2,), jnp.int32)
        )


@pytest.mark.parametrize("size, mixed", [(8, True), (16, False)])
def test_dcgan_generator_conditional_batchnorm_is_the_plain_g_with_each_class_scale_and_shift(size, mixed):
    """G with conditional BN == the plain conditional G whose BatchNorm scale/bias are the sample's class's
    gamma/beta. Batch statistics are the whole batch's, so with more than one BN layer (16 px) the two agree
    only on a batch of one class; at 8 px (one BN layer) on the rows of each class in a mixed batch."""
    k = 3
    z = jnp.asarray(_rand(6, 8))
    make = functools.partial(
        DCGANGenerator,
        latent_dim=8,
        image_size=size,
        channels=3,
        ngf=4,
        num_classes=k,
        label_embed_dim=5,
        bn_axis_name=None,
    )
    cbn, plain = make(conditional_batch_norm=True), make()
    mixed_labels = jnp.asarray(np.array([0, 2, 1, 2, 0, 1], np.int32))
    params = cbn.init(KEY, z, mixed_labels, train=False)["params"]
    bn_names = sorted(n for n in params if n.startswith("ConditionalBatchNorm"))
    assert len(bn_names) == {8: 1, 16: 2}[size]  # the 4x4 projection, then each hidden up-layer
    tables = {
        n: {
            t: _rand(k, params[n][t]["embedding"].shape[1], seed=i + 10 * j) + (t == "gamma")
            for j, t in enumerate(("gamma", "beta"))
        }
        for i, n in enumerate(bn_names)
    }
    params = {**params, **{n: {t: {"embedding": jnp.asarray(v)} for t, v in tb.items()} for n, tb in tables.items()}}
    shared = {n: params[n] for n in params if not n.startswith("ConditionalBatchNorm")}
    for c in range(k):
        y = mixed_labels if mixed else jnp.full((6,), c, jnp.int32)
        got, _ = cbn.apply({"params": params}, z, y, train=True, mutable=["batch_stats"])
        plain_params = {
            **shared,
            **{
                f"BatchNorm_{i}": {
                    "scale": jnp.asarray(tables[n]["gamma"][c]),
                    "bias": jnp.asarray(tables[n]["beta"][c]),
                }
                for i, n in enumerate(bn_names)
            },
        }
        want, _ = plain.apply({"params": plain_params}, z, y, train=True, mutable=["batch_stats"])
        rows = np.asarray(y) == c
        np.testing.assert_allclose(np.asarray(got)[rows], np.asarray(want)[rows], rtol=1e-5, atol=1e-6)
        if mixed:  # the other classes' rows take their own gamma/beta
            assert not np.allclose(np.asarray(got)[~rows], np.asarray(want)[~rows], atol=1e-3)
    with pytest.raises(ValueError, match="conditional_batch_norm=True .* needs num_classes > 0"):
        DCGANGenerator(latent_dim=8, image_size=8, conditional_batch_norm=True).init(KEY, z, train=False)


def test_g_conditional_bn_config_needs_a_conditional_dcgan():
    from jaxgan import config as config_lib

    config = config_lib.base_config()
    config.model.g_conditional_bn = True
    with pytest.raises(ValueError, match="needs model.num_classes > 0"):
        config_lib.validate(config, 1)
    config.model.name, config.model.num_classes = "mlp", 4
    with pytest.raises(ValueError, match="g_conditional_bn=True is a DCGAN option; model.name is .mlp."):
        config_lib.validate(config, 1)
    config.model.name = "dcgan"
    config_lib.validate(config, 1)
    assert config_lib.build_networks(config)[0].conditional_batch_norm
