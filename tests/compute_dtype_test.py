"""config.model.dtype="bfloat16": bf16 compute, float32 state, results near float32's."""

import jax
import numpy as np
import pytest

import jaxgan
from experiments.configs import test as test_config
from jaxgan.config import build_networks, build_optimizers, build_step, validate


def _one_step(dtype: str):
    config = test_config.get_config()
    config.model.dtype = dtype
    generator, discriminator = build_networks(config)
    g_tx, d_tx = build_optimizers(config)
    step = build_step(config, generator, discriminator, g_tx, d_tx)
    images = np.random.default_rng(0).uniform(-1, 1, (1, 8, *step.sample_shape)).astype(np.float32)
    state = step.init_state(0, images[0])
    mesh = jaxgan.make_mesh(jax.devices()[:1])
    run = jaxgan.shard_map_step(step, mesh)
    state = jaxgan.replicate(state, mesh)
    hlo = run.compiled.lower(state, jaxgan.global_batch({"image": images}, mesh)).as_text()
    new_state, metrics = run(state, {"image": images})
    return hlo, jax.device_get(new_state), {k: float(v) for k, v in metrics.items()}


def test_bfloat16_computes_in_bf16_and_keeps_a_float32_state():
    hlo16, state16, metrics16 = _one_step("bfloat16")
    hlo32, _, metrics32 = _one_step("float32")
    convs16 = [line for line in hlo16.splitlines() if "stablehlo.convolution" in line]
    assert convs16 and all("bf16" in line for line in convs16)
    assert "bf16" not in hlo32
    dtypes = {np.dtype(x.dtype) for x in jax.tree_util.tree_leaves((state16.g, state16.d, state16.g_ema_params))}
    assert dtypes <= {np.dtype(np.float32), np.dtype(np.int32)}, dtypes
    for name in ("d_loss", "g_loss"):  # bf16 keeps ~3 significant digits
        assert np.isfinite(metrics16[name])
        np.testing.assert_allclose(metrics16[name], metrics32[name], rtol=3e-2, err_msg=name)


def test_unknown_compute_dtype_fails_naming_the_fix():
    config = test_config.get_config()
    config.model.dtype = "float16"
    with pytest.raises(ValueError, match="loss scaling"):
        validate(config, 1)
