"""Image-to-image translation (issue 7): CycleGAN and pix2pix losses, nets, steps, data, loop, translate.py.

References are independent of the code under test: hand-computed losses, the
reference PyTorch implementation's printed parameter counts and output sizes,
the CycleGAN image-pool rule, numpy luma, and direct Flax applications.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxgan import make_mesh, regularizers, replicate
from jaxgan.data import translation as tdata
from jaxgan.translation import steps as tsteps
from jaxgan.translation.nets import PatchDiscriminator, ResnetGenerator, UNetGenerator, patch_receptive_field

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "configs")
CROP = 16  # the training runs' crop size (small: XLA compile and CPU steps dominate the test time)


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def test_the_pure_parts_import_no_io():
    """`jaxgan.translation` (nets, losses, steps) loads no TensorFlow, TFDS, Orbax or CLU."""
    import subprocess
    import sys

    code = (
        "import sys, jaxgan.translation; print(sorted(m for m in ('tensorflow', 'tensorflow_datasets', "
        "'orbax', 'orbax.checkpoint', 'clu') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# ----------------------------------------------------------------------------
# Losses, by hand.


def test_losses_by_hand():
    real = jnp.array([[1.0, 0.5]])
    fake = jnp.array([[0.0, -1.0]])
    # CycleGAN's D: 0.5 (r - 1)^2 + 0.5 f^2 per patch: (0 + 0) and (0.125 + 0.5); mean 0.3125.
    np.testing.assert_allclose(tsteps.CYCLEGAN_LSGAN.d(real, fake), 0.3125, rtol=1e-6)
    # CycleGAN's G: (f - 1)^2 with f = 0, 3: (1 + 4) / 2.
    np.testing.assert_allclose(tsteps.CYCLEGAN_LSGAN.g(jnp.array([0.0, 3.0])), 2.5, rtol=1e-6)
    np.testing.assert_allclose(
        tsteps.l1_loss(jnp.array([1.0, -1.0, 0.5]), jnp.array([0.0, 0.0, 0.0])), 2.5 / 3, rtol=1e-6
    )
    # pix2pix's D: logit 0 is D = 1/2: -log(1/2) for each term, D's objective halved.
    np.testing.assert_allclose(tsteps.PIX2PIX_BCE.d(jnp.zeros(4), jnp.zeros(4)), np.log(2.0), rtol=1e-6)
    # pix2pix's G: -log sigmoid(log 3) = -log(3/4).
    np.testing.assert_allclose(tsteps.PIX2PIX_BCE.g(jnp.array([np.log(3.0)])), -np.log(0.75), rtol=1e-6)
    with pytest.raises(ValueError, match="different shapes"):
        tsteps.l1_loss(jnp.zeros(2), jnp.zeros(3))


class _Shift(nn.Module):
    """x + b with a learned scalar b: cycle and identity errors are known exactly."""

    init_value: float
    out_channels: int = 3

    @nn.compact
    def __call__(self, x, *, train=False):
        return x + self.param("b", nn.initializers.constant(self.init_value), ())


class _ConstD(nn.Module):
    """A 2x2 patch of one learned logit w."""

    @nn.compact
    def __call__(self, x, *, train=False):
        return jnp.broadcast_to(self.param("w", nn.initializers.zeros, ()), (x.shape[0], 2, 2))


def _toy_cyclegan(pool_size: int = 4, lr: float = 0.1) -> tsteps.CycleGANStep:
    tx = tsteps.adam(lr, total_steps=10, decay_steps=0)
    return tsteps.CycleGANStep(
        g_ab=_Shift(0.1),
        g_ba=_Shift(0.2),
        d_a=_ConstD(),
        d_b=_ConstD(),
        g_tx=tx,
        d_tx=tx,
        shape_a=(4, 4, 3),
        shape_b=(4, 4, 3),
        pool_size=pool_size,
    )


def test_cyclegan_losses_by_hand():
    # G_ab = x + 0.1, G_ba = y + 0.2, D = 0: adversarial (0 - 1)^2 = 1 each; cycles |0.3| each;
    # identity |G_ba(a) - a| = 0.2, |G_ab(b) - b| = 0.1. Total 2 + 10 * 0.6 + 0.5 * 10 * 0.3 = 9.5.
    step = _toy_cyclegan()
    state = step.init_state(0)
    a = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4, 4, 3)), jnp.float32)
    total, (parts, fake_a, fake_b) = step.generator_losses(state.g.params, state.d.params, a, -a)
    expected = {"g_adv_ab": 1.0, "g_adv_ba": 1.0, "cycle_a": 0.3, "cycle_b": 0.3, "identity_a": 0.2, "identity_b": 0.1}
    for k, v in expected.items():
        np.testing.assert_allclose(parts[k], v, rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(total, 9.5, rtol=1e-5)
    # Each D = 0 on reals and fakes: 0.5 (0 - 1)^2 + 0.5 * 0^2 = 0.5, twice.
    d_total, (d_a, d_b) = step.discriminator_losses(state.d.params, a, -a, fake_a, fake_b)
    np.testing.assert_allclose([d_total, d_a, d_b], [1.0, 0.5, 0.5], rtol=1e-6)


def _batches(seed: int, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{k: rng.uniform(-1, 1, (4, 4, 4, 3)).astype(np.float32) for k in ("a", "b")} for _ in range(count)]


# The toy steps below are compiled without XLA's backend optimizations: the same math on
# both device counts, in about half the compile time.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _one_and_four_devices(step, batches):
    """Runs `batches` on 1 device and on 4: the same states and metrics, the state donated and the
    step compiled once. Returns the 1-device state, the 4-device step and its mesh."""
    results = []
    for n in (1, 4):
        mesh = make_mesh(jax.devices()[:n])
        fn = tsteps.shard_map_translation_step(step, mesh, compiler_options=FAST_COMPILE)
        state = replicate(step.init_state(0), mesh)
        for batch in batches:
            previous, (state, metrics) = state, fn(state, batch)
            assert all(x.is_deleted() for x in jax.tree_util.tree_leaves(previous))  # the state is donated
        assert fn.compiled._cache_size() == 1  # compiled once for every batch
        results.append(jax.device_get((state, metrics)))
    for x, y in zip(jax.tree_util.tree_leaves(results[0]), jax.tree_util.tree_leaves(results[1])):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    return results[0][0], fn, mesh


def test_cyclegan_step_device_count_invariant_and_fills_pools():
    """Steps on 1 and on 4 devices give the same state (pmean'd grads, global-index pool draws)."""
    step = _toy_cyclegan(pool_size=4)
    batches = _batches(1, 3)
    one, fn, mesh = _one_and_four_devices(step, batches)
    assert int(one.step) == 3 and int(one.pools["a"].count) == 4  # 12 fakes offered, capacity 4
    # Adam's first step moves each scalar by lr: b_ab and b_ba go down (cycle error +0.3 pulls them to 0).
    assert float(one.g.params["g_ab"]["b"]) < 0.1 and float(one.g.params["g_ba"]["b"]) < 0.2
    with pytest.raises(ValueError, match="not divisible by the device count 4"):
        fn(replicate(step.init_state(0), mesh), {k: v[:2] for k, v in batches[0].items()})
    with pytest.raises(ValueError, match="float32"):
        fn(replicate(step.init_state(0), mesh), {k: v.astype(np.float64) for k, v in batches[0].items()})


class _ShiftDropout(nn.Module):
    """x + b, then dropout 0.5 in training: per-example masks from the step's keys."""

    @nn.compact
    def __call__(self, x, *, train=False):
        x = x + self.param("b", nn.initializers.constant(0.1), ())
        return nn.Dropout(0.5, deterministic=not train)(x)


def test_pix2pix_step_device_count_invariant():
    """Dropout keys by global example index and pmean'd grads: 1 and 4 devices agree."""
    tx = tsteps.adam(0.05, total_steps=10, decay_steps=0)
    step = tsteps.Pix2PixStep(_ShiftDropout(), _ConstD(), tx, tx, (4, 4, 3), (4, 4, 3))
    batches = _batches(2, 2)
    one, _, _ = _one_and_four_devices(step, batches)
    # Dropout is on in training: G(a) differs from the deterministic a + b.
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    out = step.generate(one.g.params, jnp.asarray(batches[0]["a"]), keys)
    assert np.mean(np.asarray(out) == 0.0) > 0.3


# ----------------------------------------------------------------------------
# The 50-image history (Zhu et al. 2017 sec. 4; Shrivastava et al. 2017).


def test_history_buffer_rule():
    capacity, batch = 50, 10
    buffer = regularizers.replay_buffer_init(capacity, (1,))
    query = jax.jit(regularizers.replay_buffer_query)
    served_history, offered = 0, 0
    for t in range(60):
        fakes = jnp.arange(t * batch, (t + 1) * batch, dtype=jnp.float32)[:, None] + 1.0  # unique ids 1, 2, ...
        out, buffer = query(buffer, fakes, jax.random.PRNGKey(t))
        out = np.asarray(out)[:, 0]
        if t < capacity // batch:  # not full yet: exactly the current fakes, all stored
            np.testing.assert_array_equal(out, np.asarray(fakes)[:, 0])
            assert int(buffer.count) == (t + 1) * batch
        else:
            current = np.asarray(fakes)[:, 0]
            from_history = out != current
            # An earlier fake (examples go in order, as the reference ImagePool: an earlier one of
            # this batch may already have been swapped in), never a later or unseen one.
            assert np.all(out[from_history] < current[from_history])
            served_history += int(from_history.sum())
            offered += batch
    assert int(buffer.count) == capacity
    assert 0.42 < served_history / offered < 0.58  # p = 1/2 over 550 draws (5 sigma ~ 0.11)


# ----------------------------------------------------------------------------
# Networks: shapes at 64/128/256 px and the reference sizes.


@pytest.mark.parametrize("size,num_downs,patches", [(64, 6, 6), (128, 7, 14), (256, 8, 30)])
def test_network_shapes(size, num_downs, patches):
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    init = lambda m, x: jax.eval_shape(lambda x: m.init_with_output(jax.random.PRNGKey(0), x)[0], x)
    assert init(ResnetGenerator(num_blocks=9 if size == 256 else 6), x).shape == (2, size, size, 3)
    assert init(UNetGenerator(num_downs=num_downs), x).shape == (2, size, size, 3)
    assert init(ResnetGenerator(features=8, num_blocks=1, out_channels=1), x).shape == (2, size, size, 1)
    # 70x70 PatchGAN, padding 1: 256 -> 30x30 logits as in the reference code; pix2pix's D sees A and B (6 ch).
    ab = jax.ShapeDtypeStruct((2, size, size, 6), jnp.float32)
    assert init(PatchDiscriminator(), ab).shape == (2, patches, patches)


def test_reference_parameter_counts():
    """The reference PyTorch code prints G 11.378 M (resnet_9blocks) and D 2.765 M (basic, n_layers 3)."""
    x = jnp.zeros((1, 256, 256, 3))
    g = jax.eval_shape(lambda: ResnetGenerator().init(jax.random.PRNGKey(0), x))
    d = jax.eval_shape(lambda: PatchDiscriminator().init(jax.random.PRNGKey(0), x))
    assert round(_count(g) / 1e6, 3) == 11.378
    assert round(_count(d) / 1e6, 3) == 2.765
    assert patch_receptive_field(3) == 70  # the paper's 70x70 PatchGAN


def test_sizes_the_nets_cannot_take_fail_before_compiling():
    tx = tsteps.adam(1e-3, total_steps=2, decay_steps=0)
    with pytest.raises(ValueError, match=r"48x48 cannot be halved enough times.*multiples of 64"):
        tsteps.Pix2PixStep(UNetGenerator(num_downs=6), PatchDiscriminator(), tx, tx, (48, 48, 1), (48, 48, 3))
    with pytest.raises(ValueError, match="multiples of 4"):
        tsteps.CycleGANStep(
            ResnetGenerator(),
            ResnetGenerator(),
            PatchDiscriminator(),
            PatchDiscriminator(),
            tx,
            tx,
            (30, 30, 3),
            (30, 30, 3),
        )


def test_linear_decay_over_second_half():
    schedule = tsteps.linear_decay_schedule(2e-4, total_steps=200, decay_steps=100)
    np.testing.assert_allclose(
        [schedule(0), schedule(100), schedule(150), schedule(200)], [2e-4, 2e-4, 1e-4, 0.0], atol=1e-10
    )


# ----------------------------------------------------------------------------
# Data.


def _save(path, array):
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def test_data_errors_name_the_file(tmp_path):
    rng = np.random.default_rng(0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty}: the folder holds no PNG/JPEG"):
        tdata.load_image_folder_domain(str(empty), load_size=8, channels=3)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _save(mixed / "rgb.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    _save(mixed / "gray.png", rng.integers(0, 255, (8, 8, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"gray.png: the image has 1 channel\(s\).*expected 3"):
        tdata.load_image_folder_domain(str(mixed), load_size=8, channels=3)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    _save(pairs / "ok.png", rng.integers(0, 255, (8, 16, 3), dtype=np.uint8))
    _save(pairs / "odd.png", rng.integers(0, 255, (8, 15, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"odd.png: a side-by-side pair must be an even number of pixels wide"):
        tdata.load_side_by_side_pairs(str(pairs), load_size=8)
    (tmp_path / "A").mkdir(), (tmp_path / "B").mkdir()
    _save(tmp_path / "A" / "x.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    _save(tmp_path / "B" / "y.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"x.png: no partner named 'x.\*'"):
        tdata.load_translation_data(
            source="folders",
            paired=True,
            load_size=8,
            channels_a=3,
            channels_b=3,
            path_a=str(tmp_path / "A"),
            path_b=str(tmp_path / "B"),
        )
    _save(tmp_path / "B" / "x.jpg", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    _save(tmp_path / "A" / "y.png", np.zeros((8, 8, 3), np.uint8))
    a, b = tdata.load_translation_data(
        source="folders",
        paired=True,
        load_size=8,
        channels_a=3,
        channels_b=3,
        path_a=str(tmp_path / "A"),
        path_b=str(tmp_path / "B"),
    )
    np.testing.assert_array_equal(a[1], 0)  # A/y.png pairs with B/y.png, A/x.png with B/x.jpg
    np.testing.assert_array_equal(b[1], np.asarray(Image.open(tmp_path / "B" / "y.png")))
    with pytest.raises(FileNotFoundError, match=r"tfds build cycle_gan/horse2zebra --data_dir="):
        tdata.load_cycle_gan_tfds("horse2zebra", load_size=8, data_dir=str(tmp_path / "no_tfds"))
    # Through the loop: the data error comes before the workdir is made or anything compiles.
    from jaxgan.translation import orchestrate

    config = _tiny_config(
        "cyclegan", **{"data.source": "folders", "data.path_a": str(empty), "data.path_b": str(tmp_path / "B")}
    )
    with pytest.raises(ValueError, match="the folder holds no PNG/JPEG"):
        orchestrate.train_and_evaluate(config, str(tmp_path / "never_made"), mesh=make_mesh(jax.devices()[:1]))
    assert not (tmp_path / "never_made").exists()


def _prepare_cycle_gan(root, counts: dict[str, int]) -> dict[str, str]:
    """cycle_gan/horse2zebra prepared by TFDS' own builder from a local copy of its archive's layout
    (horse2zebra/<split>/*.png), as `tfds build` would, in ArrayRecord and in TFRecord: {format: data_dir}.
    Split s image i is a constant image of value CYCLE_GAN_VALUE[s] + i, of its own size."""
    from unittest import mock

    import tensorflow_datasets as tfds

    extracted = root / "extracted"
    for split, n in counts.items():
        (extracted / "horse2zebra" / split).mkdir(parents=True)
        for i in range(n):
            image = np.full((9 + i, 11 + 2 * i, 3), CYCLE_GAN_VALUE[split] + i, np.uint8)
            Image.fromarray(image).save(extracted / "horse2zebra" / split / f"{i}.png")
    data_dirs = {}
    for file_format in ("array_record", "tfrecord"):
        data_dirs[file_format] = str(root / f"tfds_{file_format}")
        with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", return_value=str(extracted)):
            builder = tfds.builder("cycle_gan/horse2zebra", data_dir=data_dirs[file_format], file_format=file_format)
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return data_dirs


CYCLE_GAN_VALUE = {"trainA": 10, "trainB": 20, "testA": 30, "testB": 40}


def test_cycle_gan_tfds_is_read_on_demand_from_array_record(tmp_path):
    """TFDS cycle_gan/<name> prepared in ArrayRecord: each split feeds its domain, read record by record."""
    from jaxgan.translation import orchestrate

    counts = {"trainA": 3, "trainB": 5, "testA": 2, "testB": 4}
    data_dirs = _prepare_cycle_gan(tmp_path, counts)
    data_dir = data_dirs["array_record"]

    def values(domain):  # each record is one constant image: its value says which file it came from
        images = domain[:]
        assert images.shape[1:] == (8, 8, 3) and (images == images[:, :1, :1]).all()
        return sorted(images[:, 0, 0, 0].tolist())

    a, b = tdata.load_cycle_gan_tfds("cycle_gan/horse2zebra", split="train", load_size=8, data_dir=data_dir)
    assert isinstance(a, tdata.RecordDomain) and a.shape == (3, 8, 8, 3) and b.shape == (5, 8, 8, 3)
    assert values(a) == [10, 11, 12] and values(b) == [20, 21, 22, 23, 24]
    config = _config("cyclegan")
    config.data.source, config.data.name, config.data.split, config.data.load_size = "tfds", "horse2zebra", "test", 8
    config.data.data_dir = data_dir
    a, b = orchestrate.load_data(config)  # the config path: data.source="tfds" with data.split="test"
    assert values(a) == [30, 31] and values(b) == [40, 41, 42, 43]
    with pytest.raises(ValueError, match=r"data.name='horse2zebr' is not a TFDS cycle_gan dataset.*'horse2zebra'"):
        tdata.load_cycle_gan_tfds("horse2zebr", load_size=8, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"data.split='trainA'.*set data.split='train' or 'test'"):
        tdata.load_cycle_gan_tfds("horse2zebra", split="trainA", load_size=8, data_dir=data_dir)
    tfrecord = data_dirs["tfrecord"]  # no random access: the command that prepares it for streaming
    with pytest.raises(
        FileNotFoundError, match=rf"tfds build cycle_gan --data_dir={tfrecord} --file_format=array_record"
    ):
        tdata.load_cycle_gan_tfds("horse2zebra", load_size=8, data_dir=tfrecord)
    config.model = "pix2pix"
    with pytest.raises(ValueError, match="datasets are unpaired; use source='side_by_side'"):
        orchestrate.load_data(config)


def test_side_by_side_pairs_and_paired_batches_align(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, 255, (2, 12, 12, 3), dtype=np.uint8)
    _save(tmp_path / "p.png", np.concatenate([left, right], axis=1))
    a, b = tdata.load_side_by_side_pairs(str(tmp_path), load_size=12)
    np.testing.assert_array_equal(a[0], left)
    np.testing.assert_array_equal(b[0], right)
    # Demo pairs: A is B's ITU-R 601 luma, and one crop/flip is applied to both halves of a pair.
    gray, color = tdata.demo_paired(load_size=40, patch=128, stride=96)
    batcher = tdata.TranslationBatcher(gray, color, batch_size=6, crop_size=32, seed=3, paired=True)
    batch = batcher.batch_at(5)
    luma = np.round((batch["b"] + 1) * 127.5) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose((batch["a"][..., 0] + 1) * 127.5, np.clip(np.round(luma), 0, 255), atol=1.01)
    again = tdata.TranslationBatcher(gray, color, batch_size=6, crop_size=32, seed=3, paired=True).batch_at(5)
    np.testing.assert_array_equal(batch["a"], again["a"])  # step-indexed: a resume sees the same batch


def test_demo_domains_differ_in_palette():
    a, b = tdata.demo_unpaired(load_size=16)
    assert a.shape[1:] == b.shape[1:] == (16, 16, 3) and len(a) == len(b) == 170
    # china.jpg (sky, stone) is much brighter than flower.jpg (dark leaves): a visible difference.
    assert a.mean() - b.mean() > 40


# ----------------------------------------------------------------------------
# Training runs through the loop, exact resume, triplet grids, translate.py.


def _config(name: str, preset: str = "demo") -> ml_collections.ConfigDict:
    """experiments/configs/<name>.py loaded by file path, as absl's config_flags loads it."""
    from absl import flags
    from ml_collections import config_flags

    path = os.path.join(CONFIGS, f"{name}.py")
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", path, flag_values=values)
    values(["launcher", f"--config={path}:{preset}"])
    return values.config


@pytest.mark.parametrize("name", ["cyclegan", "pix2pix"])
def test_paper_presets_load_by_path_and_match_the_papers(name):
    from jaxgan.translation import orchestrate

    config = _config(name, "paper")
    # Both papers: 286 -> 256 px crops, batch 1, Adam 2e-4 beta1 0.5, widths 64, the 70x70 PatchGAN
    # (Zhu et al. 2017 sec. 4 and appendix 7; Isola et al. 2017 sec. 3.3, 6.2).
    assert config.model == name
    assert (
        config.data.load_size,
        config.data.crop_size,
        config.batch_size,
        config.learning_rate,
        config.b1,
        config.g.features,
        config.d.features,
        config.d.num_layers,
    ) == (286, 256, 1, 2e-4, 0.5, 64, 64, 3)
    if name == "cyclegan":  # 9 blocks at 256 px, lambda 10, identity 0.5 lambda, 50 fakes, decay over the 2nd half
        assert (config.data.source, config.data.name) == ("tfds", "horse2zebra")
        assert (config.g.num_blocks, config.cycle_weight, config.identity_weight, config.pool_size) == (9, 10, 0.5, 50)
        assert 2 * config.decay_steps == config.train_steps
    else:  # U-Net 256 (8 levels) with dropout 0.5, L1 weight 100, constant rate
        assert (config.g.num_downs, config.g.dropout, config.l1_weight, config.decay_steps) == (8, 0.5, 100, 0)
    orchestrate.validate(config, 1)
    with pytest.raises(Exception, match="Unknown preset 'papr'"):
        _config(name, "papr")


def _tiny_config(name: str, **overrides) -> ml_collections.ConfigDict:
    config = _config(name)
    config.data.load_size, config.data.crop_size = CROP + 4, CROP
    config.g.features, config.d.features, config.d.num_layers = 4, 4, 2
    config.batch_size = 2
    config.num_sample_rows = 2
    config.log_every_steps = 2
    config.update_from_flattened_dict(overrides)  # {"g.num_blocks": 1, ...}
    return config


def _triplets(path) -> np.ndarray:
    """A triplet grid PNG back as float [rows, 3 columns, CROP, CROP, 3] in [0, 255] (CROP px cells, pad 2)."""
    grid = np.asarray(Image.open(path)).astype(np.float64)
    cell = CROP + 2
    rows = (grid.shape[0] - 2) // cell
    assert grid.shape == (rows * cell + 2, 3 * cell + 2, 3)
    return np.stack(
        [
            np.stack([grid[2 + r * cell : (r + 1) * cell, 2 + c * cell : (c + 1) * cell] for c in range(3)])
            for r in range(rows)
        ]
    )


def test_cyclegan_trains_resumes_exactly_and_translates(tmp_path):
    from jaxgan.translation import apply, orchestrate

    mesh = make_mesh(jax.devices()[:1])
    config = _tiny_config(
        "cyclegan",
        **{
            "g.num_blocks": 1,
            "g.features": 8,
            "d.features": 8,
            "batch_size": 4,
            "train_steps": 40,
            "decay_steps": 20,
            "learning_rate": 1e-3,
            "sample_every_steps": 40,
            "checkpoint_every_steps": 20,
        },
    )
    straight = orchestrate.train_and_evaluate(config, str(tmp_path / "straight"), mesh=mesh)
    orchestrate.train_and_evaluate(config, str(tmp_path / "resumed"), stop_at=20, mesh=mesh)
    resumed = orchestrate.train_and_evaluate(config, str(tmp_path / "resumed"), mesh=mesh)
    assert int(straight.step) == int(resumed.step) == 40
    for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(straight)), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(x, y)  # bit-exact: params, Adam, history buffers, step, rng

    # The cycle error |G_ba(G_ab(a)) - a| of the fixed sample rows, read back from the PNG triplets
    # (input | translated | reconstructed), falls; at init G ~ 0 so it is ~ |a|. (Measured: 88 -> 52 of 255.)
    samples = tmp_path / "straight" / "samples"
    cycle = lambda step: np.mean(
        [
            np.mean(np.abs(t[:, 2] - t[:, 0]))
            for t in (_triplets(samples / f"{name}_{step:06d}.png") for name in ("a2b", "b2a"))
        ]
    )
    assert cycle(40) < 0.7 * cycle(0), (cycle(0), cycle(40))
    lines = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
    assert [r["step"] for r in lines] == list(range(2, 41, 2)) and "train/cycle_a" in lines[0]

    # translate.py's engine: any accepted size, same names; equal to the loop's own translation of
    # the first sample row; never overwrites.
    rng = np.random.default_rng(0)
    src, out, back = tmp_path / "in", tmp_path / "out", tmp_path / "back"
    src.mkdir()
    first = _triplets(samples / "a2b_000040.png")[0]
    images = {"wide": rng.integers(0, 255, (CROP, CROP + 8, 3), dtype=np.uint8), "sample": first[0].astype(np.uint8)}
    for name, image in images.items():
        _save(src / f"{name}.png", image)
    translator = apply.load_translator(str(tmp_path / "straight"))
    assert translator.trained_steps == 40
    written = apply.translate_folder(translator, str(src), str(out))
    assert sorted(os.path.basename(p) for p in written) == ["sample.png", "wide.png"]
    assert np.asarray(Image.open(out / "wide.png")).shape == (CROP, CROP + 8, 3)
    assert np.abs(np.asarray(Image.open(out / "sample.png")).astype(float) - first[1]).max() <= 1
    apply.translate_folder(translator, str(out), str(back), direction="BtoA")  # the round trip B -> A
    assert sorted(os.listdir(back)) == ["sample.png", "wide.png"]
    assert np.asarray(Image.open(back / "wide.png")).shape == (CROP, CROP + 8, 3)
    assert np.abs(np.asarray(Image.open(back / "sample.png")).astype(float) - first[2]).max() <= 2

    before_bytes = (out / "wide.png").read_bytes()
    with pytest.raises(FileExistsError, match="nothing was written.*--overwrite"):
        apply.translate_folder(translator, str(back), str(out))
    assert (out / "wide.png").read_bytes() == before_bytes
    apply.translate_folder(translator, str(back), str(out), overwrite=True)
    assert (out / "wide.png").read_bytes() != before_bytes

    bad = tmp_path / "bad"
    bad.mkdir()
    _save(bad / "odd_size.png", rng.integers(0, 255, (CROP - 2, CROP, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=rf"odd_size.png: size {CROP - 2}x{CROP} cannot be halved enough times"):
        apply.translate_folder(translator, str(bad), str(tmp_path / "bad_out"))
    _save(bad / "odd_size.png", rng.integers(0, 255, (CROP, CROP, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"odd_size.png: the image has 1 channel"):
        apply.translate_folder(translator, str(bad), str(tmp_path / "bad_out"))
    assert not (tmp_path / "bad_out").exists()


def test_pix2pix_trains_and_refuses_bad_configs(tmp_path):
    from jaxgan.translation import apply, orchestrate

    mesh = make_mesh(jax.devices()[:1])
    config = _tiny_config(
        "pix2pix",
        **{
            "g.num_downs": 2,
            "g.features": 8,
            "d.features": 8,
            "d.num_layers": 1,
            "batch_size": 4,
            "train_steps": 30,
            "learning_rate": 1e-3,
            "log_every_steps": 6,
            "sample_every_steps": 30,
            "checkpoint_every_steps": 30,
        },
    )
    orchestrate.train_and_evaluate(config, str(tmp_path / "run"), mesh=mesh)
    # The L1 term falls (measured: 0.56 at step 6 -> 0.28 at step 30, in [-1, 1] units) ...
    l1s = [json.loads(line)["train/l1"] for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert len(l1s) == 5 and l1s[-1] < 0.6 * l1s[0], l1s
    # ... and so does |G(a) - b| on the fixed sample rows (gray input as RGB | translated | target),
    # read back from the PNG triplets (measured 84 -> 57 of 255).
    before, after = (_triplets(tmp_path / "run" / "samples" / f"a2b_{s:06d}.png") for s in (0, 30))
    np.testing.assert_array_equal(before[:, 0, ..., 0], before[:, 0, ..., 2])  # the gray input
    l1 = lambda t: np.mean(np.abs(t[:, 1] - t[:, 2]))
    assert l1(after) < l1(before), (l1(before), l1(after))
    translator = apply.load_translator(str(tmp_path / "run"))
    with pytest.raises(ValueError, match="pix2pix: it has one generator"):
        apply.translate_folder(translator, str(tmp_path), str(tmp_path / "x"), direction="BtoA")

    config.data.crop_size = CROP - 2
    with pytest.raises(ValueError, match=rf"crop_size.*{CROP - 2}x{CROP - 2} cannot be halved enough times.*of 4"):
        orchestrate.validate(config, 1)
    config.data.crop_size, config.batch_size = CROP, 3
    with pytest.raises(ValueError, match="multiple of the device count 2"):
        orchestrate.validate(config, 2)


def test_read_image_scales_16_bit_grayscale_instead_of_clipping(tmp_path):
    values = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 0, 257, ..., 65535: exact in 8 bits
    Image.fromarray(values).save(tmp_path / "a.png")  # PIL mode I;16
    got = tdata.read_image(str(tmp_path / "a.png"), channels=1)
    np.testing.assert_array_equal(got[..., 0], (values // 257).astype(np.uint8))  # round(v * 255 / 65535)
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tiff")  # PIL mode F
    with pytest.raises(ValueError, match="f.tiff: PIL mode 'F'"):
        tdata.read_image(str(tmp_path / "f.tiff"), channels=1)
