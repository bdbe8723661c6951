"""Tests for jaxgan.nets: the sub-pixel transposed conv, DCGAN, MLP, the registry and
cross-replica BatchNorm, each against Flax's own layers or float64 numpy."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxgan
from jaxgan.common import DATA_AXIS
from jaxgan.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    NETWORKS,
    get_network_classes,
)
from jaxgan.nets.layers import (
    PatchesConv,
    PatchesConvTranspose,
    PhaseConvTranspose,
    SpaceToDepthConv,
    SubPixelConvTranspose,
)


# --------------------------------------------------------------------------- SubPixelConvTranspose


@pytest.mark.parametrize("kernel,stride", [(4, 2), (3, 2), (5, 2), (4, 4), (3, 1), (6, 3), (2, 2), (1, 1)])
def test_subpixel_equals_flax_conv_transpose(kernel, stride, height=4, width=7):
    rs = np.random.RandomState(kernel * 10 + stride)
    x = jnp.asarray(rs.randn(2, height, width, 3).astype(np.float32))
    reference = nn.ConvTranspose(5, (kernel, kernel), strides=(stride, stride), padding="SAME")
    subpixel = SubPixelConvTranspose(5, kernel_size=kernel, stride=stride)
    params = jax.jit(reference.init)(jax.random.PRNGKey(0), x)
    # The two layers declare the same parameters (names, shapes) ...
    sub_params = jax.eval_shape(subpixel.init, jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_map(jnp.shape, sub_params) == jax.tree_util.tree_map(jnp.shape, params)
    # ... and, given the same ones (a nonzero bias too), compute the same function.
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)
    with jax.default_matmul_precision("highest"):
        want = np.asarray(jax.jit(reference.apply)(params, x))
        got = np.asarray(jax.jit(subpixel.apply)(params, x))
    assert want.shape == (2, height * stride, width * stride, 5)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_subpixel_gradients_match():
    x = jnp.asarray(np.random.RandomState(0).randn(2, 4, 4, 3).astype(np.float32))
    reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME")
    subpixel = SubPixelConvTranspose(4, kernel_size=4, stride=2)
    params = jax.jit(reference.init)(jax.random.PRNGKey(1), x)
    loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
    with jax.default_matmul_precision("highest"):
        want = jax.jit(jax.grad(loss(reference), argnums=(0, 1)))(params, x)
        got = jax.jit(jax.grad(loss(subpixel), argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def _assert_layer_equals_flax(layer, reference, x):
    """Same parameter shapes as the Flax layer and, given the same (nonzero-bias) params,
    the same outputs and gradients with respect to params and input."""
    params = jax.tree_util.tree_map(lambda p: p + 0.1, jax.jit(reference.init)(jax.random.PRNGKey(0), x))
    assert jax.tree_util.tree_map(
        jnp.shape, jax.eval_shape(layer.init, jax.random.PRNGKey(0), x)
    ) == jax.tree_util.tree_map(jnp.shape, params)
    loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            jax.jit(layer.apply)(params, x), jax.jit(reference.apply)(params, x), rtol=1e-5, atol=1e-5
        )
        want = jax.jit(jax.grad(loss(reference), argnums=(0, 1)))(params, x)
        got = jax.jit(jax.grad(loss(layer), argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("form", [PhaseConvTranspose, PatchesConvTranspose])
@pytest.mark.parametrize("kernel,stride,height,width", [(4, 2, 4, 7), (6, 3, 3, 4)])
def test_other_transposed_forms_equal_flax_with_gradients(form, kernel, stride, height, width):
    """The per-phase-window and im2col forms of nn.ConvTranspose."""
    x = jnp.asarray(np.random.RandomState(kernel + height).randn(2, height, width, 3).astype(np.float32))
    _assert_layer_equals_flax(
        form(4, kernel_size=kernel, stride=stride),
        nn.ConvTranspose(4, (kernel, kernel), strides=(stride, stride), padding="SAME"),
        x,
    )


@pytest.mark.parametrize("form", [SpaceToDepthConv, PatchesConv])
@pytest.mark.parametrize("kernel,stride,size", [(4, 2, 8), (6, 3, 9)])
def test_strided_conv_forms_equal_flax_with_gradients(form, kernel, stride, size):
    """Space-to-depth and im2col forms of a strided nn.Conv."""
    x = jnp.asarray(np.random.RandomState(size).randn(2, size, size, 3).astype(np.float32))
    _assert_layer_equals_flax(
        form(5, kernel_size=kernel, stride=stride),
        nn.Conv(5, (kernel, kernel), strides=(stride, stride), padding="SAME"),
        x,
    )


# --------------------------------------------------------------------------- DCGAN


@pytest.mark.parametrize("train", [False, True])
def test_dcgan_generator_subpixel_equals_transpose(train):
    z = jnp.asarray(np.random.RandomState(0).randn(4, 16).astype(np.float32))
    kwargs = dict(latent_dim=16, image_size=32, channels=3, ngf=8, bn_axis_name=None)
    sub, trans = DCGANGenerator(upsample="subpixel", **kwargs), DCGANGenerator(upsample="transpose", **kwargs)
    variables = jax.jit(functools.partial(trans.init, train=False))(jax.random.PRNGKey(0), z)
    assert jax.tree_util.tree_map(
        jnp.shape, jax.eval_shape(functools.partial(sub.init, train=False), jax.random.PRNGKey(0), z)
    ) == jax.tree_util.tree_map(jnp.shape, variables)
    mutable = ["batch_stats"] if train else False
    with jax.default_matmul_precision("highest"):
        want = jax.jit(functools.partial(trans.apply, train=train, mutable=mutable))(variables, z)
        got = jax.jit(functools.partial(sub.apply, train=train, mutable=mutable))(variables, z)
    if train:
        (want, want_stats), (got, got_stats) = want, got
        for a, b in zip(jax.tree_util.tree_leaves(got_stats), jax.tree_util.tree_leaves(want_stats)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    assert got.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
    assert float(jnp.std(want)) > 1e-3  # not a constant image
    assert float(jnp.min(got)) >= -1.0 and float(jnp.max(got)) <= 1.0  # tanh range


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    g = DCGANGenerator(latent_dim=10, image_size=size, channels=channels, ngf=4)
    d = DCGANDiscriminator(image_size=size, ndf=4)
    z = jax.ShapeDtypeStruct((3, 10), jnp.float32)
    x = jax.ShapeDtypeStruct((3, size, size, channels), jnp.float32)
    key = jax.random.PRNGKey(0)
    images, g_vars = jax.eval_shape(lambda z: g.init_with_output(key, z, train=False), z)
    logits, d_vars = jax.eval_shape(lambda x: d.init_with_output(key, x, train=False), x)
    assert images.shape == (3, size, size, channels) and images.dtype == jnp.float32
    assert logits.shape == (3,) and logits.dtype == jnp.float32
    # D's BatchNorm follows every conv but the first, so at 8 px (a single conv) D has none.
    assert set(g_vars) == {"params", "batch_stats"}
    assert set(d_vars) == ({"params", "batch_stats"} if size > 8 else {"params"})


@pytest.mark.parametrize("size", [8, 32])
@pytest.mark.parametrize("d_batch_norm", [True, False])
def test_dcgan_extra_layers_add_3x3_convs_at_the_documented_widths(size, d_batch_norm):
    """Each extra layer adds a 3x3 conv at G's last hidden width (= ngf; no bias, BatchNorm scale and bias)
    and at D's first width (= ndf; BatchNorm without a bias, or a bias), counted by hand; shapes are kept."""
    ngf, ndf, extra = 6, 5, 2
    key = jax.random.PRNGKey(0)
    z, x = jnp.zeros((2, 10)), jnp.zeros((2, size, size, 3))

    def count(module, inputs):
        out, variables = module.init_with_output(key, inputs, train=False)
        return out.shape, sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))

    g_shape, g0 = count(DCGANGenerator(latent_dim=10, image_size=size, channels=3, ngf=ngf), z)
    g_shape2, g2 = count(DCGANGenerator(latent_dim=10, image_size=size, channels=3, ngf=ngf, extra_layers=extra), z)
    assert g_shape == g_shape2 == (2, size, size, 3)
    assert g2 - g0 == extra * (9 * ngf * ngf + 2 * ngf)
    d_shape, d0 = count(DCGANDiscriminator(image_size=size, ndf=ndf, batch_norm=d_batch_norm), x)
    d_shape2, d2 = count(DCGANDiscriminator(image_size=size, ndf=ndf, batch_norm=d_batch_norm, extra_layers=extra), x)
    assert d_shape == d_shape2 == (2,)
    assert d2 - d0 == extra * (9 * ndf * ndf + (2 * ndf if d_batch_norm else ndf))
    with pytest.raises(ValueError, match="extra_layers=-1 must be an int >= 0"):
        DCGANDiscriminator(image_size=size, extra_layers=-1).init(key, x, train=False)


