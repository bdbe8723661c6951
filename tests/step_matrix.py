"""A matrix of tiny GAN step configurations, each run a few steps from fixed seeds and batches.

It pins the train step's behaviour down to the bit: `tests/step_terms_test.py` runs every
configuration on the current code and compares each state leaf and metric with the fixture
that this module wrote with the code before the step was split into terms
(`tests/data/step_before_refactor/`). The configurations cover every option of
`Regularization`, every loss of `jaxgan.losses.LOSSES`, class conditioning (uniform and real
fake labels, ACGAN), InfoGAN codes, K discriminators with each aggregation, PacGAN packing,
BatchNorm in G and D, both critic loops, the EMA schedules, K steps per call and the pmap and
2-device shard_map wrappers.

The networks are defined here (not taken from `jaxgan.nets`), so that the fixture pins the
step, not the networks' initialization.

Write the fixture (from the repository root, for the code checked out there):

    PYTHONPATH=. python -m tests.step_matrix tests/data/step_before_refactor

Results are bit-exact for one jax/XLA version and one set of XLA flags: the same as
tests/conftest.py sets (8 virtual CPU devices, LLVM at -O0), recorded in the fixture.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from typing import Any, Callable

# The flags of tests/conftest.py: must be set before jax starts its backend.
XLA_FLAGS = ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0")
if __name__ == "__main__":
    for _flag in XLA_FLAGS:
        if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxgan  # noqa: E402
from jaxgan.common import DATA_AXIS  # noqa: E402
from jaxgan.latent import LatentCodes  # noqa: E402
from jaxgan.train import Regularization  # noqa: E402
from jaxgan.train.steps import ema_decay_from_half_life, ema_decay_with_warmup  # noqa: E402

SHAPE = (4, 4, 1)
BATCH = 8
LATENT = 4
STEPS = 3
CHECKPOINT_CONFIG = "all_on"  # its state after STEPS - 1 steps is also saved as an Orbax checkpoint
CHECKPOINT_STEP = STEPS - 1


class TinyG(nn.Module):
    """z (+ labels) -> Dense -> [BatchNorm] -> ReLU -> Dense -> tanh, shaped SHAPE."""

    latent_dim: int = LATENT
    num_classes: int = 0
    batch_norm: bool = False
    latent_codes: LatentCodes = LatentCodes()

    @nn.compact
    def __call__(self, z, labels=None, *, train=True):
        h = z
        if self.num_classes:
            h = jnp.concatenate([h, jax.nn.one_hot(labels, self.num_classes)], axis=-1)
        h = nn.Dense(8)(h)
        if self.batch_norm:
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=DATA_AXIS if train else None)(h)
        h = nn.Dense(math.prod(SHAPE))(nn.relu(h))
        return jnp.tanh(h).reshape(z.shape[0], *SHAPE)


class TinyD(nn.Module):
    """Packed flat input (+ one-hot labels) -> Dense -> [BatchNorm] -> LeakyReLU -> logit [B // pack].

    Sows "features", and with the heads on, "class_logits" (ACGAN) and "info_outputs" (InfoGAN's Q).
    """

    num_classes: int = 0
    aux_classifier: bool = False
    info_outputs: int = 0
    pack: int = 1
    batch_norm: bool = False

    @nn.compact
    def __call__(self, x, labels=None, *, train=True):
        h = x.reshape(x.shape[0] // self.pack, -1)
        if self.num_classes:
            h = jnp.concatenate([h, jax.nn.one_hot(labels, self.num_classes).reshape(h.shape[0], -1)], axis=-1)
        h = nn.Dense(8)(h)
        if self.batch_norm:
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=DATA_AXIS if train else None)(h)
        h = nn.leaky_relu(h, 0.2)
        self.sow("intermediates", "features", h)
        if self.aux_classifier:
            self.sow("intermediates", "class_logits", nn.Dense(self.num_classes, name="classifier")(h))
        if self.info_outputs:
            q = nn.Dense(self.pack * self.info_outputs, name="q_out")(h)
            self.sow("intermediates", "info_outputs", q.reshape(-1, self.info_outputs))
        return nn.Dense(1, name="logit")(h)[:, 0]


ALL_ON = Regularization(
    gradient_penalty=1.0,
    dragan=1.0,
    r1_gamma=1.0,
    r2_gamma=1.0,
    lecam=0.1,
    bcr_real=1.0,
    bcr_fake=1.0,
    diff_augment="color,translation,cutout",
    instance_noise=0.1,
    instance_noise_anneal_steps=10,
    feature_matching=1.0,
    mode_seeking=0.1,
    historical_averaging=0.01,
    replay_capacity=16,
    top_k_fraction=0.5,
    top_k_decay=0.5,
    top_k_decay_steps=1,
)


@dataclasses.dataclass(frozen=True)
class Config:
    """One step configuration and how it is run."""

    reg: Regularization = Regularization()
    loss: str = "hinge"
    real_label: float = 1.0
    n_critic: int = 2
    critic_loop: str = "scan"  # compiles faster than "unroll", the CPU default of "auto"
    g: dict = dataclasses.field(default_factory=dict)
    d: dict = dataclasses.field(default_factory=dict)
    step: dict = dataclasses.field(default_factory=dict)  # other make_train_step arguments
    ema: str = "float"  # "float" (0.9), "warmup" or "half_life"
    devices: int = 1
    wrapper: str = "shard_map"  # or "pmap"
    steps_per_call: int = 1
    step_loop: str = "auto"
    flat_batch: bool = False  # [B, ...] leaves without the n_critic axis (n_critic == 1)


CODES = LatentCodes((3,), 1)

CONFIGS: dict[str, Config] = {
    **{f"loss_{name}": Config(loss=name) for name in jaxgan.losses.LOSSES},
    "loss_label_smoothing": Config(loss="non_saturating", real_label=0.9),
    "gradient_penalty": Config(Regularization(gradient_penalty=10.0), loss="wasserstein"),
    "gradient_penalty_one_sided": Config(
        Regularization(gradient_penalty=10.0, gradient_penalty_one_sided=True), loss="wasserstein"
    ),
    "dragan": Config(Regularization(dragan=10.0, dragan_c=0.3)),
    "r1": Config(Regularization(r1_gamma=5.0)),
    "r1_lazy": Config(Regularization(r1_gamma=5.0, r1_every=2)),
    "r2": Config(Regularization(r2_gamma=5.0)),
    "weight_clip": Config(Regularization(weight_clip=0.05), loss="wasserstein"),
    "lecam": Config(Regularization(lecam=0.5, lecam_decay=0.9)),
    "bcr": Config(Regularization(bcr_real=2.0, bcr_fake=3.0, bcr_policy="translation,cutout")),
    "diff_augment": Config(Regularization(diff_augment="color,translation,cutout")),
    "instance_noise": Config(Regularization(instance_noise=0.2, instance_noise_anneal_steps=4)),
    "feature_matching": Config(Regularization(feature_matching=2.0), loss="non_saturating"),
    "feature_matching_only": Config(Regularization(feature_matching=1.0, g_adversarial_weight=0.0)),
    "mode_seeking": Config(Regularization(mode_seeking=0.5)),
    "historical_averaging": Config(Regularization(historical_averaging=0.1)),
    "replay": Config(Regularization(replay_capacity=12)),
    "top_k": Config(Regularization(top_k_fraction=0.5, top_k_decay=0.5, top_k_decay_steps=1)),
    "all_on": Config(ALL_ON),
    "all_on_relativistic_bn_2dev": Config(
        ALL_ON, loss="relativistic_average", g={"batch_norm": True}, d={"batch_norm": True}, devices=2
    ),
    "conditional_uniform": Config(g={"num_classes": 3}, d={"num_classes": 3}),
    "conditional_real": Config(
        Regularization(r1_gamma=1.0, r2_gamma=1.0),
        g={"num_classes": 3},
        d={"num_classes": 3},
        step={"fake_labels": "real"},
    ),
    "acgan": Config(
        Regularization(acgan_weight=0.5, feature_matching=1.0),
        g={"num_classes": 3},
        d={"num_classes": 3, "aux_classifier": True},
    ),
    "infogan": Config(Regularization(info_weight=0.7), g={"latent_codes": CODES}, d={"info_outputs": 4}),
    "gman_mean": Config(
        Regularization(lecam=0.5, historical_averaging=0.1, r1_gamma=2.0, r1_every=2), step={"num_discriminators": 2}
    ),
    "gman_max_acgan_infogan": Config(
        Regularization(feature_matching=1.0, top_k_fraction=0.5, top_k_decay=0.5, top_k_decay_steps=1),
        g={"num_classes": 3, "latent_codes": CODES},
        d={"num_classes": 3, "aux_classifier": True, "info_outputs": 4},
        step={"num_discriminators": 2, "d_aggregation": "max"},
    ),
    "gman_acgan_infogan_fakes_only": Config(
        Regularization(info_weight=0.5),
        g={"num_classes": 3, "latent_codes": CODES},
        d={"num_classes": 3, "aux_classifier": True, "info_outputs": 4},
        step={"num_discriminators": 2},
    ),
    "gman_softmax": Config(
        loss="relativistic_average_hinge",
        step={"num_discriminators": 3, "d_aggregation": "softmax", "d_temperature": 0.5},
    ),
    "pack": Config(Regularization(r1_gamma=2.0, r2_gamma=2.0), d={"pack": 2}),
    "pack_infogan_lazy_r1": Config(
        Regularization(r1_gamma=2.0, r1_every=2), g={"latent_codes": CODES}, d={"pack": 2, "info_outputs": 4}
    ),
    "batch_norm": Config(
        Regularization(r1_gamma=1.0, gradient_penalty=1.0), g={"batch_norm": True}, d={"batch_norm": True}
    ),
    "critic_scan": Config(Regularization(lecam=0.5, replay_capacity=12), n_critic=3),
    "critic_unroll": Config(Regularization(lecam=0.5, replay_capacity=12), n_critic=3, critic_loop="unroll"),
    "critic_auto": Config(Regularization(r1_gamma=1.0, r1_every=2), critic_loop="auto"),
    "ema_warmup": Config(ema="warmup"),
    "ema_half_life": Config(ema="half_life"),
    "n_critic_1_flat_batch": Config(n_critic=1, flat_batch=True),
    "steps_per_call_scan": Config(Regularization(r1_gamma=1.0, r1_every=2), steps_per_call=STEPS, step_loop="scan"),
    "steps_per_call_unroll": Config(Regularization(r1_gamma=1.0, r1_every=2), steps_per_call=STEPS, step_loop="unroll"),
    "pmap_2dev": Config(Regularization(r1_gamma=1.0, lecam=0.5), wrapper="pmap", devices=2),
}


def build(cfg: Config):
    """The step of a configuration (make_train_step with Adam, the EMA schedule and the options)."""
    ema = {
        "float": 0.9,
        "warmup": ema_decay_with_warmup(0.99),
        "half_life": ema_decay_from_half_life(half_life_images=40.0, batch_size=BATCH, rampup=0.5),
    }[cfg.ema]
    return jaxgan.make_train_step(
        generator=TinyG(**cfg.g),
        discriminator=TinyD(**cfg.d),
        g_tx=optax.adam(0.01, b1=0.5),
        d_tx=optax.adam(0.02, b1=0.5),
        loss=jaxgan.get_loss(cfg.loss, real_label=cfg.real_label),
        n_critic=cfg.n_critic,
        critic_loop=cfg.critic_loop,
        ema_decay=ema,
        regularization=cfg.reg,
        **cfg.step,
    )


def batches(cfg: Config, steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """Fixed batches: images uniform in [-1, 1], labels (conditional configs) uniform ids."""
    rs = np.random.RandomState(1234)
    out = []
    for _ in range(steps):
        batch = {"image": rs.uniform(-1, 1, (cfg.n_critic, BATCH, *SHAPE)).astype(np.float32)}
        if cfg.g.get("num_classes"):
            batch["label"] = rs.randint(0, cfg.g["num_classes"], (cfg.n_critic, BATCH)).astype(np.int32)
        if cfg.flat_batch:
            batch = {k: v[0] for k, v in batch.items()}
        out.append(batch)
    return out


def host(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def runner(step, cfg: Config) -> Callable:
    """The wrapped step of a configuration: (state, batch) -> (state, metrics), state on the host."""
    devices = jax.devices()[: cfg.devices]
    if cfg.wrapper == "pmap":
        run = jaxgan.pmap_step(step, devices)
        return lambda state, batch: run(state, batch)
    mesh = jaxgan.make_mesh(devices)
    run = jaxgan.shard_map_step(step, mesh, steps_per_call=cfg.steps_per_call, step_loop=cfg.step_loop)
    return lambda state, batch: run(jaxgan.replicate(state, mesh), batch)


def run_config(name: str, *, on_state: Callable[[int, Any], None] | None = None):
    """(step, final state, {metric: [STEPS] array}) of configuration `name`, from seed 0.

    `on_state(k, state)` sees the host state after k steps (every k for one-step calls).
    """
    cfg = CONFIGS[name]
    step = build(cfg)
    state = host(step.init_state(0, np.zeros((1, *SHAPE), np.float32)))
    run = runner(step, cfg)
    per_step = []
    data = batches(cfg)
    if cfg.steps_per_call > 1:
        stacked = {k: np.stack([b[k] for b in data]) for k in data[0]}
        state, metrics = run(state, stacked)
        per_step = [{k: v[i] for k, v in metrics.items()} for i in range(STEPS)]
        state = host(state)
    else:
        for k, batch in enumerate(data):
            if on_state is not None:
                on_state(k, state)
            state, metrics = run(state, batch)
            state = host(state)
            per_step.append(metrics)
    metrics = {k: np.stack([np.asarray(m[k]) for m in per_step]) for k in per_step[0]}
    return step, state, metrics


def flatten(state: Any) -> dict[str, np.ndarray]:
    """{leaf path (jax.tree_util.keystr): array}, in the tree's leaf order."""
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(host(state))[0]
    }


def environment() -> dict[str, str]:
    """What bit-exact results depend on besides the code: jax's version and XLA's flags."""
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "xla_flags": " ".join(
            sorted(
                f
                for f in os.environ.get("XLA_FLAGS", "").split()
                if f.startswith(("--xla_backend_optimization_level", "--xla_force_host_platform_device_count"))
            )
        ),
    }


