"""benchmarks/torch_reference.py is a fair reference: its PyTorch networks are jaxgan's networks
(same trainable parameter count and output shapes; with jaxgan's weights copied over, the same
outputs to 1e-4), its step does what jaxgan's step does, and its CLI reports what it promises.

Not collected by the suite itself: tests/torch_reference_test.py runs this file in a child pytest
process, so that a crash in PyTorch's native code fails the test that was running instead of
killing the whole run. `python -m pytest tests/torch_reference_checks.py` runs it directly.
Skipped where torch is not installed (pip install "jaxgan[bench]")."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # small tensors; and OpenMP spin-waits crawl on a shared CPU

from benchmarks import torch_nets as tn  # noqa: E402  (needs torch)
from benchmarks import torch_reference as tr  # noqa: E402
from jaxgan import regularizers  # noqa: E402
from jaxgan.metrics import inception  # noqa: E402
from jaxgan.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,  # noqa: E402
    ResNetDiscriminator,
    ResNetGenerator,
)
from tests.helpers import random_inception_variables  # noqa: E402

# row -> (jaxgan G, jaxgan D, torch G, torch D, latent_dim, image shape HWC), as tools/bench.py and
# experiments/configs/sngan_resnet.py build them (sngan32 on 32x32x3).
NETS = {
    "mlp": lambda: (
        MLPGenerator(latent_dim=100, out_shape=(28, 28, 1), hidden=256, depth=2, tanh_output=True),
        MLPDiscriminator(hidden=256, depth=2),
        tn.MLPGenerator(100, (1, 28, 28), 256, 2, True),
        tn.MLPDiscriminator(784, 256, 2),
        100,
        (28, 28, 1),
    ),
    "dcgan32": lambda: (
        DCGANGenerator(latent_dim=100, image_size=32, channels=1, ngf=64, bn_axis_name=None),
        DCGANDiscriminator(image_size=32, ndf=64, bn_axis_name=None),
        tn.DCGANGenerator(100, 32, 1, 64),
        tn.DCGANDiscriminator(32, 1, 64),
        100,
        (32, 32, 1),
    ),
    "dcgan64": lambda: (
        DCGANGenerator(latent_dim=100, image_size=64, channels=3, ngf=64, bn_axis_name=None),
        DCGANDiscriminator(image_size=64, ndf=64, bn_axis_name=None),
        tn.DCGANGenerator(100, 64, 3, 64),
        tn.DCGANDiscriminator(64, 3, 64),
        100,
        (64, 64, 3),
    ),
    "sngan32": lambda: (
        ResNetGenerator(latent_dim=128, image_size=32, channels=3, ngf=64, bn_axis_name=None),
        ResNetDiscriminator(image_size=32, ndf=64, spectral_norm=True, bn_axis_name=None),
        tn.ResNetGenerator(128, 3, 64),
        tn.ResNetDiscriminator(3, 64),
        128,
        (32, 32, 3),
    ),
}


def _jax_variables(module, x) -> dict:
    """Shapes of a jaxgan module's variables (abstract: nothing is computed)."""
    return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, train=False))


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- same architecture


