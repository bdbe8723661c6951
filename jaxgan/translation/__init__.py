"""Image-to-image translation: CycleGAN (Zhu et al. 2017) and pix2pix (Isola et al. 2017).

`jaxgan.translation` holds the pure parts (nets, losses, steps; no I/O). The
loop (`jaxgan.translation.loop`) and the data (`jaxgan.data.translation`) are
imported explicitly.
"""

from jaxgan.translation.nets import PatchDiscriminator, ResnetGenerator, UNetGenerator
from jaxgan.translation.steps import (
    CYCLEGAN_LSGAN,
    PIX2PIX_BCE,
    CycleGANStep,
    PatchObjective,
    Pix2PixStep,
    TranslationState,
    adam,
    linear_decay_schedule,
    shard_map_translation_step,
)

__all__ = [
    "CYCLEGAN_LSGAN",
    "CycleGANStep",
    "PIX2PIX_BCE",
    "PatchDiscriminator",
    "PatchObjective",
    "Pix2PixStep",
    "ResnetGenerator",
    "TranslationState",
    "UNetGenerator",
    "adam",
    "linear_decay_schedule",
    "shard_map_translation_step",
]
