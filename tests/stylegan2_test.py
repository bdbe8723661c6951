"""StyleGAN2's pieces against independent references (numpy, scipy, finite differences), and its step."""

from __future__ import annotations

import dataclasses
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxgan
from jaxgan import checkpoint, regularizers, upfirdn
from jaxgan.build import build_networks, build_optimizers, build_step
from jaxgan.config import validate
from jaxgan.nets import layers
from jaxgan.nets import stylegan2 as sg
from jaxgan.train.kit import INIT_COMPILER_OPTIONS

F = upfirdn.setup_filter(sg.RESAMPLE_FILTER)


def _init(module, *args, **kw):
    """`module.init` compiled as one program (op-by-op eager tracing of these nets costs more than a compile)."""
    return jax.jit(lambda *a: module.init(jax.random.PRNGKey(1), *a, **kw))(*args)


def _apply(module, variables, *args, **kw):
    """`module.apply` compiled as one program."""
    return jax.jit(lambda v, *a: module.apply(v, *a, **kw))(variables, *args)


def _np_correlate_same(x, w):
    """'same' cross-correlation of x [H, W, I] with w [k, k, I, O], by explicit sums."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape[:2] + (w.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += np.einsum("hwi,io->hwo", xp[i : i + x.shape[0], j : j + x.shape[1]], w[i, j])
    return out


def _np_modulated_conv(x, w, s, demodulate, eps=1e-8):
    """The paper's eqs. 1-3 per example: w' = s_i w_ijk, w'' = w' / sqrt(sum_ik w'^2 + eps), then convolve."""
    out = []
    for b in range(x.shape[0]):
        wb = w * s[b][None, None, :, None]
        if demodulate:
            wb = wb / np.sqrt(np.sum(wb**2, axis=(0, 1, 2), keepdims=True) + eps)
        out.append(_np_correlate_same(x[b], wb))
    return np.stack(out)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("k", [3, 1])
def test_modulated_conv_matches_the_papers_equations_fused_and_not(demodulate, k):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 6, 4)).astype(np.float32)
    w = rng.normal(size=(k, k, 4, 5)).astype(np.float32)
    s = rng.normal(size=(3, 4)).astype(np.float32) + 1.0
    want = _np_modulated_conv(x.astype(np.float64), w.astype(np.float64), s.astype(np.float64), demodulate)
    for fused in (True, False):
        got = sg.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), demodulate=demodulate, fused=fused)
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4, err_msg=f"fused={fused}")


def test_resampled_convolutions_equal_the_generic_upfirdn_form():
    """Up: upfirdn2d(x, f, up=2, padding=p, gain=4) then a VALID conv; down: filter then a stride-2 conv
    (the reference's conv2d_resample padding rules), each vs jaxgan's reordered fast forms."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 5, 5, 3)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    fw = 4
    p0, p1 = 1 + (fw + 1) // 2, 1 + (fw - 2) // 2
    generic_up = sg.conv2d(upfirdn.upfirdn2d(x, F, up=2, padding=(p0, p1, p0, p1), gain=4.0), w)
    fast_up = sg.conv2d_resample(x, w, F, up=2)
    assert fast_up.shape == (2, 10, 10, 4)
    np.testing.assert_allclose(np.asarray(fast_up), np.asarray(generic_up), rtol=1e-4, atol=1e-4)
    x8 = jnp.asarray(rng.normal(size=(2, 8, 8, 3)).astype(np.float32))
    q0, q1 = 1 + (fw - 1) // 2, 1 + (fw - 2) // 2
    generic_down = sg.conv2d(upfirdn.upfirdn2d(x8, F, padding=(q0, q1, q0, q1)), w, stride=2)
    np.testing.assert_allclose(np.asarray(sg.conv2d_resample(x8, w, F, down=2)), np.asarray(generic_down), rtol=1e-5)
    w1 = w[1:2, 1:2]  # 1x1: filter and decimate, then the conv
    want = sg.conv2d(upfirdn.downsample2d(x8, F), w1)
    np.testing.assert_allclose(np.asarray(sg.conv2d_resample(x8, w1, F, down=2)), np.asarray(want), rtol=1e-5)
    # The modulated conv's up path: fused (grouped) == activation scaling.
    s = jnp.asarray(rng.normal(size=(2, 3)).astype(np.float32))
    a = sg.modulated_conv2d(x, w, s, up=2, fused=True)
    b = sg.modulated_conv2d(x, w, s, up=2, fused=False)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_equalized_learning_rate_scales_weights_at_run_time():
    """Stored weights ~ N(0, 1 / lr_mult^2), used as stored * lr_mult / sqrt(fan_in); bias * lr_mult."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=(5, 300)).astype(np.float32))
    layer = sg.EqualDense(200, lr_multiplier=0.01, bias_init=0.5)
    params = layer.init(jax.random.PRNGKey(0), x)["params"]
    kernel, bias = np.asarray(params["kernel"]), np.asarray(params["bias"])
    assert abs(kernel.std() - 100.0) < 2.0  # 1 / 0.01
    want = np.asarray(x) @ (kernel * 0.01 / math.sqrt(300)) + bias * 0.01
    np.testing.assert_allclose(np.asarray(layer.apply({"params": params}, x)), want, rtol=1e-4, atol=1e-5)
    # The gradient of the stored kernel is the effective weight's times the runtime scale c.
    g = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2))(params)["kernel"]
    y = want
    np.testing.assert_allclose(
        np.asarray(g), (np.asarray(x).T @ (2 * y)) * (0.01 / math.sqrt(300)), rtol=1e-3, atol=1e-7
    )
    conv = sg.EqualConv(4, 3, activation="linear")
    xi = jnp.asarray(np.random.default_rng(3).normal(size=(1, 5, 5, 2)).astype(np.float32))
    cp = conv.init(jax.random.PRNGKey(1), xi)["params"]
    want = _np_correlate_same(np.asarray(xi[0], np.float64), np.asarray(cp["kernel"], np.float64) / math.sqrt(18))
    np.testing.assert_allclose(np.asarray(conv.apply({"params": cp}, xi))[0], want, rtol=1e-4, atol=1e-5)


def _tiny_g(**kw):
    kw = (
        dict(
            z_dim=4,
            w_dim=4,
            image_size=8,
            channels=1,
            channel_base=32,
            channel_max=4,
            mapping_layers=1,
            bn_axis_name=None,
        )
        | kw
    )
    return sg.StyleGAN2Generator(**kw)


def test_mapping_normalizes_z_and_tracks_w_avg():
    z = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32) * 3
    normed = np.asarray(sg.normalize_2nd_moment(jnp.asarray(z)))
    np.testing.assert_allclose(normed, z / np.sqrt(np.mean(z**2, axis=1, keepdims=True) + 1e-8), rtol=1e-5)
    m = sg.MappingNetwork(4, num_layers=2, axis_name=None, w_avg_beta=0.9)
    v = m.init(jax.random.PRNGKey(0), jnp.asarray(z), None)
    old = np.full((4,), 0.25, np.float32)
    v = {"params": v["params"], "batch_stats": {"w_avg": jnp.asarray(old)}}
    w, mutated = m.apply(v, jnp.asarray(z), None, update_w_avg=True, mutable=["batch_stats"])
    np.testing.assert_allclose(
        np.asarray(mutated["batch_stats"]["w_avg"]), 0.9 * old + 0.1 * np.asarray(w).mean(0), rtol=1e-5
    )
    w2, unchanged = m.apply(v, jnp.asarray(z), None, mutable=["batch_stats"])  # update_w_avg=False
    np.testing.assert_array_equal(np.asarray(unchanged["batch_stats"]["w_avg"]), old)


def test_style_mixing_draws_follow_the_latent_and_the_probability():
    g = _tiny_g(style_mixing_prob=0.9)
    n = 4000
    x = jax.random.normal(jax.random.PRNGKey(0), (n, g.latent_dim))
    v = _init(g, x[:1], train=False)
    styles = jax.jit(lambda x, train: g.apply(v, x, train=train, method=g.styles), static_argnums=1)
    ws = np.asarray(styles(x, True))
    ws_eval = np.asarray(styles(x, False))
    w1 = ws_eval[:, 0]
    assert np.all(ws_eval == w1[:, None])  # no mixing outside training
    x_swapped = np.asarray(x).copy()
    x_swapped[:, :4] = np.asarray(x)[:, 4:8]  # z <- z_mix
    w2 = np.asarray(styles(jnp.asarray(x_swapped), False))[:, 0]
    u = scipy.stats.norm.cdf(np.asarray(x)[:, 8:10].astype(np.float64))
    num = g.num_ws
    cutoff = np.where(u[:, 0] < 0.9, np.minimum(1 + np.floor(u[:, 1] * (num - 1)).astype(int), num - 1), num)
    want = np.where((np.arange(num)[None, :] >= cutoff[:, None])[..., None], w2[:, None], w1[:, None])
    np.testing.assert_allclose(ws, want, rtol=1e-5, atol=1e-6)
    mixed = np.mean(cutoff < num)
    assert abs(mixed - 0.9) < 4 * math.sqrt(0.09 / n), mixed
    # Every crossover layer 1 .. num_ws - 1 occurs.
    assert set(np.unique(cutoff[cutoff < num])) == set(range(1, num))


def test_truncation_moves_ws_toward_w_avg_up_to_the_cutoff():
    g = _tiny_g(style_mixing_prob=0.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, g.latent_dim))
    v = _init(g, x, train=False)
    w_avg = np.arange(4, dtype=np.float32) / 4
    v = {"params": v["params"], "batch_stats": {"mapping": {"w_avg": jnp.asarray(w_avg)}}}
    plain = np.asarray(_apply(g, v, x, train=False, method=g.styles))
    half_g = g.clone(truncation_psi=0.5, truncation_cutoff=2)
    half = np.asarray(_apply(half_g, v, x, train=False, method=half_g.styles))
    np.testing.assert_allclose(half[:, :2], w_avg + 0.5 * (plain[:, :2] - w_avg), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(half[:, 2:], plain[:, 2:])
    zero = np.asarray(_apply(g.clone(truncation_psi=0.0), v, x, train=False))
    # psi = 0: every sample has w = w_avg, so samples differ only by their noise inputs (strength 0 at init).
    np.testing.assert_allclose(zero, np.broadcast_to(zero[0], zero.shape), rtol=1e-5, atol=1e-6)


def test_noise_inputs_enter_with_their_learned_strength():
    g = _tiny_g(style_mixing_prob=0.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, g.latent_dim))
    v = _init(g, x, train=False)
    assert g.latent_dim == 4 + sum(r * r for r in (4, 8, 8))
    other = x.at[:, 4:].set(jax.random.normal(jax.random.PRNGKey(2), (2, g.latent_dim - 4)))
    a, b = _apply(g, v, x, train=False), _apply(g, v, other, train=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # strengths start at 0
    params = jax.tree_util.tree_map_with_path(
        lambda p, leaf: leaf + 0.5 if "noise_strength" in jax.tree_util.keystr(p) else leaf, v["params"]
    )
    v2 = {**v, "params": params}
    assert float(jnp.abs(_apply(g, v2, x, train=False) - _apply(g, v2, other, train=False)).max()) > 1e-3


def test_minibatch_std_of_consecutive_groups_matches_numpy():
    x = np.random.default_rng(5).normal(size=(8, 3, 3, 4)).astype(np.float32)
    got = np.asarray(layers.minibatch_stddev(jnp.asarray(x), group_size=4, num_features=2, contiguous=True))
    want = np.empty((8, 2))
    for grp in range(2):
        members = x[grp * 4 : grp * 4 + 4].reshape(4, 9, 2, 2)
        want[grp * 4 : grp * 4 + 4] = np.sqrt(members.var(axis=0) + 1e-8).mean(axis=(0, 2))
    np.testing.assert_allclose(got[..., 4:], np.broadcast_to(want[:, None, None, :], (8, 3, 3, 2)), rtol=1e-5)
    np.testing.assert_array_equal(got[..., :4], x)


def test_path_lengths_match_finite_differences_of_the_synthesis():
    g = _tiny_g(style_mixing_prob=0.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, g.latent_dim))
    v = _init(g, x, train=False)
    ws = _apply(g, v, x, train=True, method=g.styles)
    y = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 8, 1)) / 8.0
    synth = lambda ws: g.apply(v, ws, x, train=True, method=g.synthesize)
    got = np.asarray(jax.jit(lambda ws, y: regularizers.path_lengths(synth, ws, y))(ws, y))
    # J^T y per example by central differences of <synth(ws)_b, y_b> in float64 arithmetic of float32 evaluations.
    eps, base = 1e-2, np.asarray(ws)
    jty = np.zeros(base.shape)
    f = jax.jit(lambda w: jnp.sum(synth(w) * y, axis=(1, 2, 3)))
    for idx in np.ndindex(*base.shape[1:]):
        d = np.zeros(base.shape, np.float32)
        d[(slice(None), *idx)] = eps
        jty[(slice(None), *idx)] = (np.asarray(f(base + d), np.float64) - np.asarray(f(base - d), np.float64)) / (
            2 * eps
        )
    want = np.sqrt(np.mean(np.sum(jty**2, axis=-1), axis=1))
    np.testing.assert_allclose(got, want, rtol=2e-2)
    penalty, a = regularizers.path_length_penalty(jnp.asarray(got), jnp.float32(0.5), decay=0.01)
    a_hand = 0.5 + 0.01 * (got.mean() - 0.5)
    np.testing.assert_allclose(float(a), a_hand, rtol=1e-6)
    np.testing.assert_allclose(float(penalty), np.mean((got - a_hand) ** 2), rtol=1e-5)


def test_discriminator_projects_onto_the_mapped_class_and_refuses_what_it_lacks():
    d = sg.StyleGAN2Discriminator(
        image_size=8, channel_base=32, channel_max=4, num_classes=3, mapping_layers=1, bn_axis_name=None
    )
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
    labels = jnp.asarray([0, 1, 2, 0])
    v = _init(d, x, labels)
    logits, inter = _apply(d, v, x, labels, mutable=["intermediates"])
    assert logits.shape == (4,)
    # By hand: the same image under each class gives <out(phi), cmap(y)> / sqrt(4); cmap from the label mapping.
    phi = inter["intermediates"]["features"][0]
    p = v["params"]
    out = np.asarray(phi) @ (np.asarray(p["b4_out"]["kernel"]) / 2.0) + np.asarray(p["b4_out"]["bias"])
    cmap = sg.MappingNetwork(4, num_layers=1, num_classes=3, w_avg_beta=None).apply(
        {"params": p["mapping"]}, None, labels
    )
    np.testing.assert_allclose(np.asarray(logits), np.sum(out * np.asarray(cmap), -1) / 2.0, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="spectral_norm"):
        d.clone(spectral_norm=True).init(jax.random.PRNGKey(1), x, labels)


# --------------------------------------------------------------------------- the step


def _preset_step():
    """The stylegan2_ada preset's step (the stylegan2 preset's nets, loss, lazy R1 and path length, style
    mixing, conditioning, optimizers, plus ADA), shrunk to 8x8 images and tiny widths, with both lazy
    intervals 2 to meet both updates soon, and ADA's p starting at 0.5, adjusted after every step by
    32 / 1000 (ada_kimg = 1) so that the controller's moves show."""
    config = importlib.import_module("experiments.configs.stylegan2_ada").get_config()
    config.data.image_size, config.data.channels, config.model.num_classes = 8, 1, 3
    config.model.latent_dim = config.model.w_dim = 4
    config.model.channel_base, config.model.channel_max, config.model.mapping_layers = 32, 4, 1
    config.model.d_mapping_layers = 1
    config.regularization.r1_every = config.regularization.path_length_every = 2
    config.regularization.ada_p, config.regularization.ada_interval, config.regularization.ada_kimg = 0.5, 1, 1.0
    # The blit ops only ('b'), for compile time: the step draws every op's parameters from the same
    # per-example keys, and tests/ada_test.py checks the full pipeline's ops and per-example draws.
    config.regularization.ada_pipeline = "b"
    config.batch_size = 32  # 4 per device on 8: the minibatch-std groups (4) are the same on 1 and 8 devices
    validate(config, 8)
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    return build_step(config, generator, discriminator, g_tx, d_tx), config