@pytest.mark.parametrize("row", sorted(NETS))
def test_param_counts_and_output_shapes_match_jaxgan(row):
    jg, jd, tg, td, latent, (h, w, c) = NETS[row]()
    z = jnp.zeros((2, latent))
    x = jnp.zeros((2, h, w, c))
    g_vars, d_vars = _jax_variables(jg, z), _jax_variables(jd, x)
    # Trainable parameters: jaxgan's "params" (BatchNorm statistics and spectral-norm
    # iterates live in "batch_stats"); torch's parameters (its statistics and u, v are buffers).
    assert tn.num_params(tg) == _count(g_vars["params"])
    assert tn.num_params(td) == _count(d_vars["params"])
    # Per-tensor sizes agree too, not only the totals (a layout transpose keeps the size).
    assert sorted(p.numel() for p in tg.parameters()) == sorted(
        math.prod(v.shape) for v in jax.tree_util.tree_leaves(g_vars["params"])
    )
    assert sorted(p.numel() for p in td.parameters()) == sorted(
        math.prod(v.shape) for v in jax.tree_util.tree_leaves(d_vars["params"])
    )
    g_out = jax.eval_shape(lambda: jg.apply(jax.tree_util.tree_map(jnp.zeros_like, g_vars), z, train=False))
    d_out = jax.eval_shape(lambda: jd.apply(jax.tree_util.tree_map(jnp.zeros_like, d_vars), x, train=False))
    with torch.no_grad():
        assert (
            tuple(tg(torch.zeros(2, latent)).shape)
            == (2, c, h, w)
            == (g_out.shape[0], *g_out.shape[3:], *g_out.shape[1:3])
        )
        assert tuple(td(torch.zeros(2, c, h, w)).shape) == d_out.shape == (2,)


def test_inception_param_count_matches_jaxgan():
    shapes = inception.param_shapes(2048)
    model = tn.InceptionV3()
    # jaxgan's ConvBN has kernel + bias (BN beta), no scale; torch's BatchNorm also has weight (fixed at 1).
    convs = [m for m in model.modules() if isinstance(m, tn.ConvBN)]
    assert len(convs) == len(inception.conv_names(shapes["params"])) == 94
    assert sum(m.conv.weight.numel() + m.bn.bias.numel() for m in convs) == _count(shapes["params"])
    assert sum(m.bn.running_mean.numel() + m.bn.running_var.numel() for m in convs) == _count(shapes["batch_stats"])


# --------------------------------------------------------------------------- same function (weights copied)


def _copy(param: torch.Tensor, value: np.ndarray) -> None:
    assert tuple(param.shape) == value.shape, (tuple(param.shape), value.shape)
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _conv(k: np.ndarray) -> np.ndarray:
    """flax HWIO conv kernel -> torch OIHW."""
    return k.transpose(3, 2, 0, 1)


def _conv_transpose(k: np.ndarray) -> np.ndarray:
    """flax ConvTranspose kernel [kh, kw, Cin, Cout] (lax.conv_transpose, no kernel flip) ->
    torch ConvTranspose2d weight [Cin, Cout, kh, kw], which is the adjoint of a conv: spatially flipped."""
    return k[::-1, ::-1].transpose(2, 3, 0, 1)


def _dense_to_nchw(k: np.ndarray, c: int) -> np.ndarray:
    """flax Dense kernel [in, 4*4*c] reshaped to NHWC -> torch Linear weight [4*4*c, in] viewed as NCHW."""
    return k.reshape(k.shape[0], 4, 4, c).transpose(3, 1, 2, 0).reshape(16 * c, k.shape[0])


def _nhwc_flat_to_nchw(k: np.ndarray, c: int) -> np.ndarray:
    """flax Dense kernel [4*4*c, out] on an NHWC flatten -> torch Linear weight [out, 4*4*c] on NCHW."""
    return k.reshape(4, 4, c, -1).transpose(3, 2, 0, 1).reshape(k.shape[-1], 16 * c)


def _bn(module: torch.nn.BatchNorm2d, p: dict) -> None:
    _copy(module.weight, p["scale"])
    _copy(module.bias, p["bias"])


