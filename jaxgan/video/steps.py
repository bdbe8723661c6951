"""The pure, data-parallel video GAN step: `(state, batch) -> (state, metrics)`.

One step (MoCoGAN, Tulyakov et al. 2018, arXiv:1707.04993, alg. 1, with
one D and one G update per step):
  1. D update: fresh latents give fake clips; D_V judges real vs fake clips,
     D_I real vs fake frames (`image_frames` frames drawn per clip, the same
     frame positions for a real clip and the fake of the same batch row);
     L_D = L_adv(D_V) + image_weight L_adv(D_I).
  2. G update against the updated Ds, with other fresh latents:
     L_G = g(D_V(fake)) + image_weight g(D_I(fake frames)).
  3. EMA of G's params.
The adversarial loss is any of `jaxgan.losses.LOSSES` (MoCoGAN: non-saturating).

Written against ONE axis name (`DATA_AXIS`): under `jax.shard_map` over a 1-D
mesh (`shard_map_video_step`) or `jax.pmap`, the batch is split on B, params
are pcast to device-varying so each device takes its local gradient, and
gradients, BatchNorm statistics (cross-replica inside the frame G) and metrics
are pmean'd, so the state leaves the step identical on every device. Every
random draw of step s comes from fold_in(state.rng, s); per-example draws
(latents, frame choices) fold in the example's index in the GLOBAL batch, so
1 device and N devices compute the same step.

Batch: {"video": float32 [B, T, S, S, C] in [-1, 1]}.

This module imports no I/O: no TensorFlow, TFDS, Orbax or CLU.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import losses
from jaxgan.common import DATA_AXIS, Metrics, Params
from jaxgan.state import NetState
from jaxgan.train import parallel
from jaxgan.train.ema import ema_decay_with_warmup, ema_update
from jaxgan.train.keys import example_keys, global_example_indices
from jaxgan.train.kit import compile_init, update_net
from jaxgan.video.nets import ImageDiscriminator, VideoDiscriminator, VideoGenerator

# Sub-keys of fold_in(rng, step): each phase draws from its own.
_D_LATENTS, _G_LATENTS, _D_FRAMES, _G_FRAMES = range(4)


class VideoGANState(struct.PyTreeNode):
    """Everything a video GAN run evolves, as ONE pytree (checkpointed whole).

    `g.params` = {"latents": motion GRU, "frames": frame G} with `g.batch_stats`
    the frame G's BatchNorm statistics; `d.params` = {"video": D_V, "image": D_I}
    under one Adam (element-wise, so the same as one Adam each). `rng` never
    changes; step s draws from fold_in(rng, s).
    """

    step: jax.Array
    rng: jax.Array
    g: NetState
    d: NetState
    g_ema_params: Params


def video_latents(
    key: jax.Array, indices: jax.Array, *, content_dim: int, motion_dim: int, num_frames: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(z_content [B, Dc], h0 [B, Dm], eps [B, T, Dm]) ~ N(0, I), example i keyed by fold_in(key, i)."""

    def one(k):
        kc, kh, ke = jax.random.split(k, 3)
        return (
            jax.random.normal(kc, (content_dim,)),
            jax.random.normal(kh, (motion_dim,)),
            jax.random.normal(ke, (num_frames, motion_dim)),
        )

    return jax.vmap(one)(example_keys(key, indices))


def pick_frames(videos: jax.Array, keys: jax.Array, num: int) -> jax.Array:
    """`num` frames drawn uniformly (with replacement) from each clip, clip i with keys[i]: [B * num, S, S, C]."""
    t = videos.shape[1]
    idx = jax.vmap(lambda k: jax.random.randint(k, (num,), 0, t))(keys)  # [B, num]
    frames = jnp.take_along_axis(videos, idx[:, :, None, None, None], axis=1)
    return frames.reshape(-1, *videos.shape[2:])


