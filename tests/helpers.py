"""Small helpers shared by several test modules (importable as `tests.helpers`)."""

from __future__ import annotations

import jax
import numpy as np

from jaxgan.metrics import inception


def random_inception_variables(seed: int = 0, feature_dim: int = 64) -> dict:
    """Random but well-scaled FID Inception variables up to `feature_dim` (no download needed)."""
    shapes = inception.param_shapes(feature_dim)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            return (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:3]))).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 2.0, size=leaf.shape).astype(np.float32)
        return rng.normal(scale=0.1, size=leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)