def _random_variables(module, x, seed: int, *labels, gamma: float = 0.1) -> dict:
    """Random, well-scaled values for a jaxgan module's variables (numpy; no bias or BN scale trivial); a
    conditional module takes its labels after the seed; `gamma`: the std of attention's gamma."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":  # fan-in scaled
            return rng.normal(0, 1 / np.sqrt(math.prod(leaf.shape[:-1])), leaf.shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        # biases, running means, embeddings, SN iterates (reset), attention's gamma
        return rng.normal(0, gamma if name == "gamma" else 0.1, leaf.shape).astype(np.float32)

    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, *labels, train=False))
    return jax.tree_util.tree_map_with_path(fill, shapes)


def _jax_train_forward(module, variables, x):
    with jax.default_matmul_precision("highest"):
        out, _ = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    return np.asarray(out)


def test_dcgan32_forward_matches_jaxgan_with_copied_weights():
    jg, jd, tg, td, latent, _ = NETS["dcgan32"]()
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, latent)).astype(np.float32)
    x = rng.uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
    gv, dv = _random_variables(jg, z, 1), _random_variables(jd, x, 2)

    p = gv["params"]  # G: Dense -> BN -> [up0 -> BN -> up1 -> BN] -> to_image (the sub-pixel transposed convs)
    _copy(tg.dense.weight, _dense_to_nchw(p["Dense_0"]["kernel"], 256))
    _bn(tg.bn0, p["BatchNorm_0"])
    _copy(tg.ups[0].weight, _conv_transpose(p["up0"]["kernel"]))
    _bn(tg.ups[1], p["BatchNorm_1"])
    _copy(tg.ups[3].weight, _conv_transpose(p["up1"]["kernel"]))
    _bn(tg.ups[4], p["BatchNorm_2"])
    _copy(tg.to_image.weight, _conv_transpose(p["to_image"]["kernel"]))
    _copy(tg.to_image.bias, p["to_image"]["bias"])
    p = dv["params"]  # D: down0 (bias) -> down1 -> BN -> down2 -> BN -> logit on the NHWC-flattened 4x4 map
    _copy(td.features[0].weight, _conv(p["down0"]["kernel"]))
    _copy(td.features[0].bias, p["down0"]["bias"])
    _copy(td.features[2].weight, _conv(p["down1"]["kernel"]))
    _bn(td.features[3], p["BatchNorm_0"])
    _copy(td.features[5].weight, _conv(p["down2"]["kernel"]))
    _bn(td.features[6], p["BatchNorm_1"])
    _copy(td.logit.weight, _nhwc_flat_to_nchw(p["logit"]["kernel"], 256))
    _copy(td.logit.bias, p["logit"]["bias"])

    tg.train(), td.train()  # BatchNorm on batch statistics, as in jaxgan's train step
    with torch.no_grad():
        got_g = tg(torch.from_numpy(z)).numpy().transpose(0, 2, 3, 1)
        got_d = td(_nchw(x)).numpy()
    want_g, want_d = _jax_train_forward(jg, gv, z), _jax_train_forward(jd, dv, x)
    assert np.std(want_g) > 0.1 and np.std(want_d) > 0.1  # not a saturated or constant output
    np.testing.assert_allclose(got_g, want_g, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_d, want_d, atol=1e-4 * max(1.0, np.abs(want_d).max()), rtol=0)


def _top_singular_vectors(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u [Cout], v [kh*kw*Cin]) of jaxgan's spectral-norm matrix kernel.reshape(-1, Cout), in float64."""
    # The top eigenvector of the smaller Gram matrix: np.linalg.svd's threaded LAPACK took ~1 s per conv kernel
    # on a loaded 2-core machine, this ~1 ms.
    m = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    if m.shape[0] >= m.shape[1]:
        right = np.linalg.eigh(m.T @ m)[1][:, -1]
        left = m @ right
        return right, left / np.linalg.norm(left)
    left = np.linalg.eigh(m @ m.T)[1][:, -1]
    right = m.T @ left
    return right / np.linalg.norm(right), left