def test_full_step_is_the_same_on_one_and_eight_devices_and_resumes_bit_exactly(tmp_path):
    """The presets' step (tests/presets_test.py leaves stylegan2 and stylegan2_ada to this test): two steps (the
    first runs lazy R1 and the lazy path length update, the second neither) on 1 and on 8 devices, ADA's
    augmentations drawn per example; ADA's p follows a hand simulation of its controller; then a checkpoint
    round trip of the state (pl_mean, w_avg, ADA's p included) continues bit for bit."""
    step, config = _preset_step()
    rng = np.random.default_rng(0)
    n = config.batch_size
    batches = [
        {"image": rng.uniform(-1, 1, (n, 8, 8, 1)).astype(np.float32), "label": rng.integers(0, 3, n, np.int32)}
        for _ in range(3)
    ]
    fresh = step.init_state(0, batches[0]["image"][:1])
    # Every leaf its own array: the training loop donates the state, and one array in two leaves fails there.
    leaves = jax.tree_util.tree_leaves(fresh)
    assert len({id(x) for x in leaves}) == len(leaves)
    state0 = jax.device_get(fresh)
    assert set(state0.extras) == {"pl_mean", "ada"} and "w_avg" in state0.g.batch_stats["mapping"]
    results = {}
    for n in (1, 8):
        mesh = jaxgan.make_mesh(jax.devices()[:n])
        run = jaxgan.shard_map_step(step, mesh, compiler_options=INIT_COMPILER_OPTIONS)
        state, metrics = jaxgan.replicate(state0, mesh), []
        for batch in batches[:2]:
            state, m = run(state, batch)
            metrics.append({k: float(v) for k, v in m.items()})
        results[n] = (jax.device_get(state), metrics, run, mesh)
    (s1, m1, run1, mesh1), (s8, m8, _, _) = results[1], results[8]
    assert m1[0]["g_path_length"] > 0 and m1[1]["g_path_length"] == 0 and m1[0]["d_r1_lazy"] > 0
    assert float(s1.extras["pl_mean"]) != 0.0
    # ADA's controller by hand: after each step, p <- max(0, p + sign(r_t - 0.6) * 32 / 1000), r_t that step's
    # mean sign of D's real logits (the interval is one step).
    p = 0.5
    for m in m1:
        assert m["ada_p"] == pytest.approx(max(0.0, p + np.sign(m["d_real_sign"] - 0.6) * 32 / 1000), abs=1e-6)
        p = m["ada_p"]
    assert float(s1.extras["ada"]["p"]) == pytest.approx(p, abs=1e-6)
    for a, b in zip(m1, m8):
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=2e-4, atol=1e-5, err_msg=k)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(s1), jax.tree_util.tree_leaves(s8)):
        np.testing.assert_allclose(
            np.asarray(b), np.asarray(a), rtol=2e-3, atol=2e-5, err_msg=jax.tree_util.keystr(path)
        )
    # Resume: save after step 2, restore into a fresh abstract state, step 3 equals the uninterrupted step 3.
    manager = checkpoint.checkpoint_manager(str(tmp_path / "ckpt"))
    checkpoint.save(manager, 2, jaxgan.replicate(s1, mesh1))
    manager.wait_until_finished()
    restored, at = checkpoint.restore_latest(manager, jaxgan.replicate(s1, mesh1))
    assert at == 2
    straight = jax.device_get(run1(jaxgan.replicate(s1, mesh1), batches[2])[0])
    resumed = jax.device_get(run1(restored, batches[2])[0])
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sampling_with_truncation_psi_zero_gives_w_avgs_image():
    """`TrainedGenerator.with_truncation_psi` (tools/sample.py --psi): psi = 0 maps every z to w_avg, so with the
    noise strengths at their initial 0 every sample is the same image; a G without W space is refused."""
    from jaxgan.nets import DCGANGenerator
    from jaxgan.workdir import TrainedGenerator

    g = _tiny_g()
    v = g.init(jax.random.PRNGKey(1), jnp.zeros((1, g.latent_dim)), train=False)
    w_avg = {"mapping": {"w_avg": jnp.full((4,), 0.3)}}
    gan = TrainedGenerator(config=None, step=0, ema=True, generator=g, params=v["params"], batch_stats=w_avg)
    truncated = gan.with_truncation_psi(0.0)
    assert (truncated.generator.truncation_psi, gan.generator.truncation_psi) == (0.0, 1.0)
    same = truncated.sample(4, seed=0, batch_size=4)  # the untruncated G's samples differ: the truncation test
    np.testing.assert_allclose(same, np.broadcast_to(same[:1], same.shape), atol=1e-6)
    with pytest.raises(ValueError, match="no W space"):
        dataclasses.replace(gan, generator=DCGANGenerator()).with_truncation_psi(0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gan.with_truncation_psi(1.5)


@pytest.mark.parametrize("size", [32, 256])  # the smallest and largest paper size (64 and 128 lie between)
def test_every_paper_size_builds_with_the_widths_and_latent_it_should(size):
    """Shapes only (abstract evaluation, nothing compiled): G's output, num_ws = 2 log2(size) - 2, the latent's
    noise part (one map at 4x4, two per higher resolution), D's logits, and the reference's width rule."""
    g = sg.StyleGAN2Generator(z_dim=8, w_dim=8, image_size=size, channels=3, channel_base=size * 8, channel_max=16)
    d = sg.StyleGAN2Discriminator(image_size=size, channel_base=size * 8, channel_max=16)
    assert g.num_ws == 2 * int(math.log2(size)) - 2
    assert g.noise_dim == 16 + 2 * sum((2**k) ** 2 for k in range(3, int(math.log2(size)) + 1))
    x = jax.ShapeDtypeStruct((4, g.latent_dim), jnp.float32)
    variables = jax.eval_shape(lambda x: g.init(jax.random.PRNGKey(0), x, train=False), x)
    img = jax.eval_shape(lambda v, x: g.apply(v, x, train=False), variables, x)
    assert img.shape == (4, size, size, 3)
    logits = jax.eval_shape(lambda i: d.init_with_output(jax.random.PRNGKey(0), i)[0], img)
    assert logits.shape == (4,)
    # Widths: min(channel_base // resolution, channel_max): 16 up to size / 2, 8 at full size.
    assert variables["params"][f"b{size}_conv1"]["kernel"].shape[-1] == 8
    assert variables["params"][f"b{size // 2}_conv1"]["kernel"].shape[-1] == 16
