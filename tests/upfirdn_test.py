"""upfirdn2d vs scipy.signal.upfirdn (the same up / FIR / down operation, 1-D, applied per axis)."""

import numpy as np
import pytest
import scipy.signal

from jaxgan import upfirdn


def _scipy_upfirdn2d(x, f1, up, down):
    """Full convolution along H then W with scipy's 1-D upfirdn (zeros between samples)."""
    y = np.apply_along_axis(lambda v: scipy.signal.upfirdn(f1, v, up, down), 1, x)
    return np.apply_along_axis(lambda v: scipy.signal.upfirdn(f1, v, up, down), 2, y)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2)])
@pytest.mark.parametrize("separable", [True, False])
def test_upfirdn2d_matches_scipy(up, down, separable):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
    f1 = np.array([1.0, 2.0, 4.0, -1.0], np.float32)  # asymmetric: catches convolution vs correlation
    f = upfirdn.setup_filter(f1, normalize=False, separable=separable)
    k = len(f1)
    got = np.asarray(upfirdn.upfirdn2d(x, f, up=up, down=down, padding=k - 1))
    want = _scipy_upfirdn2d(x, f1, up, down)
    # jaxgan's upsampled signal ends with up - 1 extra zeros, so it has a few more outputs at the end.
    np.testing.assert_allclose(got[:, : want.shape[1], : want.shape[2]], want, rtol=1e-5, atol=1e-5)


def test_negative_padding_crops_and_flip_filter_correlates():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    f = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    got = np.asarray(upfirdn.upfirdn2d(x, f, padding=(-1, 0, 0, -1), flip_filter=True))
    cropped = x[:, :5, 1:]  # y1 = -1 crops the bottom row, x0 = -1 the left column
    want = np.stack([scipy.signal.correlate2d(cropped[0, :, :, c], f, mode="valid") for c in range(2)], axis=-1)[None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bilinear_resampling_keeps_size_ratio_and_dc_gain():
    f = upfirdn.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(f, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-6)
    ones = np.ones((1, 8, 8, 1), np.float32)
    up = np.asarray(upfirdn.upsample2d(ones, f))
    down = np.asarray(upfirdn.downsample2d(ones, f))
    assert up.shape == (1, 16, 16, 1) and down.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(up[:, 2:-2, 2:-2], 1.0, rtol=1e-6)  # away from the zero border
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], 1.0, rtol=1e-6)
    # A 1-D ramp is linear, so bilinear [1, 3, 3, 1] upsampling reproduces it in the interior:
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None, None], (1, 1, 8, 1))
    up = np.asarray(upfirdn.upsample2d(ramp, f))[0, 2:-2, 4, 0]
    np.testing.assert_allclose(np.diff(up), 0.5, rtol=1e-5)
