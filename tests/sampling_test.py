"""Latents for sampling: the untruncated draw and BigGAN's truncation trick, against scipy."""

import math

import jax
import numpy as np
import pytest
from scipy import stats

from jaxgan.sampling import fixed_latents


def test_truncated_latents_follow_the_truncated_normal():
    """Brock et al. 2019 sec. 3.1: each coordinate is N(0, 1) conditioned on |z| <= t."""
    t = 0.7
    z = np.asarray(fixed_latents(3, 2000, 8, truncation=t)).ravel()
    assert np.abs(z).max() <= t
    reference = stats.truncnorm(-t, t)
    assert stats.kstest(z, reference.cdf).pvalue > 1e-3
    assert stats.kstest(z, stats.norm.cdf).pvalue < 1e-6  # the untruncated N(0, 1) is rejected
    np.testing.assert_allclose(z.var(), reference.var(), rtol=0.05)


def test_untruncated_latents_are_standard_normal_draws_per_index():
    key = jax.random.PRNGKey(5)
    want = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (4,))) for i in range(3, 6)])
    np.testing.assert_array_equal(np.asarray(fixed_latents(5, 3, 4, 3)), want)


def test_truncated_latent_i_does_not_depend_on_how_many_are_drawn():
    whole = np.asarray(fixed_latents(1, 20, 6, truncation=1.5))
    np.testing.assert_array_equal(np.asarray(fixed_latents(1, 10, 6, 5, truncation=1.5)), whole[5:15])
    assert not np.array_equal(whole, np.asarray(fixed_latents(1, 20, 6, truncation=1.0)))


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "0.5"])
def test_bad_truncation_is_refused(bad):
    with pytest.raises(ValueError, match="truncation"):
        fixed_latents(0, 2, 3, truncation=bad)


def test_truncation_leaves_infogan_code_coordinates_untruncated():
    """BigGAN truncates the noise, not the class: an InfoGAN G's code coordinates keep their N(0, 1) draws,
    so its codes stay uniform; the noise coordinates are the truncated draws."""
    from jaxgan import latent
    from jaxgan.nets import DCGANGenerator
    from jaxgan.sampling import generator_latents

    g = DCGANGenerator(latent_dim=12, image_size=8, latent_codes=latent.make_codes((10,), 2))
    z = np.asarray(generator_latents(g, 4, 3000, truncation=0.5))
    full = np.asarray(fixed_latents(4, 3000, 12))
    np.testing.assert_array_equal(z[:, :3], full[:, :3])
    np.testing.assert_array_equal(z[:, 3:], np.asarray(fixed_latents(4, 3000, 12, truncation=0.5))[:, 3:])
    ids = np.asarray(latent.codes_from_latent(z, g.latent_codes)[0])[:, 0]
    assert stats.chisquare(np.bincount(ids, minlength=10)).pvalue > 1e-3  # still uniform over the 10 values
    plain = DCGANGenerator(latent_dim=12, image_size=8)
    np.testing.assert_array_equal(
        np.asarray(generator_latents(plain, 4, 5, truncation=0.5)), np.asarray(fixed_latents(4, 5, 12, truncation=0.5))
    )