@dataclasses.dataclass(frozen=True)
class VideoGANStep:
    """The video GAN update (see module docstring), with its networks and optimizers bound."""

    generator: VideoGenerator
    video_d: VideoDiscriminator
    image_d: ImageDiscriminator
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    num_frames: int
    loss: str = "non_saturating"
    image_weight: float = 1.0
    image_frames: int = 1
    ema_decay: float = 0.999

    def __post_init__(self):
        losses.get_loss(self.loss)  # raises on an unknown name, listing the valid ones
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}.")
        if self.image_weight < 0:
            raise ValueError(f"image_weight must be >= 0 (MoCoGAN: 1), got {self.image_weight}.")
        if not isinstance(self.image_frames, int) or self.image_frames < 1:
            raise ValueError(f"image_frames must be an int >= 1, got {self.image_frames!r}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}.")
        g, dv, di = self.generator, self.video_d, self.image_d
        if not g.frame_size == dv.frame_size == di.frame_size:
            raise ValueError(
                f"G, D_V and D_I disagree on frame_size: {g.frame_size}, {dv.frame_size}, {di.frame_size}."
            )

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        g = self.generator
        return (self.num_frames, g.frame_size, g.frame_size, g.channels)

    def latents(self, key: jax.Array, indices: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        g = self.generator
        return video_latents(
            key, indices, content_dim=g.content_dim, motion_dim=g.motion_dim, num_frames=self.num_frames
        )

    # -- state ---------------------------------------------------------------

    def _init(self, rng: jax.Array) -> VideoGANState:
        k_g, k_dv, k_di, train_key = jax.random.split(rng, 4)
        z = self.latents(k_g, jnp.arange(1))
        video = jnp.zeros((1, *self.video_shape), jnp.float32)
        g_vars = self.generator.init(k_g, *z, train=False)
        g_params = g_vars["params"]
        d_params = {
            "video": self.video_d.init(k_dv, video)["params"],
            "image": self.image_d.init(k_di, video[:, 0])["params"],
        }
        return VideoGANState(
            step=jnp.zeros((), jnp.int32),
            rng=train_key,
            g=NetState(params=g_params, batch_stats=g_vars["batch_stats"], opt_state=self.g_tx.init(g_params)),
            d=NetState(params=d_params, batch_stats={}, opt_state=self.d_tx.init(d_params)),
            g_ema_params=jax.tree_util.tree_map(jnp.copy, g_params),
        )

    def init_state(self, seed: int | jax.Array) -> VideoGANState:
        """Fresh params (N(0, 0.02) convs), Adam states, the EMA copy of G, step 0 (one compiled call)."""
        return compile_init(self._init)(seed)

    def abstract_state(self) -> VideoGANState:
        """The state's shapes and dtypes, allocating nothing (restore targets)."""
        return jax.eval_shape(self._init, jax.random.PRNGKey(0))

    def uses_convolution(self) -> bool:
        """Whether the networks convolve (read from the traced init): picks the CPU compiler options of
        `jaxgan.train.shard_map_step` (compiler_options="auto")."""
        return "conv_general_dilated" in str(jax.make_jaxpr(self._init)(jax.random.PRNGKey(0)))

    # -- forward passes ------------------------------------------------------

    def generate(
        self, g_params: Params, batch_stats: Params, z: tuple[jax.Array, ...], *, train: bool
    ) -> tuple[jax.Array, Params]:
        """G(z): videos [B, T, S, S, C] and the new BatchNorm statistics (unchanged in inference)."""
        variables = {"params": g_params, "batch_stats": batch_stats}
        if not train:
            return self.generator.apply(variables, *z, train=False), batch_stats
        videos, mutated = self.generator.apply(variables, *z, train=True, mutable=["batch_stats"])
        return videos, mutated["batch_stats"]

    def discriminate(self, d_params: Params, videos: jax.Array, frame_keys: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(D_V logits [B], D_I logits [B * image_frames]) of a batch of clips."""
        video_logits = self.video_d.apply({"params": d_params["video"]}, videos)
        image_logits = self.image_d.apply(
            {"params": d_params["image"]}, pick_frames(videos, frame_keys, self.image_frames)
        )
        return video_logits, image_logits

    # -- the step ------------------------------------------------------------

    def __call__(self, state: VideoGANState, batch: Mapping[str, jax.Array]) -> tuple[VideoGANState, Metrics]:
        real = batch["video"]
        adv = losses.get_loss(self.loss)
        key = jax.random.fold_in(state.rng, state.step)
        indices = global_example_indices(real.shape[0], DATA_AXIS)
        phase = lambda i: jax.random.fold_in(key, i)
        # Local means: the gradients' pmean makes them the global batch's (equal shards).
        mean = jnp.mean

        # 1. D update.
        fake, g_stats = self.generate(
            state.g.params, state.g.batch_stats, self.latents(phase(_D_LATENTS), indices), train=True
        )
        fake = jax.lax.stop_gradient(fake)
        d_frame_keys = example_keys(phase(_D_FRAMES), indices)

        def d_loss_fn(d_params):
            real_v, real_i = self.discriminate(d_params, real, d_frame_keys)
            fake_v, fake_i = self.discriminate(d_params, fake, d_frame_keys)
            video_loss = mean(adv.d(real_v, fake_v, axis_name=DATA_AXIS))
            image_loss = mean(adv.d(real_i, fake_i, axis_name=DATA_AXIS))
            aux = {
                "d_video_loss": video_loss,
                "d_image_loss": image_loss,
                "d_real_video": mean(real_v),
                "d_fake_video": mean(fake_v),
            }
            return video_loss + self.image_weight * image_loss, aux

        d, (d_loss, d_aux), _ = update_net(state.d, self.d_tx, d_loss_fn)  # D_V and D_I have no BatchNorm

        # 2. G update against the new Ds, with fresh latents.
        g_latents = self.latents(phase(_G_LATENTS), indices)
        g_frame_keys = example_keys(phase(_G_FRAMES), indices)

        def g_loss_fn(g_params):
            videos, stats = self.generate(g_params, g_stats, g_latents, train=True)
            fake_v, fake_i = self.discriminate(d.params, videos, g_frame_keys)
            real_v = real_i = None
            if adv.g_needs_real:
                real_v, real_i = self.discriminate(d.params, real, g_frame_keys)
            video_loss = mean(adv.g(fake_v, real_v, axis_name=DATA_AXIS))
            image_loss = mean(adv.g(fake_i, real_i, axis_name=DATA_AXIS))
            aux = {"g_video_loss": video_loss, "g_image_loss": image_loss}
            return video_loss + self.image_weight * image_loss, (aux, stats)

        g, (g_loss, (g_aux, g_stats)), _ = update_net(state.g, self.g_tx, g_loss_fn, batch_stats=lambda aux: aux[1])

        # 3. EMA of G (tf.train.ExponentialMovingAverage's warm-up, as jaxgan.train).
        decay = ema_decay_with_warmup(self.ema_decay)(state.step.astype(jnp.float32))
        g_ema = ema_update(state.g_ema_params, g.params, decay)
        metrics = {"d_loss": d_loss, "g_loss": g_loss, **d_aux, **g_aux}
        metrics = jax.lax.pmean({k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}, DATA_AXIS)
        return state.replace(step=state.step + 1, g=g, d=d, g_ema_params=g_ema), metrics

    def check_batch(self, batch: Mapping[str, Any], num_devices: int) -> None:
        """The batch's layout, dtype and divisibility, checked in Python before compilation."""
        if "video" not in batch:
            raise ValueError(f"The batch needs a 'video' entry [B, T, S, S, C]; it has {sorted(batch)}.")
        x = batch["video"]
        if len(x.shape) != 5 or tuple(x.shape[1:]) != self.video_shape:
            raise ValueError(
                f"batch['video'] has shape {tuple(x.shape)}, expected "
                f"[B, {', '.join(map(str, self.video_shape))}] (config.data.num_frames, frame_size "
                "and channels)."
            )
        if np.dtype(x.dtype) != np.float32:
            raise ValueError(
                f"batch['video'] has dtype {x.dtype}, expected float32 in [-1, 1] "
                "(jaxgan.common.to_model_range converts uint8)."
            )
        if x.shape[0] < 1 or x.shape[0] % num_devices:
            raise ValueError(
                f"The batch size {x.shape[0]} is not divisible by the device count {num_devices}; "
                f"use a multiple of {num_devices}."
            )

    def sample(self, g_params: Params, batch_stats: Params, seed: int, num: int, start: int = 0) -> jax.Array:
        """Clips number start..start+num-1 of `seed` in inference mode: [num, T, S, S, C] in [-1, 1].

        Clip i's latents come from fold_in(PRNGKey(seed), i) only, so a clip
        does not depend on how many are drawn at once.
        """
        z = self.latents(jax.random.PRNGKey(seed), jnp.arange(start, start + num))
        return self.generate(g_params, batch_stats, z, train=False)[0]


BATCH_SPEC = P(DATA_AXIS)


def shard_map_video_step(
    step: VideoGANStep, mesh: Mesh, *, compiler_options: Mapping[str, Any] | str | None = None
) -> Callable:
    """`jaxgan.train.shard_map_step` with the video batch layout (`BATCH_SPEC`, [B, T, S, S, C] split on B).

    The step under `jax.shard_map` + `jax.jit` over a 1-D `mesh`, state replicated and donated; takes this
    process's rows of the batch as numpy (checked before compilation) or global arrays sharded on B, and
    returns the new state and scalar metrics. `compiler_options`: XLA's defaults (None), a dict, or "auto"
    (the GAN step's per-backend choice, `jaxgan.train.parallel.resolve_compiler_options`).
    """
    return parallel.shard_map_step(step, mesh, batch_spec=BATCH_SPEC, compiler_options=compiler_options)


def pmap_video_step(step: VideoGANStep, devices: list | None = None) -> Callable:
    """`jaxgan.train.pmap_step` with the video batch layout: state unreplicated in and out, batch split on B."""
    return parallel.pmap_step(step, devices, batch_spec=BATCH_SPEC)
