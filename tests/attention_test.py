"""SAGAN's self-attention block against its equations in numpy, and the orthogonal regularizer of BigGAN."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import regularizers
from jaxgan.nets.attention import SelfAttention


def _attention_numpy(x, kernels, gamma):
    """Zhang et al. 2019 sec. 3 with BigGAN's 2x2 max-pooled keys and values, in float64."""
    b, h, w, c = x.shape
    k = {name: np.asarray(kernels[name], np.float64).reshape(c if name != "o" else c // 2, -1) for name in kernels}
    pool = lambda t: t.reshape(b, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))
    theta = (x @ k["theta"]).reshape(b, h * w, -1)
    phi = pool(x @ k["phi"]).reshape(b, h * w // 4, -1)
    g = pool(x @ k["g"]).reshape(b, h * w // 4, -1)
    logits = theta @ phi.transpose(0, 2, 1)
    beta = np.exp(logits - logits.max(-1, keepdims=True))
    beta /= beta.sum(-1, keepdims=True)
    o = (beta @ g).reshape(b, h, w, -1) @ k["o"]
    return x + gamma * o


def test_self_attention_matches_its_equations_and_starts_as_the_identity():
    x = np.random.default_rng(0).normal(size=(2, 6, 4, 16))
    block = SelfAttention(bn_axis_name=None)
    variables = block.init(jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32), train=False)
    params = flax.core.unfreeze(variables["params"])
    assert params["gamma"] == 0.0
    np.testing.assert_array_equal(
        block.apply(variables, jnp.asarray(x, jnp.float32), train=False), x.astype(np.float32)
    )
    params["gamma"] = jnp.asarray(0.7)
    kernels = {name: params[name]["kernel"] for name in ("theta", "phi", "g", "o")}
    assert [kernels[n].shape for n in ("theta", "phi", "g", "o")] == [(1, 1, 16, 2)] * 2 + [
        (1, 1, 16, 8),
        (1, 1, 8, 16),
    ]
    got = block.apply({"params": params}, jnp.asarray(x, jnp.float32), train=False)
    np.testing.assert_allclose(got, _attention_numpy(x, kernels, 0.7), rtol=2e-5, atol=2e-5)
    with pytest.raises(ValueError, match="channels divisible by 8 and an even height and width"):
        block.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 4, 16)), train=False)


def test_self_attention_with_spectral_norm_normalizes_each_convolution():
    """Under spectral norm the block computes with every 1x1 kernel divided by its largest singular value."""
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 8))
    block = SelfAttention(spectral_norm=True, bn_axis_name=None)
    variables = flax.core.unfreeze(block.init(jax.random.PRNGKey(1), jnp.asarray(x, jnp.float32), train=False))
    variables["params"]["gamma"] = jnp.asarray(1.3)
    train = jax.jit(lambda v: block.apply(v, jnp.asarray(x, jnp.float32), train=True, mutable=["batch_stats"])[1])
    for _ in range(500):  # converge the power iterations (one per call)
        variables["batch_stats"] = train(variables)["batch_stats"]
    got = block.apply(variables, jnp.asarray(x, jnp.float32), train=False)
    kernels = {}
    for name in ("theta", "phi", "g", "o"):
        kernel = np.asarray(variables["params"][name]["kernel"], np.float64)
        kernels[name] = kernel / np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(got, _attention_numpy(x, kernels, 1.3), rtol=1e-4, atol=1e-4)