def _copy_sn(module: torch.nn.Module, kernel: np.ndarray, bias: np.ndarray, sn_stats: dict, name: str) -> None:
    """Copies a spectrally normalized layer, both sides' power iterates set to W's top singular vectors
    (jaxgan iterates v then u from its stored u, torch u then v from its stored v; at the fixed point
    one iteration of either gives sigma_max, so the two forwards compare exactly)."""
    u, v = _top_singular_vectors(kernel)
    sn_stats[f"{name}/kernel/u"] = u[None].astype(np.float32)
    torch_weight = _conv(kernel) if kernel.ndim == 4 else kernel.T
    _copy(module.parametrizations.weight.original, torch_weight)
    _copy(module.bias, bias)
    # torch flattens the input dims as (Cin, kh, kw); jaxgan as (kh, kw, Cin).
    v_torch = v.reshape(*kernel.shape[:-1]).transpose(2, 0, 1).reshape(-1) if kernel.ndim == 4 else v
    param = module.parametrizations.weight[0]
    with torch.no_grad():
        param._u.copy_(torch.from_numpy(u.astype(np.float32)))
        param._v.copy_(torch.from_numpy(np.ascontiguousarray(v_torch, dtype=np.float32)))


def test_sngan32_forward_matches_jaxgan_with_copied_weights():
    jg, jd, tg, td, latent, _ = NETS["sngan32"]()
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, latent)).astype(np.float32)
    x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    gv, dv = _random_variables(jg, z, 3), _random_variables(jd, x, 4)

    p = gv["params"]
    _copy(tg.linear.weight, _dense_to_nchw(p["linear"]["kernel"], 64))
    _copy(tg.linear.bias, p["linear"]["bias"].reshape(4, 4, 64).transpose(2, 0, 1).reshape(-1))
    for i, block in enumerate(tg.blocks):
        q = p[f"up{i}"]
        _bn(block.bn0, q["bn0"])
        _bn(block.bn1, q["bn1"])
        for name in ("conv0", "conv1", "shortcut"):
            _copy(getattr(block, name).weight, _conv(q[name]["kernel"]))
            _copy(getattr(block, name).bias, q[name]["bias"])
    _bn(tg.bn_out, p["bn_out"])
    _copy(tg.to_image.weight, _conv(p["to_image"]["kernel"]))
    _copy(tg.to_image.bias, p["to_image"]["bias"])

    p, stats = dv["params"], jax.tree_util.tree_map(np.asarray, dv["batch_stats"])
    for i, block in enumerate(td.blocks):
        for name in ("conv0", "conv1", "shortcut"):
            if name in p[f"block{i}"]:
                q = p[f"block{i}"][name]
                _copy_sn(getattr(block, name), q["kernel"], q["bias"], stats[f"block{i}"][f"{name}_sn"], name)
        assert (block.shortcut is None) == ("shortcut" not in p[f"block{i}"])
    _copy_sn(td.logit, p["logit"]["kernel"], p["logit"]["bias"], stats["logit_sn"], "logit")
    dv = {**dv, "batch_stats": stats}

    tg.train(), td.train()
    with torch.no_grad():
        got_g = tg(torch.from_numpy(z)).numpy().transpose(0, 2, 3, 1)
        got_d = td(_nchw(x)).numpy()
    want_g, want_d = _jax_train_forward(jg, gv, z), _jax_train_forward(jd, dv, x)
    assert np.std(want_g) > 0.1 and np.std(want_d) > 1e-3
    np.testing.assert_allclose(got_g, want_g, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_d, want_d, atol=1e-4 * max(1.0, np.abs(want_d).max()), rtol=0)


def test_inception_features_match_jaxgan_with_copied_weights():
    variables = random_inception_variables(seed=5, feature_dim=2048)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 75, 75, 3)).astype(np.float32)  # the smallest 2048-d input
    model = tn.load_inception_variables(tn.InceptionV3(), variables).eval()
    with torch.no_grad():
        got = model(_nchw(x)).numpy()
    want = np.asarray(jax.jit(inception.InceptionV3(feature_dim=2048).apply)(variables, x))
    assert got.shape == want.shape == (2, 2048) and np.std(want) > 1e-3
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)


