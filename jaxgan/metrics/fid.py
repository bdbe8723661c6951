"""Frechet Inception Distance, computed exactly as pytorch-fid does, sharded over devices.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", arXiv:1706.08500, eq. 6) is the Frechet distance
between Gaussians fitted to the 2048-d Inception pool features of real and
generated images. Reference implementation matched: pytorch-fid
(mseitzer/pytorch-fid, `fid_score.py` + `inception.py`):

    uint8 NHWC -> / 255 -> bilinear resize to 299x299 (torch F.interpolate,
    align_corners=False, no antialias) -> 2x - 1 -> FID Inception (TF
    inception-2015-12-05 weights) -> 2048-d features -> float64 mean and
    covariance (ddof=1) -> Frechet distance.

`resize="clean"` follows clean-fid instead (Parmar et al. 2022, arXiv:2104.11222):
PIL bicubic with antialiasing on the host, then (x - 128) / 128 as the TF graph
and clean-fid's TorchScript Inception normalize. The two modes give different
numbers; every result carries its `FIDProtocol` so they are never mixed up.

Feature extraction is one jitted function per input size, run on a 1-D mesh over
all devices on the axis `jaxgan.common.DATA_AXIS`: each batch is padded to a
fixed multiple of the device count (one compilation), sharded, and the padding
rows dropped. Statistics stream batch by batch in float64 (`stats.StreamingStats`).

On CPU the function is compiled with `CPU_COMPILER_OPTIONS`: XLA's YNNPACK
fusions (on by default in jax 0.10) run several of this network's convolutions
at a fraction of the speed of XLA's own (Eigen) convolutions. Turning them off
makes extraction faster per CPU-second with the same features to float
rounding (tools/bench.py --only=fid; figures:
experiments/results/fid_inception_cpu/README.md).

Reference statistics are cached as .npz under a sha256 of everything that
determines them (dataset, split, resolution, resize mode, n, feature dim,
weights); a second call returns them without touching the images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from typing import Any, Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan.common import DATA_AXIS
from jaxgan.metrics import inception, resize as resize_lib, stats, weights

log = logging.getLogger(__name__)

RESIZE_MODES = ("pytorch_fid", "clean")
# Per-compilation XLA options for CPU devices (module docstring); no effect on other backends.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
INCEPTION_SIZE = 299
STATS_FORMAT_VERSION = 1

Images = Any  # uint8 [N, H, W, 3|1] array, or an iterable of such batches, or a zero-arg callable returning one


@dataclasses.dataclass(frozen=True)
class FIDProtocol:
    """Everything a FID number depends on; report it with the number."""

    weights_id: str  # "tf-inception-2015-12-05" (the known trunk hash), else e.g. "unverified:<16 hex>"
    weights_sha256: str  # trunk content hash (first 16 hex digits)
    resize: str  # "pytorch_fid" (torch bilinear) or "clean" (PIL bicubic, antialiased)
    feature_dim: int
    n_real: int
    n_fake: int
    reference: str  # what the real statistics describe

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FIDResult:
    fid: float
    protocol: FIDProtocol

    def as_dict(self) -> dict:
        return {"fid": self.fid, **self.protocol.as_dict()}


# ---------------------------------------------------------------- input checks


def check_images(images: Any, *, what: str = "images") -> np.ndarray:
    """A uint8 [b, H, W, 3] numpy batch; 1-channel input is repeated to 3 (logged)."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TypeError(
            f"FID takes uint8 {what} [N, H, W, 3] in [0, 255], got {x.dtype}. Quantize generator output first "
            "(jaxgan.common.to_uint8 maps [-1, 1] to uint8), as saved PNGs are in pytorch-fid."
        )
    if x.ndim == 3:
        raise ValueError(f"{what} must be [N, H, W, C], got {x.shape}; add a batch axis (x[None]) for one image.")
    if x.ndim != 4:
        raise ValueError(f"{what} must be a 4-D uint8 array [N, H, W, C], got shape {x.shape}.")
    if x.shape[-1] not in (1, 3):
        hint = " It looks channels-first (NCHW); transpose to NHWC." if x.shape[1] in (1, 3) else ""
        raise ValueError(f"{what} must have 3 (RGB) or 1 (gray) channels last, got shape {x.shape}.{hint}")
    if x.shape[-1] == 1:
        log.info("FID: %s have 1 channel; repeating it to RGB, as pytorch-fid's PIL convert('RGB') does.", what)
        x = np.repeat(x, 3, axis=-1)
    return x