def test_orthogonal_penalty_is_the_off_diagonal_gram_norm_and_its_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    params = {
        "conv": {"kernel": rng.normal(size=(3, 3, 4, 5)), "bias": rng.normal(size=5)},
        "dense": {"kernel": rng.normal(size=(6, 3))},
        "embed": {"embedding": rng.normal(size=(10, 4))},  # not a kernel: left out
        "bn": {"scale": rng.normal(size=5)},
    }

    def by_hand(p):
        total = 0.0
        for kernel in (p["conv"]["kernel"], p["dense"]["kernel"]):
            w = kernel.reshape(-1, kernel.shape[-1])
            gram = w.T @ w
            total += np.sum((gram - np.diag(np.diag(gram))) ** 2)
        return total

    as_jax = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    assert float(regularizers.orthogonal_penalty(as_jax)) == pytest.approx(by_hand(params), rel=1e-5)
    orthonormal = np.linalg.qr(rng.normal(size=(6, 3)))[0] * np.array([1.0, 2.0, 0.5])  # orthogonal columns
    assert float(regularizers.orthogonal_penalty({"kernel": jnp.asarray(orthonormal, jnp.float32)})) < 1e-10
    grads = jax.grad(regularizers.orthogonal_penalty)(jax.tree_util.tree_map(lambda a: jnp.asarray(a), params))
    assert not np.any(np.asarray(grads["embed"]["embedding"])) and not np.any(np.asarray(grads["conv"]["bias"]))
    for key in ((0, 1, 2, 3), (2, 0, 1, 4)):  # central differences in float64, two entries of the conv kernel
        bumped = [jax.tree_util.tree_map(np.copy, params) for _ in range(2)]
        bumped[0]["conv"]["kernel"][key] += 1e-6
        bumped[1]["conv"]["kernel"][key] -= 1e-6
        numeric = (by_hand(bumped[0]) - by_hand(bumped[1])) / 2e-6
        assert float(grads["conv"]["kernel"][key]) == pytest.approx(numeric, rel=1e-3)


def test_resnet_with_attention_starts_as_the_plain_resnet_and_the_config_places_it():
    """gamma = 0 at init: G and D with the block give the plain networks' outputs from the shared weights."""
    from jaxgan import build
    from jaxgan.config import base_config
    from jaxgan.nets import ResNetDiscriminator, ResNetGenerator

    z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 32, 32, 3), minval=-1, maxval=1)
    for plain, with_attention, inputs in (
        (
            ResNetGenerator(16, ngf=16, bn_axis_name=None),
            ResNetGenerator(16, ngf=16, attention_resolution=16, bn_axis_name=None),
            z,
        ),
        (
            ResNetDiscriminator(ndf=16, bn_axis_name=None),
            ResNetDiscriminator(ndf=16, attention_resolution=8, bn_axis_name=None),
            x,
        ),
    ):
        variables = with_attention.init(jax.random.PRNGKey(2), inputs, train=False)
        assert "attention" in variables["params"]
        without = jax.tree_util.tree_map(lambda v: v, dict(variables))
        without = {
            c: {k: v for k, v in tree.items() if k != "attention" and k != "attention_sn"}
            for c, tree in without.items()
        }
        np.testing.assert_array_equal(
            with_attention.apply(variables, inputs, train=False), plain.apply(without, inputs, train=False)
        )
    config = base_config()
    config.model.name, config.data.image_size, config.data.channels = "resnet", 32, 3
    config.model.attention_resolution = 16
    built = build.build_validated(config, 1)
    assert built.generator.attention_resolution == built.discriminator.attention_resolution == 16
    config.model.attention_resolution = 32
    with pytest.raises(ValueError, match=r"attention_resolution=32: at image_size 32 .* are \(8, 16\)"):
        build.build_validated(config, 1)
    config.model.name, config.model.attention_resolution = "dcgan", 16
    with pytest.raises(ValueError, match="attention_resolution=16 is a RESNET option"):
        build.build_validated(config, 1)


