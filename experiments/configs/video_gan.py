"""Video GAN (MoCoGAN-style, Tulyakov et al. 2018). Default: a fast offline demo on moving digits.

  python experiments/video_gan.py                                 # demo: 1 moving digit, 32x32, 16 frames
  python experiments/video_gan.py --config=experiments/configs/video_gan.py:two_digits
  python experiments/video_gan.py --config.data.source=tfds --config.data.name=moving_mnist \
      --config.data.frame_size=64 --config.data.split=test --config.data.eval_split=test   # prepared beforehand

Demo: one scikit-learn digit (16 px) bouncing in a 32x32 frame, 16 frames,
fresh clips every step (no download); G width 32, Ds width 16, batch 16, 1500 steps;
see the README's "Video generation" section for the measured time and what it shows.
Samples (GIF + frame-grid PNG of G and EMA-G) in WORKDIR/samples every sample_every_steps;
eval/ (per-frame digits Frechet distance and the motion score) every eval_every_steps.
`:test` is the tiny CPU config of tests/video_test.py.
"""

import ml_collections


def get_config(preset: str = "demo") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = ml_collections.ConfigDict(
        dict(
            source="moving_digits",  # moving_digits (made on the fly) | tfds (name: moving_mnist, ucf101, moving_digits/64px_2digit, ...)
            name="",
            split="train",
            eval_split="test",
            data_dir="",
            max_clips=0,  # tfds; max_clips 0 = all
            read_threads=2,  # tfds in ArrayRecord is streamed: Grain's read threads and,
            worker_count=0,  # if > 0, decoding processes (start-up costs seconds each)
            num_frames=16,
            frame_size=32,
            channels=1,
            num_digits=1,
            digit_size=0,
            max_speed=3.0,
            seed=0,
        )
    )  # moving digits; digit_size 0 = frame_size // 2
    config.model = ml_collections.ConfigDict(dict(content_dim=50, motion_dim=10, g_width=32, d_width=16))
    config.loss = "non_saturating"  # any of jaxgan.losses.LOSSES
    config.image_weight = 1.0  # weight of D_I's loss next to D_V's (MoCoGAN: 1)
    config.image_frames = 2  # frames per clip shown to D_I
    config.batch_size = 16
    config.train_steps = 1500
    config.g_learning_rate = 2e-4
    config.d_learning_rate = 2e-4
    config.b1, config.b2 = 0.5, 0.999
    config.ema_decay = 0.99
    config.log_every_steps = 50
    config.sample_every_steps = 100
    config.num_sample_clips = 8
    config.gif_fps = 8.0
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    config.eval_every_steps = 500  # 0 = never
    config.eval_features = "digits"  # digits (fast, moving digits) | inception (real video; slow on CPU)
    config.eval_num_clips = 64
    config.compile = "auto"  # auto | fast_compile (tests: faster compile, slower steps) | default
    config.progress_bar = True
    if preset == "two_digits":
        config.data.num_digits = 2
        config.train_steps = 3000
    elif preset == "test":
        config.data.num_frames, config.data.frame_size = 4, 16
        config.model = ml_collections.ConfigDict(dict(content_dim=8, motion_dim=4, g_width=8, d_width=8))
        config.image_frames = 1
        config.batch_size = 8
        config.g_learning_rate = config.d_learning_rate = 1e-3  # tiny nets, few steps
        config.train_steps = 8
        config.log_every_steps = config.sample_every_steps = config.checkpoint_every_steps = 4
        config.num_sample_clips = 2
        config.eval_every_steps = 0
        config.compile = "fast_compile"
        config.progress_bar = False
    elif preset != "demo":
        raise ValueError(f"Unknown preset {preset!r}; use 'demo', 'two_digits' or 'test'.")
    return config
