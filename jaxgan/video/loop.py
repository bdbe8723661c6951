"""The old name of `jaxgan.video.orchestrate`, the video GAN's orchestrator.

Kept so that `from jaxgan.video import loop` and the names it held keep working.
"""

from jaxgan.video.orchestrate import (
    COMPILE_MODES,
    FAST_COMPILE_OPTIONS,
    SOURCES,
    Compiled,  # noqa: F401
    build_evaluator,
    build_step,
    compiled_step,
    compiler_options,
    frame_grid,
    gif_frames,
    load_batcher,
    moving_digits,
    reference_clips,
    sample_hook,
    train_and_evaluate,
    unused_name,
    validate,
    write_gif,
)