def test_vector_conditional_batch_norm_is_biggans_ccbn():
    """(1 + c W_gain) * BN(x) + c W_bias, BN over the batch and positions without its own affine."""
    from jaxgan.nets.conditioning import VectorConditionalBatchNorm

    rng = np.random.default_rng(3)
    x, cond = rng.normal(size=(6, 2, 3, 4)), rng.normal(size=(6, 5))
    bn = VectorConditionalBatchNorm()
    variables = flax.core.unfreeze(bn.init(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(cond), train=False))
    assert not np.any(variables["params"]["gain"]["kernel"])  # a plain BatchNorm at init
    w_gain, w_bias = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    variables["params"] = {"gain": {"kernel": jnp.asarray(w_gain)}, "bias": {"kernel": jnp.asarray(w_bias)}}
    got, _ = bn.apply(variables, jnp.asarray(x), jnp.asarray(cond), train=True, mutable=["batch_stats"])
    normalized = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-5)
    want = (1 + cond @ w_gain)[:, None, None, :] * normalized + (cond @ w_bias)[:, None, None, :]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_biggan_generator_routes_each_z_chunk_to_its_block():
    """Hierarchical z: chunk 0 feeds the linear layer, chunk i + 1 only block i's BatchNorms (shown by giving
    one block's conditioning maps weights while the others stay at their zero init); the shared class
    embedding reaches every block."""
    from jaxgan.nets import ResNetGenerator

    g = ResNetGenerator(16, ngf=16, num_classes=3, hierarchical_latent=True, shared_embedding_dim=4, bn_axis_name=None)
    z = jax.random.normal(jax.random.PRNGKey(0), (2, 16))
    labels = jnp.asarray([0, 2])
    variables = flax.core.unfreeze(g.init(jax.random.PRNGKey(1), z, labels, train=False))
    params = variables["params"]
    assert params["linear"]["kernel"].shape[0] == 4  # 16 / (1 + 3 blocks)
    assert params["up1"]["bn0"]["gain"]["kernel"].shape == (4 + 4, 16) and "gamma" not in params["up1"]["bn0"]
    params["up1"]["bn0"]["gain"]["kernel"] = jax.random.normal(jax.random.PRNGKey(2), (8, 16))
    out = lambda z, y=labels: g.apply(variables, z, y, train=False)
    base = out(z)
    for chunk, moves in ((0, True), (1, False), (2, True), (3, False)):
        bumped = z.at[:, 4 * chunk : 4 * chunk + 4].add(0.5)
        assert bool(np.any(np.asarray(out(bumped)) != np.asarray(base))) == moves, chunk
    assert np.any(np.asarray(out(z, jnp.asarray([1, 2]))) != np.asarray(base))  # the embedding reaches block 1
    with pytest.raises(ValueError, match="latent_dim is 15; use a multiple of 4"):
        g.init(jax.random.PRNGKey(1), z[:, :15], labels, train=False)


def test_resnet_generator_with_spectral_norm_computes_with_normalized_kernels():
    """G's spectral norm (SAGAN/BigGAN) on its linear layer, convolutions, attention and BigGAN's conditional-BN
    maps: after the power iterations converge, G computes what the plain G computes with every such kernel
    divided by its largest singular value (by SVD)."""
    from jaxgan.nets import ResNetGenerator

    kw = dict(latent_dim=8, image_size=32, channels=1, ngf=8, num_classes=3, attention_resolution=16)
    kw |= dict(hierarchical_latent=True, shared_embedding_dim=4, bn_axis_name=None)
    sn_g, plain_g = ResNetGenerator(spectral_norm=True, **kw), ResNetGenerator(**kw)
    z = jnp.asarray(np.random.default_rng(3).normal(size=(4, 8)), jnp.float32)
    labels = jnp.asarray([0, 1, 2, 0])
    variables = flax.core.unfreeze(sn_g.init(jax.random.PRNGKey(0), z, labels, train=False))
    # BigGAN's conditional-BN maps start at zero (sigma 0: left as they are); give them values to normalize.
    variables["params"] = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.1 if any(getattr(k, "key", "") in ("gain", "bias") for k in p) and x.ndim == 2 else x,
        variables["params"],
    )
    train = jax.jit(lambda v: sn_g.apply(v, z, labels, train=True, mutable=["batch_stats"])[1])
    for _ in range(300):  # converge the power iterations (one per call)
        variables["batch_stats"] = train(variables)["batch_stats"]
    got = sn_g.apply(variables, z, labels, train=False)
    normalized = jax.tree_util.tree_map_with_path(
        lambda p, x: (
            x / np.linalg.svd(np.asarray(x, np.float64).reshape(-1, x.shape[-1]), compute_uv=False)[0]
            if x.ndim >= 2 and "embedding" not in jax.tree_util.keystr(p)
            else x
        ),
        variables["params"],
    )
    bn_stats = {k: v for k, v in variables["batch_stats"].items() if not k.endswith("_sn")}
    bn_stats = jax.tree_util.tree_map(lambda x: x, bn_stats)
    strip = lambda tree: {k: strip(v) if isinstance(v, dict) else v for k, v in tree.items() if not k.endswith("_sn")}
    want = plain_g.apply({"params": normalized, "batch_stats": strip(variables["batch_stats"])}, z, labels, train=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
    assert (
        float(
            jnp.abs(
                got
                - plain_g.apply({**variables, "batch_stats": strip(variables["batch_stats"])}, z, labels, train=False)
            ).max()
        )
        > 1e-3
    )