def test_extra_layers_config_is_dcgan_only():
    from jaxgan import config as config_lib

    config = config_lib.base_config()
    config.model.name, config.model.extra_layers = "mlp", 1
    with pytest.raises(ValueError, match="extra_layers=1 is a DCGAN option"):
        config_lib.validate(config, 1)
    config.model.extra_layers, config.model.d_extra_layers = 0, 2
    with pytest.raises(ValueError, match="d_extra_layers=2 is a DCGAN option"):
        config_lib.validate(config, 1)
    config.model.name, config.model.extra_layers, config.model.d_extra_layers = "dcgan", 1, -1
    config_lib.validate(config, 1)
    g, d = config_lib.build_networks(config)
    assert g.extra_layers == d.extra_layers == 1
    # Per network: g_extra_layers / d_extra_layers override model.extra_layers; -1 keeps it.
    config.model.g_extra_layers = 2
    g, d = config_lib.build_networks(config)
    assert (g.extra_layers, d.extra_layers) == (2, 1)
    config.model.d_extra_layers = 0
    g, d = config_lib.build_networks(config)
    assert (g.extra_layers, d.extra_layers) == (2, 0)
    for field, bad in (("g_extra_layers", -2), ("d_extra_layers", -3), ("extra_layers", -1)):
        config.model[field] = bad
        with pytest.raises(ValueError, match=f"model.{field}="):
            config_lib.validate(config, 1)
        config.model[field] = 0


