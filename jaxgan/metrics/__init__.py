"""Measurement: FID with the real Inception weights, and other GAN metrics.

Modules (import the one you need; this package imports nothing heavy):

- `stats`: streaming float64 feature mean/covariance (`FeatureStats`,
  `StreamingStats`) and the Frechet distance between two Gaussians.
- `inception`: the FID Inception network (TF inception-2015-12-05) in Flax.
- `weights`: reads the real Inception weights offline, without torch, into a
  cached Flax params file.
- `fid`: FID exactly as pytorch-fid computes it, with a cached reference.

Importing `jaxgan.metrics` never imports TensorFlow, TFDS, Orbax or CLU and never
fetches anything; weights are fetched on first use of `load_inception_params`.
"""

from __future__ import annotations