def _iter_batches(images: Images, batch_size: int, what: str) -> Iterator[np.ndarray]:
    if callable(images):
        images = images()
    if isinstance(images, (np.ndarray, jax.Array)):
        x = check_images(images, what=what)
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size]
        return
    if isinstance(images, (str, bytes, dict)) or not isinstance(images, Iterable):
        raise TypeError(
            f"{what} must be a uint8 array [N, H, W, C] or an iterable of such batches, got {type(images).__name__}."
        )
    for batch in images:
        if isinstance(batch, dict) and "image" in batch:
            batch = batch["image"]
        x = check_images(batch, what=what)
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size]


def _first_batches(images: Images, batch_size: int, max_images: int | None, what: str) -> Iterator[np.ndarray]:
    """The non-empty batches of `_iter_batches` up to `max_images` images in all (None: every one), stopping
    there without reading further; a ValueError if the source gives fewer."""
    n = 0
    for batch in _iter_batches(images, batch_size, what):
        if max_images is not None:
            batch = batch[: max_images - n]
        if len(batch):
            n += len(batch)
            yield batch
        if max_images is not None and n >= max_images:
            return
    if max_images is not None and n < max_images:
        raise ValueError(f"Asked for {max_images} {what} but the source gave only {n}.")


# ---------------------------------------------------------------- feature extraction


