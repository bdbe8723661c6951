"""Video generation: a MoCoGAN-style video GAN (Tulyakov et al. 2018) on jaxgan's machinery.

`jaxgan.video` holds the pure parts (nets, step; no I/O). The loop
(`jaxgan.video.loop`), the data (`jaxgan.data.video`) and the metrics
(`jaxgan.metrics.video`) are imported explicitly.
"""

from jaxgan.video.nets import FrameGenerator, ImageDiscriminator, MotionLatents, VideoDiscriminator, VideoGenerator
from jaxgan.video.steps import VideoGANState, VideoGANStep, pmap_video_step, shard_map_video_step

__all__ = [
    "FrameGenerator",
    "ImageDiscriminator",
    "MotionLatents",
    "VideoDiscriminator",
    "VideoGANState",
    "VideoGANStep",
    "VideoGenerator",
    "pmap_video_step",
    "shard_map_video_step",
]