def record(out_dir: str, names: list[str] | None = None) -> None:
    """Writes <name>.npz per configuration (state/<path>, metric/<name>, paths) and the Orbax checkpoint."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names or list(CONFIGS):
        checkpointed = {}

        def keep(k, state):
            if name == CHECKPOINT_CONFIG and k == CHECKPOINT_STEP:
                checkpointed["state"] = state

        _, state, metrics = run_config(name, on_state=keep)
        leaves = flatten(state)
        arrays = {f"state/{path}": leaf for path, leaf in leaves.items()}
        arrays.update({f"metric/{k}": v for k, v in metrics.items()})
        arrays["paths"] = np.asarray(list(leaves), dtype=str)
        np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), **arrays)
        if checkpointed:
            from jaxgan import checkpoint  # Orbax: imported only here

            manager = checkpoint.checkpoint_manager(os.path.join(out_dir, "ckpt"), async_save=False)
            checkpoint.save(manager, CHECKPOINT_STEP, checkpointed["state"])
            manager.wait_until_finished()
        print(name, len(leaves), "leaves,", len(metrics), "metrics", flush=True)
    with open(os.path.join(out_dir, "environment.json"), "w") as f:
        json.dump(environment(), f, indent=1, sort_keys=True)


if __name__ == "__main__":
    record(sys.argv[1], sys.argv[2:] or None)