class InceptionFeatures:
    """Jitted, device-sharded FID Inception features of uint8 images.

    variables: from `weights.load_inception_params` (loaded, and fetched on first
      use, when None); weights_meta: its metadata (identifies the weights).
    resize: "pytorch_fid" or "clean" (see module docstring).
    feature_dim: 2048 for FID; 64/192/768 for cheap checks.
    batch_size: images per device call, rounded up to a multiple of the device count.
    devices: the mesh's devices (default: all).
    compiler_options: per-compilation XLA options; "auto": `CPU_COMPILER_OPTIONS` on
      CPU devices, none elsewhere; {} for XLA's defaults.
    """

    def __init__(
        self,
        variables: dict | None = None,
        *,
        weights_meta: dict | None = None,
        resize: str = "pytorch_fid",
        feature_dim: int = 2048,
        batch_size: int = 50,
        devices: list | None = None,
        weights_path: str | os.PathLike | None = None,
        compiler_options: dict | str = "auto",
    ):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}.")
        if feature_dim not in inception.FEATURE_DIMS:
            raise ValueError(f"feature_dim must be one of {inception.FEATURE_DIMS}, got {feature_dim}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if variables is None:
            variables, weights_meta = weights.load_inception_params(weights_path)
        self.weights_meta = dict(weights_meta or {})
        self.resize = resize
        self.feature_dim = feature_dim
        devices = list(devices) if devices is not None else jax.devices()
        self.mesh = Mesh(np.array(devices), (DATA_AXIS,))
        n_dev = len(devices)
        self.batch_size = -(-batch_size // n_dev) * n_dev
        replicated = NamedSharding(self.mesh, P())
        self._batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
        trunk = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
        self._variables = jax.device_put(trunk, replicated)
        model = inception.InceptionV3(feature_dim=feature_dim)
        size = (INCEPTION_SIZE, INCEPTION_SIZE)

        if resize == "pytorch_fid":

            def fn(v, x):  # x: uint8 [B, H, W, 3]
                x = x.astype(jnp.float32) / 255.0
                x = resize_lib.resize_bilinear(x, size)
                return model.apply(v, 2.0 * x - 1.0)
        else:

            def fn(v, x):  # x: float32 [B, 299, 299, 3] in [0, 255], resized on the host
                return model.apply(v, (x - 128.0) / 128.0)

        self._jit = lambda options: jax.jit(
            fn,
            in_shardings=(replicated, self._batch_sharding),
            out_shardings=self._batch_sharding,
            compiler_options=options,
        )
        if compiler_options == "auto":
            compiler_options = CPU_COMPILER_OPTIONS if all(d.platform == "cpu" for d in devices) else {}
        if not isinstance(compiler_options, dict):
            raise TypeError(f"compiler_options must be a dict or 'auto', got {compiler_options!r}.")
        self._fn = self._jit(dict(compiler_options) or None)

    @property
    def weights_id(self) -> str:
        """The metadata's id, except that the known id is only reported for the known trunk hash."""
        wid = str(self.weights_meta.get("weights_id", "unknown"))
        if wid == weights.WEIGHTS_ID:
            return weights.weights_id_for(str(self.weights_meta.get("trunk_sha256", "unknown")))
        return wid

    @property
    def weights_sha256(self) -> str:
        return str(self.weights_meta.get("trunk_sha256", "unknown"))[:16]

    def __call__(self, images: Any) -> np.ndarray:
        """float32 [b, feature_dim] features of one uint8 batch [b, H, W, 3|1]."""
        x = check_images(images)
        return np.concatenate(
            [self._run(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
            or [np.zeros((0, self.feature_dim), np.float32)]
        )

    def _run(self, x: np.ndarray) -> np.ndarray:
        b = x.shape[0]
        if self.resize == "clean":
            x = resize_lib.resize_clean(x, (INCEPTION_SIZE, INCEPTION_SIZE))
        pad = self.batch_size - b  # a fixed batch shape: one compilation per input size
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        x = jax.device_put(x, self._batch_sharding)
        try:
            out = self._fn(self._variables, x)
        except jax.errors.JaxRuntimeError as e:  # an XLA without the option: compile with the defaults
            if not any(k in str(e) for k in CPU_COMPILER_OPTIONS):
                raise
            log.warning("FID: this XLA rejects %s (%s); compiling with the default options.", CPU_COMPILER_OPTIONS, e)
            self._fn = self._jit(None)
            out = self._fn(self._variables, x)
        return np.asarray(out)[:b]

    def stats(self, images: Images, *, max_images: int | None = None, what: str = "images") -> stats.FeatureStats:
        """Streaming float64 mean/covariance of the features of all (or the first max_images) images."""
        acc = stats.StreamingStats(self.feature_dim)
        for batch in _first_batches(images, self.batch_size, max_images, what):
            acc.add(self._run(batch))
        if acc.n < 2:
            raise ValueError(f"FID needs at least 2 {what}, got {acc.n} (use thousands: 10k or 50k is standard).")
        if acc.n < self.feature_dim:
            log.warning(
                "FID: only %d %s for %d-d features: the covariance is singular and FID is biased upward; "
                "use >= 10k for reportable numbers.",
                acc.n,
                what,
                self.feature_dim,
            )
        return acc.finalize()


def extract_features(
    extractor: Callable[[np.ndarray], np.ndarray],
    images: Images,
    *,
    max_images: int | None = None,
    what: str = "images",
) -> np.ndarray:
    """`extractor`'s features [n, D] of all (or the first max_images) images, extracted batch by batch:
    from an iterable of batches (or a callable returning one) only one batch is held at a time."""
    out = [
        np.asarray(extractor(batch))
        for batch in _first_batches(images, getattr(extractor, "batch_size", 256), max_images, what)
    ]
    if not out:
        raise ValueError(f"No {what} to extract features from.")
    return np.concatenate(out)


# ---------------------------------------------------------------- reference statistics cache


def reference_key(
    *,
    dataset: str,
    split: str,
    resolution: int | tuple,
    resize: str,
    n: int | None,
    feature_dim: int,
    weights_sha256: str,
    options: dict | None = None,
) -> tuple[str, dict]:
    """(sha256 hex, the JSON-able spec it hashes) for a reference statistics file."""
    spec = {
        "format": STATS_FORMAT_VERSION,
        "dataset": str(dataset),
        "split": str(split),
        "resolution": list(resolution) if isinstance(resolution, (tuple, list)) else int(resolution),
        "resize": resize,
        "n": "all" if n is None else int(n),
        "feature_dim": int(feature_dim),
        "weights_sha256": weights_sha256,
        "options": options or {},
    }
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest(), spec


def save_stats(path: str | os.PathLike, s: stats.FeatureStats, spec: dict) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            n=np.int64(s.n),
            mean=s.mean,
            cov=s.cov,
            spec=np.frombuffer(json.dumps(spec, sort_keys=True).encode(), np.uint8),
        )
    os.replace(tmp, path)
    return path


def load_stats(path: str | os.PathLike) -> tuple[stats.FeatureStats, dict]:
    """(stats, spec) from a .npz written by `save_stats` (mu/sigma .npz from pytorch-fid also load)."""
    with np.load(path, allow_pickle=False) as z:
        if "mu" in z.files:  # pytorch-fid --save-stats format
            return stats.FeatureStats(-1, z["mu"].astype(np.float64), z["sigma"].astype(np.float64)), {}
        spec = json.loads(z["spec"].tobytes().decode())
        return stats.FeatureStats(int(z["n"]), z["mean"], z["cov"]), spec


def reference_stats(
    extractor: InceptionFeatures,
    images: Images,
    *,
    dataset: str,
    split: str,
    resolution: int | tuple,
    n: int | None = None,
    options: dict | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[stats.FeatureStats, str]:
    """Real-image statistics, cached under a hash of what determines them.

    dataset/split/resolution/options describe `images` (the caller vouches for
    them: they name the cache entry); n: how many images (None: all). Pass images
    as a zero-arg callable to skip even building the iterator on a cache hit.
    Returns (stats, a one-line description for the protocol).
    """
    key, spec = reference_key(
        dataset=dataset,
        split=split,
        resolution=resolution,
        resize=extractor.resize,
        n=n,
        feature_dim=extractor.feature_dim,
        weights_sha256=extractor.weights_sha256,
        options=options,
    )
    path = weights.cache_dir(cache_dir) / "fid_stats" / f"{dataset}-{split}-{key[:20]}.npz"
    description = f"{dataset}/{split} {resolution}px n={'all' if n is None else n} [{key[:12]}]"
    if path.is_file():
        try:
            s, saved = load_stats(path)
            if saved == spec:
                return s, description
            log.warning("FID: %s does not match its key; recomputing.", path)
        except Exception as e:  # a corrupt cache entry is recomputed, never trusted
            log.warning("FID: unreadable reference statistics %s (%s); recomputing.", path, e)
    log.info("FID: computing reference statistics for %s -> %s", description, path)
    s = extractor.stats(images, max_images=n, what="real images")
    save_stats(path, s, spec)
    return s, description


# ---------------------------------------------------------------- FID


def fid_from_stats(
    real: stats.FeatureStats, fake: stats.FeatureStats, *, extractor: InceptionFeatures, reference: str
) -> FIDResult:
    """FID between two statistics computed with `extractor`'s protocol."""
    value = stats.frechet_distance(real.mean, real.cov, fake.mean, fake.cov)
    protocol = FIDProtocol(
        weights_id=extractor.weights_id,
        weights_sha256=extractor.weights_sha256,
        resize=extractor.resize,
        feature_dim=extractor.feature_dim,
        n_real=real.n,
        n_fake=fake.n,
        reference=reference,
    )
    return FIDResult(value, protocol)


def fid(
    fake_images: Images,
    real: Images | stats.FeatureStats,
    *,
    extractor: InceptionFeatures | None = None,
    n_fake: int | None = None,
    n_real: int | None = None,
    reference: str = "images given",
) -> FIDResult:
    """FID of fake images against real images (or precomputed real `FeatureStats`).

    Images: uint8 [N, H, W, 3|1] arrays or iterables of batches. n_fake/n_real
    take the first n (None: all). The result's protocol names the weights, the
    resize mode, both sample counts and `reference`.
    """
    extractor = extractor or InceptionFeatures()
    if isinstance(real, stats.FeatureStats):
        if real.mean.shape != (extractor.feature_dim,):
            raise ValueError(
                f"The real statistics are {real.mean.shape[0]}-d, the extractor gives "
                f"{extractor.feature_dim}-d features."
            )
        real_stats = real
    else:
        real_stats = extractor.stats(real, max_images=n_real, what="real images")
    fake_stats = extractor.stats(fake_images, max_images=n_fake, what="fake images")
    return fid_from_stats(real_stats, fake_stats, extractor=extractor, reference=reference)


def images_from_sampler(sample_fn: Callable[[int, int], Any], n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Batches of uint8 images from `sample_fn(start, count)` (e.g. a seeded generator), n in all."""
    for start in range(0, n, batch_size):
        yield np.asarray(sample_fn(start, min(batch_size, n - start)))