@pytest.mark.parametrize("size", [4, 28, 128])
def test_dcgan_unsupported_image_size(size):
    for module, args in (
        (DCGANGenerator(latent_dim=4, image_size=size), jnp.zeros((1, 4))),
        (DCGANDiscriminator(image_size=size), jnp.zeros((1, size, size, 1))),
    ):
        with pytest.raises(ValueError) as excinfo:
            module.init(jax.random.PRNGKey(0), args, train=False)
        message = str(excinfo.value)
        assert f"got {size}" in message and "(8, 16, 32, 64)" in message and "resize" in message


def test_dcgan_unknown_upsample_form():
    with pytest.raises(ValueError, match="'bilinear'.*'subpixel', 'transpose'"):
        DCGANGenerator(latent_dim=4, upsample="bilinear").init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), train=False)


# --------------------------------------------------------------------------- MLP and registry


@pytest.mark.parametrize("out_shape", [(2,), (28, 28, 1), (5, 3)])
def test_mlp_shapes(out_shape):
    g = MLPGenerator(latent_dim=6, out_shape=out_shape, hidden=16, depth=3)
    d = MLPDiscriminator(hidden=16, depth=1)
    z = jnp.ones((4, 6))
    samples, g_vars = jax.eval_shape(g.init_with_output, jax.random.PRNGKey(0), z)
    assert samples.shape == (4, *out_shape)
    logits, d_vars = jax.eval_shape(d.init_with_output, jax.random.PRNGKey(0), samples)
    assert logits.shape == (4,)
    # depth hidden layers + the output layer.
    assert len(g_vars["params"]) == 3 + 1 and len(d_vars["params"]) == 1 + 1
    assert "batch_stats" not in g_vars


def test_mlp_tanh_output_is_bounded():
    g = MLPGenerator(latent_dim=3, out_shape=(4,), tanh_output=True)
    z = jnp.asarray(np.random.RandomState(0).randn(16, 3).astype(np.float32) * 100)
    out = np.asarray(jax.jit(lambda z: g.init_with_output(jax.random.PRNGKey(0), z)[0])(z))
    assert np.all(np.abs(out) <= 1.0)


