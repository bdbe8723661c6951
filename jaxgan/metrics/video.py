"""Video GAN metrics: per-frame Frechet distance and a temporal (motion) score.

Per-frame Frechet distance: FID's formula (Heusel et al. 2017, arXiv:1706.08500,
eq. 6) between Gaussians fitted to the features of every frame of the
generated and of the real clips, as MoCoGAN and TGAN report per-frame image
quality alongside video scores. Features: the shipped digits classifier's 64-d
penultimate layer (`jaxgan.metrics.digits_classifier`, fast, for moving
digits) or the FID Inception's 2048-d pool features (`jaxgan.metrics.fid`,
for real video; slow on a CPU: experiments/results/fid_inception_cpu/), or any
callable.

Temporal score: the per-clip motion m = mean over t, pixels, channels of
|x_{t+1} - x_t| / 255 (uint8 frames), summarized over clips by its mean and its
spread (standard deviation, ddof 0), for generated and real clips, and the
absolute differences of both. A G whose clips freeze has m ~ 0; one whose
frames flicker independently has m far above the data's. Frame quality and
motion are separate numbers: neither replaces a learned video metric such as
FVD (Unterthiner et al. 2018), which needs the I3D network (not shipped).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxgan.metrics import stats

FeatureFn = Callable[[np.ndarray], np.ndarray]  # uint8 frames [N, H, W, C] -> features [N, D]
VideoSampleFn = Callable[[int, int], np.ndarray]  # (num, seed) -> uint8 clips [num, T, H, W, C]


def check_videos(videos: Any, *, what: str = "videos") -> np.ndarray:
    """uint8 [N, T, H, W, C] (C in 1, 3, T >= 2) as numpy, or a clear error."""
    x = np.asarray(videos)
    if x.dtype != np.uint8:
        raise TypeError(
            f"{what} must be uint8 [N, T, H, W, C] in [0, 255], got {x.dtype}; quantize with jaxgan.common.to_uint8."
        )
    if x.ndim != 5 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{what} must be uint8 [N, T, H, W, C] with C = 1 or 3 (channels last), got shape "
            f"{x.shape}; a single clip needs a leading batch axis."
        )
    if x.shape[1] < 2:
        raise ValueError(f"{what} have {x.shape[1]} frame(s); motion needs T >= 2.")
    return x


def frames_of(videos: np.ndarray) -> np.ndarray:
    """[N, T, H, W, C] -> [N * T, H, W, C], clip by clip."""
    return videos.reshape(-1, *videos.shape[2:])


def clip_motion(videos: Any) -> np.ndarray:
    """Per-clip motion [N]: mean |x_{t+1} - x_t| / 255 over frames, pixels and channels (float64)."""
    x = check_videos(videos).astype(np.float64) / 255.0
    return np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3, 4))


def temporal_score(fake_videos: Any, real_videos: Any) -> dict[str, float]:
    """Motion of generated vs real clips: each side's mean and spread (std over clips), and the gaps."""
    fake, real = clip_motion(fake_videos), clip_motion(real_videos)
    out = {
        "motion_fake": fake.mean(),
        "motion_real": real.mean(),
        "motion_spread_fake": fake.std(),
        "motion_spread_real": real.std(),
    }
    out["motion_gap"] = abs(out["motion_fake"] - out["motion_real"])
    out["motion_spread_gap"] = abs(out["motion_spread_fake"] - out["motion_spread_real"])
    return {k: float(v) for k, v in out.items()}


def frame_stats(videos: Any, features: FeatureFn, *, what: str = "videos") -> stats.FeatureStats:
    """Mean and covariance (float64) of the features of every frame of every clip."""
    x = frames_of(check_videos(videos, what=what))
    if len(x) < 2:
        raise ValueError(f"The Frechet distance needs at least 2 frames of {what}, got {len(x)}.")
    return stats.feature_stats(stats.feature_matrix(features(x), f"features of {what}"))


def frame_frechet_distance(fake_videos: Any, real_videos: Any, *, features: FeatureFn) -> float:
    """The Frechet distance between the per-frame feature Gaussians of two sets of clips."""
    return stats.frechet_distance_from_stats(
        frame_stats(fake_videos, features, what="generated videos"),
        frame_stats(real_videos, features, what="real videos"),
    )


def digits_frame_features(frames: np.ndarray) -> np.ndarray:
    """The digits classifier's 64-d features of uint8 frames (resized to its 32x32 input)."""
    from jaxgan.metrics import digits_classifier  # pylint: disable=g-import-not-at-top

    return digits_classifier.digits_features(frames)


def inception_frame_features(extractor: Any = None) -> FeatureFn:
    """The FID Inception's pool features of uint8 frames (gray repeated to RGB); loads the weights once."""
    if extractor is None:
        from jaxgan.metrics import fid  # pylint: disable=g-import-not-at-top

        extractor = fid.InceptionFeatures()
    return extractor


FEATURES = ("digits", "inception")


def feature_fn(name: str | FeatureFn) -> tuple[str, FeatureFn]:
    """(metric name, feature function) for "digits", "inception" or a callable."""
    if callable(name):
        return "frame_fd", name
    if name == "digits":
        return "frame_fd_digits", digits_frame_features
    if name == "inception":
        return "frame_fid", inception_frame_features()
    raise ValueError(f"Unknown frame features {name!r}; valid: {FEATURES} or a callable.")


class VideoEvaluator:
    """Per-frame Frechet distance and the temporal score of `num_clips` generated clips vs real clips.

    The real clips' feature statistics and motion are computed once, here.
    Called as `evaluator(sample_fn, step)` with `sample_fn(num, seed) -> uint8
    [num, T, H, W, C]` (deterministic in the seed); returns
    {frame_fd_digits | frame_fid: ..., motion_fake: ..., motion_real: ..., ...}.
    """

    def __init__(
        self, real_videos: Any, *, features: str | FeatureFn = "digits", num_clips: int | None = None, seed: int = 0
    ):
        real = check_videos(real_videos, what="real videos")
        self.num_clips = int(num_clips or len(real))
        if self.num_clips < 2:
            raise ValueError(f"num_clips must be >= 2, got {self.num_clips}.")
        self.seed = int(seed)
        self.name, self.features = feature_fn(features)
        self.real = real
        self.real_stats = frame_stats(real, self.features, what="real videos")

    def evaluate_videos(self, videos: Any) -> dict[str, float]:
        fake = check_videos(videos, what="generated videos")
        if fake.shape[1:] != self.real.shape[1:]:
            raise ValueError(
                f"Generated clips {fake.shape[1:]} and real clips {self.real.shape[1:]} differ in shape [T, H, W, C]."
            )
        out = {
            self.name: stats.frechet_distance_from_stats(
                frame_stats(fake, self.features, what="generated videos"), self.real_stats
            )
        }
        out.update(temporal_score(fake, self.real))
        return out

    def __call__(self, sample_fn: VideoSampleFn, step: int) -> dict[str, float]:
        del step
        videos = check_videos(sample_fn(self.num_clips, self.seed), what="generated videos")
        if len(videos) != self.num_clips:
            raise ValueError(f"sample_fn({self.num_clips}, seed) returned {len(videos)} clips.")
        return self.evaluate_videos(videos)
