"""InfoGAN's latent codes (jaxgan.latent), its loss (regularizers.info_loss) and the Q head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgan import latent, regularizers
from jaxgan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

CODES = latent.make_codes((10, 3), 2)


def test_codes_have_infogans_priors():
    """Categorical codes uniform on 0..K-1 and continuous codes U(-1, 1), from z ~ N(0, I) (scipy's tests)."""
    z = jax.random.normal(jax.random.key(0), (40_000, 8))
    ids, cont = (np.asarray(a) for a in latent.codes_from_latent(z, CODES))
    assert ids.shape == (40_000, 2) and cont.shape == (40_000, 2)
    for k, size in enumerate(CODES.categorical):
        counts = np.bincount(ids[:, k], minlength=size)
        assert len(counts) == size and stats.chisquare(counts).pvalue > 1e-3
    for j in range(2):
        assert stats.kstest(cont[:, j], stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3
    # The codes are the normal CDF of z's first coordinates (hand formula, scipy's CDF).
    u = stats.norm.cdf(np.asarray(z[:, :4], np.float64))
    np.testing.assert_array_equal(ids[:, 0], np.floor(10 * u[:, 0]).astype(int))
    np.testing.assert_allclose(cont, 2 * u[:, 2:] - 1, atol=1e-5)


def test_generator_input_is_noise_then_one_hots_then_continuous_codes():
    z = jax.random.normal(jax.random.key(1), (5, 8))
    x = np.asarray(latent.generator_input(z, CODES))
    ids, cont = (np.asarray(a) for a in latent.codes_from_latent(z, CODES))
    assert x.shape == (5, 4 + 10 + 3 + 2)
    np.testing.assert_array_equal(x[:, :4], np.asarray(z[:, 4:]))
    np.testing.assert_array_equal(x[:, 4:14], np.eye(10)[ids[:, 0]])
    np.testing.assert_array_equal(x[:, 14:17], np.eye(3)[ids[:, 1]])
    np.testing.assert_allclose(x[:, 17:], cont)
    assert latent.generator_input(z, latent.LatentCodes()) is z


def test_latent_with_codes_sets_exactly_the_chosen_codes():
    z = jax.random.normal(jax.random.key(2), (30, 8))
    chosen = np.stack([np.arange(30) % 10, np.arange(30) % 3], axis=1)
    cont = np.linspace(-0.99, 0.99, 60).reshape(30, 2)
    z2 = latent.latent_with_codes(z, CODES, chosen, cont)
    ids, c2 = latent.codes_from_latent(z2, CODES)
    np.testing.assert_array_equal(np.asarray(ids), chosen)
    np.testing.assert_allclose(np.asarray(c2), cont, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(z2[:, 4:]), np.asarray(z[:, 4:]))  # the noise is kept


@pytest.mark.parametrize(
    "args, match",
    [
        (((1,), 0), "sizes >= 2"),
        (((10,), -1), "continuous"),
        (((10, 10), 0, 2), "no noise"),
    ],
)
def test_bad_codes_fail_clearly(args, match):
    categorical, continuous, *latent_dim = args
    with pytest.raises(ValueError, match=match):
        latent.make_codes(categorical, continuous, latent_dim=latent_dim[0] if latent_dim else None)


def test_info_loss_equals_numpy_cross_entropy_plus_gaussian_nll():
    rng = np.random.RandomState(0)
    q = rng.normal(size=(6, 15)).astype(np.float32)
    ids = np.stack([rng.randint(0, 10, 6), rng.randint(0, 3, 6)], axis=1)
    cont = rng.uniform(-1, 1, (6, 2)).astype(np.float32)

    def ce(logits, y):
        logits = logits.astype(np.float64)
        return np.log(np.exp(logits).sum(1)) - logits[np.arange(len(y)), y]

    expected = np.mean(
        ce(q[:, :10], ids[:, 0])
        + ce(q[:, 10:13], ids[:, 1])
        + 0.5 * np.sum((q[:, 13:].astype(np.float64) - cont) ** 2, axis=1)
    )
    got = regularizers.info_loss(jnp.asarray(q), jnp.asarray(ids), jnp.asarray(cont), (10, 3))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        regularizers.info_loss(jnp.asarray(q[:, :14]), jnp.asarray(ids), jnp.asarray(cont), (10, 3))


@pytest.mark.parametrize("pack", [1, 2])
def test_q_head_gives_one_row_per_sample_even_when_packed(pack):
    """Packed D: Q sees each tuple once and predicts every member's codes, row i for sample i."""
    d = DCGANDiscriminator(image_size=8, ndf=4, pack=pack, info_outputs=CODES.q_outputs, bn_axis_name=None)
    x = jax.random.normal(jax.random.key(3), (4, 8, 8, 3))
    variables = d.init(jax.random.key(0), x, train=False)
    logits, inter = d.apply(variables, x, train=False, mutable=["intermediates"])
    q = inter["intermediates"]["info_outputs"][0]
    assert logits.shape == (4 // pack,) and q.shape == (4, CODES.q_outputs)


def test_generator_reads_its_codes_from_z():
    """Changing only a categorical code coordinate changes G's output; z of the wrong width fails clearly."""
    g = DCGANGenerator(latent_dim=8, image_size=8, ngf=4, latent_codes=CODES, bn_axis_name=None)
    z = jax.random.normal(jax.random.key(4), (2, 8))
    variables = g.init(jax.random.key(0), z, train=False)
    same_codes = z.at[:, 0].add(1e-4)  # (almost surely) the same categorical code: near-identical output
    other_code = latent.latent_with_codes(
        z, CODES, (np.asarray(latent.codes_from_latent(z, CODES)[0]) + [[5, 0]]) % [10, 3]
    )
    x, x_same, x_other = (g.apply(variables, v, train=False) for v in (z, same_codes, other_code))
    np.testing.assert_allclose(x, x_same, atol=1e-6)
    assert float(jnp.max(jnp.abs(x - x_other))) > 1e-3
    with pytest.raises(ValueError, match=r"expects latents \[B, 8\]"):
        g.apply(variables, z[:, :6], train=False)
    m = MLPGenerator(latent_dim=8, out_shape=(2,), latent_codes=CODES)
    assert m.init(jax.random.key(0), z, train=False)["params"]["Dense_0"]["kernel"].shape[0] == 4 + 13 + 2
    assert MLPDiscriminator(info_outputs=CODES.q_outputs).info_outputs == 15


@pytest.mark.parametrize(
    "categorical, continuous, match",
    [
        ("ten", 0, "comma-separated code sizes"),
        ("10,1", 0, "sizes >= 2"),
        ("", -2, "continuous"),
    ],
)
def test_config_with_malformed_codes_fails_before_building(categorical, continuous, match):
    from jaxgan import config as config_lib

    c = config_lib.base_config()
    c.model.info_categorical, c.model.info_continuous = categorical, continuous
    with pytest.raises(ValueError, match=match):
        config_lib.validate(c, 1)
    c.model.info_categorical, c.model.info_continuous = "10,10", 1
    g, d = config_lib.build_networks(c)
    assert g.latent_codes == latent.LatentCodes((10, 10), 1) and d.info_outputs == 21