def test_registry():
    assert get_network_classes("mlp") == (MLPGenerator, MLPDiscriminator)
    assert get_network_classes("dcgan") == (DCGANGenerator, DCGANDiscriminator)
    with pytest.raises(ValueError) as excinfo:
        get_network_classes("stylegan")
    message = str(excinfo.value)
    assert "'stylegan'" in message and str(sorted(NETWORKS)) in message


# --------------------------------------------------------------------------- cross-replica BatchNorm


def test_dcgan_discriminator_batchnorm_is_cross_replica():
    """D's BatchNorm under shard_map on 8 devices, train mode, uses the statistics of
    the GLOBAL batch: the new running stats equal momentum-updates computed in
    float64 numpy from the pre-BatchNorm activations of the whole batch."""
    n_devices, batch = 8, 16
    d = DCGANDiscriminator(image_size=32, ndf=4)
    rs = np.random.RandomState(0)
    # Each device's rows differ in distribution, so local statistics != global ones.
    x = rs.randn(batch, 32, 32, 1).astype(np.float32) * np.repeat(np.arange(1, n_devices + 1), 2)[:, None, None, None]
    variables = jax.jit(functools.partial(d.init, train=False))(jax.random.PRNGKey(0), x[:1])
    # Non-trivial running stats, so the momentum update is visible.
    variables = {
        "params": variables["params"],
        "batch_stats": jax.tree_util.tree_map(lambda s: s + 0.5, variables["batch_stats"]),
    }

    mesh = jaxgan.make_mesh(jax.devices()[:n_devices])

    def per_device(variables, x):
        return d.apply(variables, x, train=True, mutable=["batch_stats"])

    with jax.default_matmul_precision("highest"):
        sharded = jax.jit(
            jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(DATA_AXIS), P()))
        )
        logits, new = sharded(variables, x)
        # The pre-BatchNorm activations of the global batch: the convs' outputs on ONE
        # device running the whole batch (its BatchNorm, local, is then global).
        single = d.clone(bn_axis_name=None)
        single_logits, mutated = jax.jit(
            functools.partial(
                single.apply,
                train=True,
                mutable=["batch_stats", "intermediates"],
                capture_intermediates=lambda m, _: isinstance(m, nn.Conv),
            )
        )(variables, x)
    intermediates = mutated["intermediates"]
    np.testing.assert_allclose(np.asarray(logits), np.asarray(single_logits), rtol=1e-4, atol=1e-5)

    stats = new["batch_stats"]
    assert sorted(stats) == ["BatchNorm_0", "BatchNorm_1"]
    for bn, conv in (("BatchNorm_0", "down1"), ("BatchNorm_1", "down2")):
        h = np.asarray(intermediates[conv]["__call__"][0], np.float64)  # [B, H, W, C]
        mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))  # biased variance, as Flax uses
        old = variables["batch_stats"][bn]
        want_mean = 0.9 * np.asarray(old["mean"], np.float64) + 0.1 * mean
        want_var = 0.9 * np.asarray(old["var"], np.float64) + 0.1 * var
        np.testing.assert_allclose(np.asarray(stats[bn]["mean"]), want_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(stats[bn]["var"]), want_var, rtol=1e-4, atol=1e-5)
        # Not vacuous: device 0's local statistics alone would give different running stats.
        local = h[: batch // n_devices]
        local_var = 0.9 * np.asarray(old["var"], np.float64) + 0.1 * local.var(axis=(0, 1, 2))
        assert np.max(np.abs(local_var - want_var)) > 1e-2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("upsample", "bilinear", r"config.model.upsample='bilinear'; valid: \('patches'"),
        ("downsample", "pool", r"config.model.downsample='pool'; valid: \('patches'"),
        ("extra_layers", -1, r"config.model.extra_layers=-1 must be an int >= 0\.$"),
        ("g_extra_layers", -2, r"config.model.g_extra_layers=-2 must be an int >= -1 \(-1: as model.extra_layers\)"),
        ("d_extra_layers", -3, r"config.model.d_extra_layers=-3 must be an int >= -1"),
    ],
)
def test_dcgan_config_fields_are_refused_naming_the_field(field, value, message):
    from jaxgan import config as config_lib

    config = config_lib.base_config()
    config.model.name = "dcgan"
    config.model[field] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate(config, 1)