def test_inception_npz_reads_jaxgans_weights_cache_format(tmp_path):
    from jaxgan.metrics import weights

    variables = random_inception_variables(seed=6, feature_dim=2048)
    path = weights.save_params(variables, tmp_path / "w.npz", source="test", source_hash="none")  # jaxgan's writer
    tree, meta = tn.load_inception_npz(path)
    assert meta["source"] == "test"
    flat = lambda t: {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(t)}
    got, want = flat(tree), flat(variables)
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    with pytest.raises(FileNotFoundError, match="tools/fetch_inception.py"):
        tn.load_inception_npz(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- the step and the CLI


def test_step_runs_n_critic_d_updates_one_g_update_and_the_ema():
    g, d, reals, latent, d_losses, g_loss, adam = tr.build_gan("mlp", n_critic=3, batch_size=8)
    step = tr.GANStep(g, d, reals, latent, d_losses, g_loss, adam, compile_nets=False, channels_last=False)
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = [p.detach().clone() for p in d.parameters()]
    step()
    # Adam counts its updates: n_critic for D, one for G.
    assert {float(s["step"]) for s in step.d_opt.state.values()} == {3.0}
    assert {float(s["step"]) for s in step.g_opt.state.values()} == {1.0}
    assert all(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    assert all(p.requires_grad for p in d.parameters())  # D unfrozen again after G's update
    # EMA of G's params, decay 0.999, from the initial params: 0.999 * G0 + 0.001 * G1.
    for ema, before, after in zip(step.ema, g0, g.parameters()):
        want = 0.999 * before.double() + 0.001 * after.detach().double()
        np.testing.assert_allclose(ema.double().numpy(), want.numpy(), atol=1e-7)


def test_losses_are_jaxgans():
    real, fake = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([-0.5, 1.5, 0.0])
    sp = lambda v: np.log1p(np.exp(v))  # softplus by hand
    _, _, _, _, (d_real, d_fake), g_ns, adam = tr.build_gan("mlp", 1, 2)
    np.testing.assert_allclose((d_real(real) + d_fake(fake)).numpy(), sp(-real.numpy()) + sp(fake.numpy()), rtol=1e-6)
    np.testing.assert_allclose(g_ns(fake).numpy(), sp(-fake.numpy()), rtol=1e-6)
    assert adam == dict(lr=2e-4, betas=(0.5, 0.999))
    _, _, reals, _, (d_real, d_fake), g_h, adam = tr.build_gan("sngan32", 5, 2)
    np.testing.assert_allclose((d_real(real) + d_fake(fake)).numpy(), [0.0 + 0.5, 2.0 + 2.5, 0.7 + 1.0], rtol=1e-6)
    np.testing.assert_allclose(g_h(fake).numpy(), [0.5, -1.5, 0.0])
    assert adam == dict(lr=2e-4, betas=(0.0, 0.9)) and len(reals) == 5


def test_cli_runs_each_measurement_in_its_own_process_and_reports_the_promised_keys():
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/torch_reference.py",
            "--only=mlp",
            "--variants=eager",
            "--steps=1",
            "--repeats=1",
            "--batch_size=8",
            "--n_critic=2",
            "--threads=1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()  # one JSON line per (row, variant), nothing else on stdout
    r = json.loads(line)
    assert "error" not in r, r
    assert {
        "name",
        "variant",
        "framework",
        "torch_version",
        "threads",
        "batch_size",
        "n_critic",
        "steps_per_s",
        "images_per_s",
        "compile_plus_first_s",
        "peak_rss_mb",
    } <= set(r)
    assert (r["name"], r["variant"], r["framework"], r["threads"], r["batch_size"], r["n_critic"]) == (
        "mlp",
        "eager",
        "torch",
        1,
        8,
        2,
    )
    assert r["torch_version"] == torch.__version__
    assert r["images_per_s"] == pytest.approx(8 * 2 * r["steps_per_s"])
    assert r["compile_plus_first_s"] > 0
    assert 50 < r["peak_rss_mb"] < 20_000  # MB: torch alone is far above 50; guards a KB/MB slip


@pytest.mark.parametrize("flag,bad", [("--only", "dcgan128"), ("--variants", "jit")])
def test_unknown_names_are_usage_errors_listing_the_valid_ones(flag, bad, capsys):
    with pytest.raises(SystemExit) as e:
        tr.main([f"{flag}=mlp,{bad}"] if flag == "--only" else [f"{flag}=eager,{bad}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert bad in err and ("sngan32" in err if flag == "--only" else "channels_last" in err)


def test_missing_torch_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(tr.importlib.util, "find_spec", lambda name: None)
    assert tr.main(["--only=mlp"]) == 1
    assert 'pip install "jaxgan[bench]"' in capsys.readouterr().err


# --------------------------------------------------------------------------- the class-conditional preset rows


def _preset_nets(preset: str):
    """(jaxgan G, jaxgan D) of an experiments/configs preset at 32x32x3, as tools/bench.py builds them, outside
    a mapped axis."""
    import importlib

    from jaxgan.config import build_networks

    config = importlib.import_module(f"experiments.configs.{preset}").get_config()
    config.data.channels = 3
    g, d = build_networks(config)
    return g.clone(bn_axis_name=None), d.clone(bn_axis_name=None)


def _init_perturbed(module, args, seed: int, scales: dict) -> dict:
    """jaxgan's own init of `module`, with N(0, scale) noise added to the leaves named in `scales` (biases,
    zero-initialized gains...), so that no part of the function is trivial; numpy leaves."""
    from jaxgan.train.kit import compile_init  # init compiled without XLA's slow passes (~4x faster here)

    variables = compile_init(lambda key: module.init(key, *args, train=False))(seed)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        leaf, name = np.asarray(leaf, np.float32), path[-1].key
        if name == "var":
            return (leaf * rng.uniform(0.5, 1.5, leaf.shape)).astype(np.float32)
        return (leaf + rng.normal(0, scales[name], leaf.shape)).astype(np.float32) if name in scales else leaf

    return jax.tree_util.tree_map_with_path(fill, variables)


def _matches(got: np.ndarray, want: np.ndarray, what: str, rel: float = 1e-4) -> None:
    assert np.std(want) > 1e-3, f"{what}: a (near-)constant output proves nothing"
    np.testing.assert_allclose(got, want, atol=rel * max(1.0, float(np.abs(want).max())), rtol=0, err_msg=what)


def _same_parameters(module: torch.nn.Module, params: dict) -> None:
    """The same trainable parameter count as jaxgan's params, and the same sizes tensor by tensor."""
    assert tn.num_params(module) == _count(params)
    assert sorted(p.numel() for p in module.parameters()) == sorted(
        math.prod(np.shape(v)) for v in jax.tree_util.tree_leaves(params)
    )


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def test_stylegan2_32_matches_jaxgan_with_copied_weights():
    """G (train=False: grouped modulated convs, no mixing; train=True: style mixing per example and the w_avg
    update), D (minibatch std over consecutive groups, class projection), R1 and path lengths (double backward
    through the synthesis), all from the same weights, to float32 tolerance."""
    jg, jd = _preset_nets("stylegan2")
    n = 8  # two minibatch-std groups of 4
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, jg.latent_dim)).astype(np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    x = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
    gv = _init_perturbed(jg, (z, labels), 1, {"bias": 0.1, "noise_strength": 0.3, "w_avg": 0.1})
    dv = _init_perturbed(jd, (x, labels), 2, {"bias": 0.1})
    tg = tn.load_stylegan2_generator(tn.StyleGAN2Generator(num_classes=10), gv)
    td = tn.load_stylegan2_discriminator(tn.StyleGAN2Discriminator(num_classes=10), dv)
    _same_parameters(tg, gv["params"])
    _same_parameters(td, dv["params"])
    assert tg.latent_dim == jg.latent_dim and len(tg.layers) == 7 and tg.num_ws == jg.num_ws == 8
    tz, ty, tx = torch.from_numpy(z), torch.from_numpy(labels).long(), _nchw(x)

    with jax.default_matmul_precision("highest"):
        want_eval = jax.jit(lambda v, z, y: jg.apply(v, z, y, train=False))(gv, z, labels)
        want_train, mutated = jax.jit(lambda v, z, y: jg.apply(v, z, y, train=True, mutable=["batch_stats"]))(
            gv, z, labels
        )
        styles = lambda train: jax.jit(lambda v, z, y: jg.apply(v, z, y, train=train, method=jg.styles))
        ws_mixed, ws_plain = styles(True)(gv, z, labels), styles(False)(gv, z, labels)
        want_d = jax.jit(lambda v, x, y: jd.apply(v, x, y, train=True))(dv, x, labels)
    mixed = np.any(np.asarray(ws_mixed) != np.asarray(ws_plain), axis=(1, 2))
    assert 0 < mixed.sum() < n, mixed  # style mixing happened for some examples, not all (prob 0.9, cutoffs)

    with torch.no_grad():
        _matches(_nhwc(tg.eval()(tz, ty)), np.asarray(want_eval), "G, train=False")
        assert torch.equal(tg.mapping.w_avg, torch.from_numpy(np.asarray(gv["batch_stats"]["mapping"]["w_avg"])))
        _matches(tg.styles(tz, ty, mix=True, update_w_avg=False).numpy(), np.asarray(ws_mixed), "ws, mixed")
        _matches(_nhwc(tg.train()(tz, ty)), np.asarray(want_train), "G, train=True (style mixing)")
        _matches(tg.mapping.w_avg.numpy(), np.asarray(mutated["batch_stats"]["mapping"]["w_avg"]), "w_avg update")
        _matches(td(tx, ty).numpy(), np.asarray(want_d), "D")

    # R1 on D and the path lengths of G: the gradients the lazy regularizers differentiate again.
    d_fn = lambda x: jd.apply(dv, x, labels, train=True)
    want_r1 = float(jax.jit(lambda x: regularizers.r1_penalty(d_fn, x))(x))  # jitted: ~5x faster than op by op
    got_r1 = float(tr.r1_penalty(td, tx, ty).detach())
    assert want_r1 > 1e-3 and abs(got_r1 - want_r1) <= 1e-4 * want_r1
    noise = rng.normal(size=(n, 32, 32, 3)).astype(np.float32) / 32.0
    synth = lambda ws: jg.apply(gv, ws, z, train=True, method=jg.synthesize)
    want_pl = np.asarray(jax.jit(lambda ws: regularizers.path_lengths(synth, ws, noise))(ws_mixed))
    got_pl = tr.path_lengths(tg, tz, ty, _nchw(noise))
    _matches(got_pl.detach().numpy(), want_pl, "path lengths")
    got_pl.mean().backward()  # the double backward runs
    assert all(p.grad is not None for p in tg.mapping.parameters())


def _biggan_sn_at_fixed_point(stats: dict, params: dict) -> dict:
    """D's power iterates set to each kernel's top singular vector (jaxgan's u), as the sngan32 check does:
    one iteration of either side's order then gives sigma_max, so the two forwards compare exactly."""

    def at(path, leaf):
        keys = [p.key for p in path]  # [..., "conv0_sn", "conv0/kernel/u"] -> params[...]["conv0"]["kernel"]
        if not keys[-1].endswith("/u"):
            return leaf
        layer, param, _ = keys[-1].split("/")
        owner = params
        for key in keys[:-2]:
            owner = owner[key]
        u, _ = _top_singular_vectors(np.asarray(owner[layer][param]))
        return u[None].astype(np.float32)

    return jax.tree_util.tree_map_with_path(at, stats)


def test_biggan32_matches_jaxgan_with_copied_weights():
    """G (hierarchical latent, shared embedding, VectorConditionalBatchNorm, self-attention; train and eval
    BatchNorm), D (spectral norm everywhere, the class embedding included; attention; projection) and the
    orthogonal penalty, from the same weights."""
    jg, jd = _preset_nets("biggan")
    n = 8
    rng = np.random.default_rng(3)
    z = rng.normal(size=(n, 128)).astype(np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    x = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
    # Random variables, not jaxgan's init (whose threefry draws take XLA ~15 s to compile here): the VCBN maps
    # and attention's gamma, zero at init, are then not trivial either.
    gv = _random_variables(jg, z, 4, labels, gamma=0.5)
    gv = {**gv, "batch_stats": _biggan_sn_at_fixed_point(gv["batch_stats"], gv["params"])}
    dv = _random_variables(jd, x, 5, labels, gamma=0.5)
    dv = {**dv, "batch_stats": _biggan_sn_at_fixed_point(dv["batch_stats"], dv["params"])}
    tg = tn.load_biggan_generator(tn.BigGANGenerator(), gv)
    td = tn.load_biggan_discriminator(tn.BigGANDiscriminator(), dv)
    _same_parameters(tg, gv["params"])
    _same_parameters(td, dv["params"])
    tz, ty, tx = torch.from_numpy(z), torch.from_numpy(labels).long(), _nchw(x)

    with jax.default_matmul_precision("highest"):
        want_eval = jax.jit(lambda v, z, y: jg.apply(v, z, y, train=False))(gv, z, labels)
        want_g, _ = jax.jit(lambda v, z, y: jg.apply(v, z, y, train=True, mutable=["batch_stats"]))(gv, z, labels)
        want_d, _ = jax.jit(lambda v, x, y: jd.apply(v, x, y, train=True, mutable=["batch_stats"]))(dv, x, labels)
        want_ortho = float(jax.jit(regularizers.orthogonal_penalty)(gv["params"]))
    with torch.no_grad():
        _matches(_nhwc(tg.eval()(tz, ty)), np.asarray(want_eval), "G, train=False (running statistics)")
        _matches(_nhwc(tg.train()(tz, ty)), np.asarray(want_g), "G, train=True (batch statistics)")
        _matches(td.train()(tx, ty).numpy(), np.asarray(want_d), "D, train=True")
        got_ortho = float(tn.orthogonal_penalty(tg.orthogonal_kernels()))
    assert want_ortho > 1e-3 and abs(got_ortho - want_ortho) <= 1e-4 * want_ortho


@pytest.mark.parametrize("row", tr.CONDITIONAL_ROWS)
def test_stylegan2_biggan_step_runs_its_updates_and_lazy_regularizers(row):
    """Two steps of a conditional row's step on a small batch: Adam counts n_critic D updates (+1 for lazy R1
    on step 0) and one G update (+1 for lazy path length on step 0), then only the plain updates on step 1."""
    step = tr.build_conditional(row, tr.DEFAULT_N_CRITIC[row], 8, compile_nets=False, channels_last=False)
    counts = lambda opt: {float(s["step"]) for s in opt.state.values()}
    lazy = row == "stylegan2_32"
    step()
    assert counts(step.d_opt) == {tr.DEFAULT_N_CRITIC[row] + lazy} and counts(step.g_opt) == {1.0 + lazy}
    step()  # step 1: 1 % 16 and 1 % 4 are not 0, so no lazy update
    assert counts(step.d_opt) == {2 * tr.DEFAULT_N_CRITIC[row] + lazy} and counts(step.g_opt) == {2.0 + lazy}
    assert all(p.requires_grad for p in step.d.parameters())
    if lazy:
        assert float(step.pl_mean) > 0  # the path lengths' running mean moved
