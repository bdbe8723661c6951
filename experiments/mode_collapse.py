"""The mode-collapse benchmark: 2-D ring and grid (VEEGAN / PacGAN table 1) and stacked digits (1000
modes, the offline analogue of Stacked MNIST), remedies on equal terms.

One seed of the recommended configuration, through the normal loop (so
`tools/sample.py --workdir=DIR --num=2500 --out=F.npz` exports its `points`):

    python experiments/mode_collapse.py --workdir=DIR --config.data=ring --config.seed=0 --config.preset=long
    python experiments/mode_collapse.py --workdir=DIR --config.data=grid --config.name=pacgan4

The table (every configuration of CONFIGURATIONS x `seeds` seeds, all seeds of
one configuration trained at once by `jaxgan.train.seeds.multi_seed_steps`):

    python experiments/mode_collapse.py --workdir=DIR --config.sweep=True --config.data=ring,grid \
        [--config.preset=fast|long|full] [--config.configs=gan,pacgan2,...]

writes DIR/results.csv, DIR/results.md, DIR/per_seed.csv and one PNG per
(data, configuration) with each seed's 2,500 samples over the true means.

Stacked digits (`--config.data=stacked_digits`): jaxgan's DCGAN on 8x8x3 (the
digits' own size; presets "fast" and "full") or 32x32x3 ("fast32", "full32")
images whose channels are three independent digits of the train split (mode =
the 3 digits, 1000 modes), scored on 26,000 samples by the digits classifier
(modes captured, KL of the mode histogram to uniform; PacGAN tables 2-3). Its
seeds run one after the other through the loop (each in
DIR/runs/<data>_<config>_seed<s>, resumed when relaunched): a DCGAN's data and
state are too large to stack ten seeds on a CPU. Its recommended configuration
conditions G and a spectrally normalised projection D (hinge loss) on 20,000
k-means clusters of the training images, with a deeper and wider G
(`kmeans20k_deep_g_sn_hinge_ema_decay`): an unconditional G puts samples
between the digit modes, read as '8'. Unconditional,
4 images packed into a BatchNorm-free SN D did best; DCGAN's BatchNorm D wins
early here and G's samples then lose modes.

The baseline is PacGAN's set-up for these tables (Lin, Khetan, Fanti & Oh 2018,
arXiv:1712.04086, sec. 5.1 and the released `synthetic_data_experiments`
configs): G an MLP 2 -> 4 x 400 (BatchNorm + ReLU) -> 2 with z ~ N(0, I_2);
D an MLP with 3 maxout layers of 200 units x 5 pieces -> 1 logit, fed `pack`
concatenated samples; the standard GAN loss (D: softplus; G: non-saturating);
Adam lr 1e-4, beta1 0.8; 100 (packed) D inputs per step, i.e. 100 * pack
real and 100 * pack fake samples; 100,000 training points; 400 epochs =
400,000 steps ("full"). Evaluation: 2,500 samples of G in inference mode
(`jaxgan.metrics.modes`). Deviations: Flax's default initialisation (PacGAN:
N(0, 0.02) weights, zero biases); one G call on all 100 * pack latents, so
G's BatchNorm normalises over 100 * pack samples (PacGAN: per packed slot of
100); D and G updated in sequence within a step (Blocks' ALI algorithm
computes both gradients from one forward pass).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# Miyato et al.'s SN discriminator as published: no BatchNorm in D (the DCGAN D's; the MLP D has none), with
# the hinge loss (Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957, sec. 4).
SN_HINGE = {"model.spectral_norm": True, "model.d_batch_norm": False, "loss": "hinge"}

# Each configuration: overrides of the baseline train config (dotted paths),
# plus "_ema": evaluate the EMA of G instead of G. One remedy at a time, then
# combinations. PacGAN packing refuses WGAN-GP, DRAGAN and bCR (per-sample terms;
# the step says so), so those combine with pack=1 only; R1 / R2 are taken per packed tuple.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "gan": {},
    "pacgan2": {"model.pack": 2},
    "pacgan3": {"model.pack": 3},
    "pacgan4": {"model.pack": 4},
    "ema": {"_ema": True},  # EMA of G's weights (Karras et al. 2018; Yazici et al. 2019)
    "minibatch_std": {"model.minibatch_std": True},  # Karras et al. 2018
    "minibatch_discrimination": {"model.minibatch_discrimination": 50},  # Salimans et al. 2016
    "label_smoothing": {"real_label": 0.9},  # Salimans et al. 2016
    "r1": {"regularization.r1_gamma": 0.1},  # Mescheder et al. 2018
    "dragan": {"regularization.dragan": 10.0},  # Kodali et al. 2017
    "lecam": {"regularization.lecam": 0.1},  # Tseng et al. 2021
    "mode_seeking": {"regularization.mode_seeking": 1.0},  # Mao et al. 2019
    # Sinha et al. 2020: G learns from the best-scored half of its fakes, k shrinking by 0.99 per epoch (-1).
    "top_k": {"regularization.top_k_fraction": 0.5, "regularization.top_k_decay_steps": -1},
    "feature_matching": {"regularization.feature_matching": 1.0},  # Salimans et al. 2016
    "historical_averaging": {"regularization.historical_averaging": 1e-3},  # Salimans et al. 2016
    "replay": {"regularization.replay_capacity": 1000},  # Shrivastava et al. 2017
    "instance_noise": {
        "regularization.instance_noise": 0.1,  # Sonderby et al. 2017
        "regularization.instance_noise_anneal_steps": -1,
    },  # -1: the first half of training
    "spectral_norm": {"model.spectral_norm": True},  # Miyato et al. 2018
    "sn_hinge": SN_HINGE,
    "gman2": {"num_discriminators": 2},  # Durugkar et al. 2017
    # The entropy of G's samples maximized (Kozachenko-Leonenko estimate; after PresGAN, Dieng et al. 2019).
    "entropy": {"regularization.entropy": 0.1},
    "entropy_small": {"regularization.entropy": 0.01},
    "entropy_tiny": {"regularization.entropy": 0.001},
    "weak_d_half": {"model.d_capacity": "half"},  # a weaker D: half its width
    "weak_d_quarter": {"model.d_capacity": "quarter"},
    "n_gen2": {"n_gen": 2},  # two G updates per D update
    # RMSProp (as PyTorch's, decay 0.99, no momentum) for both nets at the preset's learning rate (WGAN's optimizer).
    "rmsprop": {
        "g_optimizer.name": "rmsprop",
        "d_optimizer.name": "rmsprop",
        "g_optimizer.b1": 0.0,
        "d_optimizer.b1": 0.0,
        "g_optimizer.b2": 0.99,
        "d_optimizer.b2": 0.99,
    },
    "pacgan2_ema": {"model.pack": 2, "_ema": True},
    "pacgan4_ema": {"model.pack": 4, "_ema": True},
    "pacgan2_mbstd_ema": {"model.pack": 2, "model.minibatch_std": True, "_ema": True},
    "r1_ema": {"regularization.r1_gamma": 0.1, "_ema": True},
    # Learning rates decayed linearly to zero over the second half (as CycleGAN): samples settle on the modes.
    "ema_decay": {"_ema": True, "lr_decay_steps": -1},
    "mbstd_ema_decay": {"model.minibatch_std": True, "_ema": True, "lr_decay_steps": -1},
    "pacgan2_ema_decay": {"model.pack": 2, "_ema": True, "lr_decay_steps": -1},
    "pacgan4_ema_decay": {"model.pack": 4, "_ema": True, "lr_decay_steps": -1},
    "pacgan2_sn_hinge_ema_decay": {"model.pack": 2, **SN_HINGE, "_ema": True, "lr_decay_steps": -1},
    "pacgan4_sn_hinge_ema_decay": {"model.pack": 4, **SN_HINGE, "_ema": True, "lr_decay_steps": -1},
    # R1 on a packed, BatchNorm-free D (the penalty per packed tuple; Mescheder et al. 2018).
    "pacgan4_r1_ema_decay": {
        "model.pack": 4,
        "model.d_batch_norm": False,
        "regularization.r1_gamma": 0.1,
        "_ema": True,
        "lr_decay_steps": -1,
    },
    # InfoGAN (Chen et al. 2016): categorical latent codes for the known modes (INFO_CODES) and a Q head on D.
    "infogan": {"_info": True},
    "pacgan4_infogan_sn_hinge_ema_decay": {
        "model.pack": 4,
        **SN_HINGE,
        "_info": True,
        "_ema": True,
        "lr_decay_steps": -1,
    },
    # Conditioned on k-means clusters of the training images (Liu et al. 2020's self-conditioned GAN, clustered
    # once on pixels; jaxgan.data.clusters): CLUSTERS[data] clusters, a projection D (Miyato & Koyama 2018),
    # G drawing the real batch's cluster ids. Unpacked (a packed D has no per-sample projection term), with
    # 256 real and 256 fake images per step as pacgan4's 64 packed inputs (stacked digits only). G reads a
    # 128-d label embedding and D projects phi to 128 features before the class embedding: as good as one-hot
    # labels and a 1024-d projection, and far cheaper per step. Results:
    # experiments/results/mode_collapse_stacked_clusters/README.md.
    "kmeans_sn_hinge_ema_decay": {
        "_clusters": True,
        **SN_HINGE,
        "batch_size": 256,
        "_ema": True,
        "lr_decay_steps": -1,
        "model.label_embed_dim": 128,
        "model.projection_dim": 128,
    },
}
# The same with 10,000 clusters (about 10 images each, fewer modes per cluster: G's within-cluster bias to the
# cluster's commonest mode matters less), the class embedding outside the spectral norm (normalised, its rows are
# too short at this K) and a deeper, wider G: one more 3x3 conv layer and twice the width, D unchanged.
# Results: experiments/results/mode_collapse_stacked_clusters/README.md.
CONFIGURATIONS["kmeans10k_deep_g_sn_hinge_ema_decay"] = {
    **CONFIGURATIONS["kmeans_sn_hinge_ema_decay"],
    "data.cluster_labels": 10_000,
    "model.num_classes": 10_000,
    "model.projection_embed_sn": False,
    "model.g_extra_layers": 1,
    "model.g_width": 128,
}
# The same on 20,000 clusters (about 5 images each), better than 10,000 in every seed. Results:
# experiments/results/mode_collapse_stacked_kmeans20k_fast/README.md.
CONFIGURATIONS["kmeans20k_deep_g_sn_hinge_ema_decay"] = {
    **CONFIGURATIONS["kmeans10k_deep_g_sn_hinge_ema_decay"],
    "data.cluster_labels": 20_000,
    "model.num_classes": 20_000,
}
# k-means clusters per data set for the "_clusters" configurations (image data only: the 2-D sweep trains
# its seeds outside the loop, which is where the clusters are made). More clusters than modes scored better
# (about 33 images each; results: experiments/results/mode_collapse_stacked_clusters/README.md).
# K = 10,000 and more need model.projection_embed_sn=False (the kmeans10k/20k configurations set it).
CLUSTERS = {"stacked_digits": 3000}
# InfoGAN's categorical codes per data set: one code with a value per mode (as their 10-way code on MNIST), and
# for stacked digits one 10-way code per channel.
INFO_CODES = {"ring": "8", "grid": "25", "stacked_digits": "10,10,10"}

# What `--config.sweep` runs by default, and the configuration a single-seed run trains.
DEFAULT_SWEEP = (
    "gan",
    "pacgan2",
    "pacgan3",
    "pacgan4",
    "ema",
    "pacgan2_ema",
    "pacgan4_ema",
    "pacgan2_ema_decay",
    "pacgan4_ema_decay",
    "pacgan4_sn_hinge_ema_decay",
    "kmeans_sn_hinge_ema_decay",
    "kmeans20k_deep_g_sn_hinge_ema_decay",
)
# The best measured per data set (ring and grid with preset "long"). On the grid a packed D of 4 stayed at chance
# with the fast and the full widths, so pack 2. On stacked digits a BatchNorm D wins early and G loses modes;
# Miyato's SN D with the hinge loss stays balanced but needs packing when unconditional; conditioning on k-means
# clusters beats packing, and 20,000 clusters with a deeper, wider G beat 3000 and 10,000. Results, under
# experiments/results/: mode_collapse_grid/, mode_collapse_stacked_unconditional/, mode_collapse_stacked_clusters/,
# mode_collapse_stacked_kmeans_full/ and mode_collapse_stacked_kmeans20k_fast/ (README.md in each).
RECOMMENDED = {
    "ring": "pacgan2_ema_decay",
    "grid": "pacgan2_ema_decay",
    "stacked_digits": "kmeans20k_deep_g_sn_hinge_ema_decay",
}
# Image data: Stacked MNIST's analogue from the offline digits (1000 modes; jaxgan.metrics.digits_classifier).
IMAGE_DATA = ("stacked_digits",)

# Published means (modes, % high quality, reverse KL). The 2-D data: PacGAN table 1 (10 trials). Stacked digits:
# PacGAN table 2 on Stacked MNIST (their DCGAN at 28 px; the DCGAN row from VEEGAN's table, Srivastava et al. 2017),
# modes and KL(mode histogram || uniform) only, beside this benchmark's 8 px digits analogue.
PUBLISHED = {
    ("ring", "gan"): (6.3, 98.2, 0.45),
    ("ring", "pacgan2"): (7.9, 95.6, 0.07),
    ("ring", "pacgan3"): (7.8, 97.7, 0.07),
    ("ring", "pacgan4"): (7.8, 95.9, 0.07),
    ("grid", "gan"): (17.3, 94.8, 0.70),
    ("grid", "pacgan2"): (23.8, 91.3, 0.13),
    ("grid", "pacgan3"): (24.6, 94.2, 0.06),
    ("grid", "pacgan4"): (24.8, 93.6, 0.04),
    ("stacked_digits", "gan"): (99.0, None, 3.40),
    ("stacked_digits", "pacgan2"): (1000.0, None, 0.06),
    ("stacked_digits", "pacgan3"): (1000.0, None, 0.06),
    ("stacked_digits", "pacgan4"): (1000.0, None, 0.07),
}

PRESETS = {
    # "full" is PacGAN's protocol (400 epochs of 1000 batches): hours per seed on a CPU, a job for an
    # accelerator (tools/bench.py --only=ring_full; experiments/results/mode_collapse_speed/README.md). "fast"
    # is sized for a CPU: narrower nets, fewer steps and a larger learning rate. "long": the fast nets trained
    # as long as the recommended configuration needed to meet the targets (experiments/results/mode_collapse_10k/
    # for the ring, mode_collapse_grid/ for the grid).
    "fast": dict(train_steps=2000, steps_per_call=500, g_width=128, d_width=64, learning_rate=5e-4),
    "long": dict(
        train_steps={"ring": 40_000, "grid": 160_000}, steps_per_call=4000, g_width=128, d_width=64, learning_rate=5e-4
    ),
    "full": dict(train_steps=400_000, steps_per_call=2000, g_width=400, d_width=200, learning_rate=1e-4),
}
# Stacked digits: jaxgan's DCGAN (not the published nets: see README), Adam 2e-4 beta1 0.5, batch 64 (packed
# D inputs), 100,000 stacked training images drawn once per seed from the digits' train split. "fast" and
# "full" train at the digits' native 8x8 (far faster than 32x32; the classifier reads the samples through the
# same upsampling as the real digits); "fast32" / "full32" at 32x32, Stacked MNIST's scale. Results:
# experiments/results/mode_collapse_stacked_unconditional/README.md.
IMAGE_PRESETS = {
    "fast": dict(image_size=8, train_steps=10_000, g_width=64, d_width=64, learning_rate=2e-4),
    "full": dict(image_size=8, train_steps=30_000, g_width=64, d_width=64, learning_rate=2e-4),
    "fast32": dict(image_size=32, train_steps=3000, g_width=32, d_width=16, learning_rate=2e-4),
    "full32": dict(image_size=32, train_steps=30_000, g_width=64, d_width=64, learning_rate=2e-4),
}


# ----------------------------------------------------------------------------- configs


def experiment_config():
    """The launcher's own fields (`--config.FIELD=VALUE`)."""
    import ml_collections

    c = ml_collections.ConfigDict()
    c.data = "ring"  # "ring", "grid" or "stacked_digits" (a comma-separated list with sweep=True)
    c.name = ""  # configuration (CONFIGURATIONS); "" = RECOMMENDED[data]
    c.seed = 0  # single-seed mode: init, latents and data order
    c.preset = "fast"  # "fast", "long" (2-D data) or "full" (PRESETS); stacked digits also "fast32", "full32"
    c.train_steps = 0  # > 0 overrides the preset's length
    c.sweep = False  # True: the table, `seeds` seeds of every configuration in `configs`
    c.configs = ",".join(DEFAULT_SWEEP)  # sweep: comma-separated CONFIGURATIONS names, or "all"
    c.seeds = 10  # sweep: seeds 0 .. seeds-1
    c.steps_per_call = 0  # sweep: steps per compiled call; 0 = the preset's
    c.eval_seed = 0  # latent seed of the 2,500 evaluation samples (tools/sample.py --seed)
    return c


def _set(config, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for name in path:
        config = config[name]
    if last not in config:
        raise ValueError(f"Configuration override {dotted!r}: no such config field.")
    config[last] = value


def available(data: str, name: str) -> bool:
    """Whether configuration `name` runs on `data` (the k-means cluster ones need CLUSTERS[data])."""
    return not (CONFIGURATIONS.get(name, {}).get("_clusters") and data not in CLUSTERS)


def check_data(data: str) -> None:
    if data not in RECOMMENDED:
        raise ValueError(f"data={data!r}: the mode-collapse benchmark has {sorted(RECOMMENDED)}.")


def check_name(data: str, name: str) -> None:
    """Fails with the valid choices on an unknown data set or configuration, or one that does not run there."""
    check_data(data)
    if name not in CONFIGURATIONS:
        raise ValueError(f"Unknown configuration {name!r}; valid: {sorted(CONFIGURATIONS)}.")
    if not available(data, name):
        raise ValueError(
            f"Configuration {name!r} conditions on k-means clusters, made by the training loop; it "
            f"runs on {sorted(CLUSTERS)}, not {data!r}."
        )


def train_config(data: str, name: str, preset: str = "fast", *, seed: int = 0, train_steps: int = 0):
    """The jaxgan config of one configuration: PacGAN's baseline (module docstring) plus its overrides."""
    from jaxgan.config import base_config

    check_name(data, name)
    c = base_config()
    c.seed = seed
    if data in IMAGE_DATA:
        return _image_config(c, data, name, preset, train_steps)
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} has no 2-D version; valid: {sorted(PRESETS)}.")
    c.data.source, c.data.name, c.data.num_examples = "mixture", data, 100_000
    m = c.model
    p = PRESETS[preset]
    m.name, m.latent_dim, m.g_width, m.depth, m.g_batch_norm = "mlp", 2, p["g_width"], 4, True
    m.d_width, m.d_depth, m.d_maxout_pieces = p["d_width"], 3, 5
    c.loss = "non_saturating"
    steps = train_steps or (p["train_steps"][data] if isinstance(p["train_steps"], dict) else p["train_steps"])
    _set_schedule(c, name, steps, learning_rate=p["learning_rate"], b1=0.8, num_samples=2500, data=data)
    c.batch_size = 100 * c.model.pack  # 100 packed D inputs of `pack` samples each
    return _resolve_epochs(c)


def _set_schedule(c, name: str, steps: int, *, learning_rate: float, b1: float, num_samples: int, data: str) -> None:
    """Both optimizers, the EMA, the run's length and its logging/sampling/checkpoint cadence, then the
    configuration's overrides."""
    c.g_optimizer.learning_rate = c.d_optimizer.learning_rate = learning_rate
    c.g_optimizer.b1 = c.d_optimizer.b1 = b1
    c.ema_decay = 0.999
    c.train_steps = steps
    c.log_every_steps = max(1, steps // 20)
    c.sample_every_steps = c.checkpoint_every_steps = max(1, steps // 4)
    c.num_samples = num_samples
    c.eval_metrics = "modes"
    _apply_overrides(c, name, steps, data)


def _apply_overrides(c, name: str, steps: int, data: str) -> None:
    overrides = dict(CONFIGURATIONS[name])
    overrides.pop("_ema", None)
    if overrides.pop("_info", False):
        c.model.info_categorical = INFO_CODES[data]
    if overrides.pop("_clusters", False):
        c.data.cluster_labels = c.model.num_classes = CLUSTERS[data]
        c.model.fake_labels, c.model.conditioning = "real", "projection"
    for key, value in overrides.items():
        if key in ("regularization.instance_noise_anneal_steps", "lr_decay_steps") and value == -1:
            value = max(1, steps // 2)  # -1: the second half of training
        _set(c, key, value)


def _image_config(c, data: str, name: str, preset: str, train_steps: int):
    """Stacked digits (IMAGE_PRESETS): DCGAN at 8x8x3 or 32x32x3, the standard GAN loss, 64 packed D inputs
    per step (or the configuration's batch_size)."""
    if preset not in IMAGE_PRESETS:
        raise ValueError(f"preset={preset!r} has no stacked-digits version; valid there: {sorted(IMAGE_PRESETS)}.")
    p = IMAGE_PRESETS[preset]
    c.data.source, c.data.image_size, c.data.channels, c.data.num_examples = (
        "stacked_digits",
        p["image_size"],
        3,
        100_000,
    )
    c.model.name, c.model.latent_dim, c.model.g_width, c.model.d_width = "dcgan", 100, p["g_width"], p["d_width"]
    c.loss = "non_saturating"
    _set_schedule(
        c, name, train_steps or p["train_steps"], learning_rate=p["learning_rate"], b1=0.5, num_samples=100, data=data
    )
    c.batch_size = CONFIGURATIONS[name].get("batch_size", 64 * c.model.pack)
    return _resolve_epochs(c)


def _resolve_epochs(c):
    """top_k_decay_steps=-1: one epoch, num_examples // batch_size steps (2-D data: PacGAN's 1000 batches)."""
    if c.regularization.top_k_decay_steps == -1:
        c.regularization.top_k_decay_steps = max(1, c.data.num_examples // c.batch_size)
    return c


def evaluates_ema(name: str) -> bool:
    return bool(CONFIGURATIONS[name].get("_ema", False))


# ----------------------------------------------------------------------------- the multi-seed sweep


def init_seeds(config, step, seeds: Sequence[int]):
    """(stacked states, {"image": [S, N, 2]} data, batchers) for `seeds`, as the loop builds them per seed."""
    from jaxgan import data
    from jaxgan.loop import load_training_arrays
    from jaxgan.train.seeds import stack_trees

    arrays = [load_training_arrays(config.data, seed=s) for s in seeds]
    batchers = [data.ArrayBatcher(a, batch_size=config.batch_size, seed=s) for a, s in zip(arrays, seeds)]
    states = stack_trees([step.init_state(s, a["image"][:1]) for a, s in zip(arrays, seeds)])
    return states, {"image": np.stack([a["image"] for a in arrays])}, batchers


def batch_indices(batchers, start: int, num_steps: int, n_critic: int) -> np.ndarray:
    """int32 [S, K, n_critic, B]: the rows the loop's batches of steps start .. start+K-1 read."""
    return np.stack(
        [
            np.stack(
                [
                    np.stack([b.indices_at(s * n_critic + j) for j in range(n_critic)])
                    for s in range(start, start + num_steps)
                ]
            )
            for b in batchers
        ]
    ).astype(np.int32)


def evaluate_seeds(
    generator, states, *, ema: bool, data: str, eval_seed: int = 0, num: int | None = None
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Per-seed mode coverage of `num` (2,500) samples of G (or EMA-G) in inference mode, and the points
    [S, num, 2]. The latents are tools/sample.py's for --seed=eval_seed."""
    import jax

    from jaxgan.metrics import modes
    from jaxgan.sampling import fixed_latents, generate

    num = num or modes.PROTOCOL_SAMPLES
    z = fixed_latents(eval_seed, num, int(generator.latent_dim))
    params = states.g_ema_params if ema else states.g.params
    points = np.asarray(jax.jit(jax.vmap(lambda p, s: generate(generator, p, s, z)))(params, states.g.batch_stats))
    results = []
    for x in points:
        if not np.isfinite(x).all():
            results.append({"modes": 0, "high_quality": 0.0, "reverse_kl": float("nan"), "diverged": True})
            continue
        results.append(modes.mode_coverage(x, data))
    return results, points


@dataclasses.dataclass
class Row:
    """One line of the table: a configuration's mean +/- standard error over seeds."""

    config: str
    data: str
    seeds: int
    modes_mean: float
    modes_se: float
    hq_mean: float  # percent
    hq_se: float
    rkl_mean: float
    rkl_se: float
    all_modes_seeds: int  # seeds that captured every mode
    steps: int = 0
    steps_per_s_per_seed: float = 0.0


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(
    config: str,
    data: str,
    per_seed: Sequence[Mapping[str, Any]],
    *,
    num_modes: int,
    steps: int = 0,
    steps_per_s_per_seed: float = 0.0,
) -> Row:
    """A Row from per-seed results: means and standard errors (sample std / sqrt(n)); HQ in percent."""
    m, m_se = _mean_se([r["modes"] for r in per_seed])
    hq, hq_se = _mean_se([100.0 * r["high_quality"] for r in per_seed])
    kl, kl_se = _mean_se([r["reverse_kl"] for r in per_seed])
    full = sum(int(r["modes"] == num_modes) for r in per_seed)
    return Row(config, data, len(per_seed), m, m_se, hq, hq_se, kl, kl_se, full, steps, steps_per_s_per_seed)


def _hq_text(r: Row) -> str:
    return "n/a" if math.isnan(r.hq_mean) else f"{r.hq_mean:.1f} +/- {r.hq_se:.1f}"


def write_tables(rows: Sequence[Row], workdir: str) -> tuple[str, str]:
    """results.csv (every Row field) and results.md (modes / % HQ / reverse KL as mean +/- s.e., the
    published PacGAN means beside them where they exist: table 1, or table 2's Stacked MNIST)."""
    csv_path, md_path = os.path.join(workdir, "results.csv"), os.path.join(workdir, "results.md")
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(dataclasses.asdict(r))
    lines = [
        "| data | configuration | seeds | modes | % high quality | reverse KL | all modes | steps | "
        "published (PacGAN tables 1, 2) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pub = PUBLISHED.get((r.data, r.config))
        pub_text = (
            ""
            if not pub
            else (
                f"{pub[0]} / {pub[1]}% / {pub[2]}"
                if pub[1] is not None
                else f"{pub[0]} modes / KL {pub[2]:.2f} (Stacked MNIST)"
            )
        )
        lines.append(
            f"| {r.data} | {r.config} | {r.seeds} | {r.modes_mean:.1f} +/- {r.modes_se:.1f} | "
            f"{_hq_text(r)} | {r.rkl_mean:.3f} +/- {r.rkl_se:.3f} | "
            f"{r.all_modes_seeds}/{r.seeds} | {r.steps} | {pub_text} |"
        )
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return csv_path, md_path


def samples_figure(
    points: np.ndarray, means: np.ndarray, path: str, *, titles: Sequence[str] = (), panel: int = 240
) -> str:
    """A PNG: one panel per seed, its samples (black dots) over the true means (red rings)."""
    from PIL import Image, ImageDraw

    extent = 1.15 * float(np.abs(means).max()) + 0.2
    cols = min(5, len(points))
    rows = math.ceil(len(points) / cols)
    image = Image.new("RGB", (cols * panel, rows * (panel + 14)), "white")
    draw = ImageDraw.Draw(image)
    to_px = lambda p: ((p[..., 0] + extent) / (2 * extent) * panel, (extent - p[..., 1]) / (2 * extent) * panel)
    for i, x in enumerate(points):
        ox, oy = (i % cols) * panel, (i // cols) * (panel + 14)
        draw.rectangle([ox, oy + 14, ox + panel - 1, oy + 14 + panel - 1], outline=(200, 200, 200))
        if i < len(titles):
            draw.text((ox + 4, oy + 1), titles[i], fill=(0, 0, 0))
        mx, my = to_px(means)
        for a, b in zip(mx, my):
            draw.ellipse([ox + a - 5, oy + 14 + b - 5, ox + a + 5, oy + 14 + b + 5], outline=(220, 0, 0))
        x = x[np.isfinite(x).all(axis=1)]
        px, py = to_px(x)
        keep = (px >= 0) & (px < panel) & (py >= 0) & (py < panel)
        for a, b in zip(px[keep], py[keep]):
            draw.point((ox + a, oy + 14 + b), fill=(0, 0, 0))
    image.save(path)
    return path


@dataclasses.dataclass(frozen=True)
class SeedRuns:
    """`seeds` of one 2-D configuration, set up as the sweep trains them (`seed_runs`)."""

    config: Any
    generator: Any
    step: Any  # the pure GANStep of one seed
    states: Any  # the seeds' states, stacked on a leading axis
    data: dict[str, np.ndarray]  # {"image": [S, N, 2]}
    batchers: list  # each seed's batch order (`batch_indices`)
    devices: list  # the devices the seeds are split over
    run: Any  # multi_seed_steps: (states, data, indices) -> (states, metrics)


def seed_runs(data: str, name: str, preset: str, seeds: Sequence[int], *, train_steps: int = 0) -> SeedRuns:
    """Builds `seeds` of configuration `name` on 2-D `data`: K steps of all seeds per call, the seeds split
    over one device each where there are enough (`seed_devices`). tools/bench.py times this same set-up."""
    from jaxgan import config as config_lib
    from jaxgan.train.seeds import multi_seed_steps, seed_devices

    config = train_config(data, name, preset, train_steps=train_steps)
    config_lib.validate(config, 1)
    g, d = config_lib.build_networks(config)
    step = config_lib.build_step(config, g, d, *config_lib.build_optimizers(config))
    states, arrays, batchers = init_seeds(config, step, seeds)
    devices = seed_devices(len(seeds))
    return SeedRuns(config, g, step, states, arrays, batchers, devices, multi_seed_steps(step, devices=devices))


def run_configuration(
    data: str,
    name: str,
    *,
    preset: str,
    seeds: Sequence[int],
    workdir: str,
    train_steps: int = 0,
    steps_per_call: int = 0,
    eval_seed: int = 0,
    log=print,
) -> tuple[Row, list[dict[str, Any]]]:
    """Trains `seeds` of one configuration at once and evaluates them; writes its figure."""
    from jaxgan.metrics import modes

    runs = seed_runs(data, name, preset, seeds, train_steps=train_steps)
    config, states, arrays, batchers, run = runs.config, runs.states, runs.data, runs.batchers, runs.run
    total = config.train_steps
    per_call = min(steps_per_call or PRESETS[preset]["steps_per_call"], total)
    done, t_train, first_call = 0, 0.0, None
    while done < total:
        k = min(per_call, total - done)
        idx = batch_indices(batchers, done, k, config.n_critic)
        t0 = time.perf_counter()
        states, metrics = run(states, arrays, idx)
        d_loss = np.asarray(metrics["d_loss"])
        dt = time.perf_counter() - t0
        if first_call is None:
            first_call = dt  # includes compilation
        else:
            t_train += dt
        done += k
        log(
            f"{data}/{name}: step {done}/{total}, d_loss {np.nanmean(d_loss[:, -1]):.3f}, "
            f"{k * len(seeds) / dt:.0f} seed-steps/s"
        )
    timed_steps = total - min(per_call, total)
    speed = timed_steps / t_train if t_train > 0 else per_call / first_call
    results, points = evaluate_seeds(runs.generator, states, ema=evaluates_ema(name), data=data, eval_seed=eval_seed)
    mixture = modes.get_mixture(data)
    titles = [f"seed {s}: {r['modes']} modes, {100 * r['high_quality']:.1f}% HQ" for s, r in zip(seeds, results)]
    samples_figure(points, mixture.means, os.path.join(workdir, f"samples_{data}_{name}.png"), titles=titles)
    row = summarize(name, data, results, num_modes=len(mixture.means), steps=total, steps_per_s_per_seed=speed)
    return row, results


def train_image_seed(
    data: str,
    name: str,
    *,
    preset: str,
    seed: int,
    workdir: str,
    train_steps: int = 0,
    eval_seed: int = 0,
    num_samples: int | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """One seed of an image benchmark (stacked digits) through jaxgan.loop in `workdir` (so it resumes),
    scored on `num_samples` (the protocol's 26,000) samples of G (or EMA-G); returns the scores and
    100 samples (uint8)."""
    from jaxgan import loop
    from jaxgan import workdir as workdir_lib
    from jaxgan.metrics.evaluator import ModesEvaluator

    config = train_config(data, name, preset, seed=seed, train_steps=train_steps)
    loop.train_and_evaluate(config, workdir, evaluators=[])
    gan = workdir_lib.load_generator(workdir, ema=evaluates_ema(name))  # cluster labels: their frequencies
    evaluator = ModesEvaluator(data=data, seed=eval_seed, num_samples=num_samples)
    images = gan.sample_uint8(evaluator.num_samples, seed=eval_seed)
    scores = evaluator.evaluate_samples(images)
    return {"modes": scores["modes"], "high_quality": float("nan"), "reverse_kl": scores["reverse_kl"]}, images[:100]


def image_figure(samples: Sequence[np.ndarray], path: str) -> str:
    """A PNG: each seed's 10x10 grid of samples, side by side."""
    from PIL import Image

    from jaxgan.sampling import image_grid

    grids = [image_grid(np.asarray(x), columns=10) for x in samples]
    Image.fromarray(np.concatenate(grids, axis=1)).save(path)
    return path


def run_image_configuration(
    data: str,
    name: str,
    *,
    preset: str,
    seeds: Sequence[int],
    workdir: str,
    train_steps: int = 0,
    eval_seed: int = 0,
    log=print,
) -> tuple[Row, list[dict[str, Any]]]:
    """`seeds` of one configuration on image data, one after the other through the loop (each run in
    WORKDIR/runs/<data>_<name>_seed<s>, resumed if relaunched); writes its figure."""
    results, samples, seconds = [], [], 0.0
    for s in seeds:
        t0 = time.perf_counter()
        r, x = train_image_seed(
            data,
            name,
            preset=preset,
            seed=s,
            train_steps=train_steps,
            eval_seed=eval_seed,
            workdir=os.path.join(workdir, "runs", f"{data}_{name}_seed{s}"),
        )
        seconds += time.perf_counter() - t0
        results.append(r)
        samples.append(x)
        log(f"{data}/{name} seed {s}: {r['modes']:.0f} modes, KL {r['reverse_kl']:.3f}")
    image_figure(samples, os.path.join(workdir, f"samples_{data}_{name}.png"))
    steps = train_config(data, name, preset, train_steps=train_steps).train_steps
    row = summarize(
        name, data, results, num_modes=1000, steps=steps, steps_per_s_per_seed=steps * len(seeds) / seconds
    )  # incl. compilation and evaluation
    return row, results


def _comma_list(text: Any) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


def data_names(exp) -> list[str]:
    """The data sets of `--config.data` (a comma-separated list)."""
    return _comma_list(exp.data)


def sweep(exp, workdir: str, log=print) -> list[Row]:
    """The table: every configuration in exp.configs for every data set in exp.data."""
    os.makedirs(workdir, exist_ok=True)
    datas = data_names(exp)
    names = list(CONFIGURATIONS) if exp.configs == "all" else _comma_list(exp.configs)
    for d in datas:  # everything checked before any training; each configuration must run on some data set
        check_data(d)
    for n in names:
        for d in [d for d in datas if available(d, n)] or datas[-1:]:
            check_name(d, n)
    rows, per_seed_lines = [], []
    seeds = list(range(exp.seeds))
    for d in datas:
        for n in names:
            if not available(d, n):
                log(f"{d}/{n}: skipped (k-means cluster configurations run on {sorted(CLUSTERS)})")
                continue
            if d in IMAGE_DATA:
                row, results = run_image_configuration(
                    d,
                    n,
                    preset=exp.preset,
                    seeds=seeds,
                    workdir=workdir,
                    train_steps=exp.train_steps,
                    eval_seed=exp.eval_seed,
                    log=log,
                )
            else:
                row, results = run_configuration(
                    d,
                    n,
                    preset=exp.preset,
                    seeds=seeds,
                    workdir=workdir,
                    train_steps=exp.train_steps,
                    steps_per_call=exp.steps_per_call,
                    eval_seed=exp.eval_seed,
                    log=log,
                )
            rows.append(row)
            per_seed_lines += [
                dict(
                    data=d,
                    config=n,
                    seed=s,
                    modes=r["modes"],
                    high_quality=r["high_quality"],
                    reverse_kl=r["reverse_kl"],
                )
                for s, r in zip(seeds, results)
            ]
            write_tables(rows, workdir)
            with open(os.path.join(workdir, "per_seed.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(per_seed_lines[0]))
                w.writeheader()
                w.writerows(per_seed_lines)
            log(
                f"{d}/{n}: {row.modes_mean:.2f} modes, {row.hq_mean:.1f}% HQ, rKL {row.rkl_mean:.3f}, "
                f"all modes in {row.all_modes_seeds}/{row.seeds} seeds ({row.steps_per_s_per_seed:.0f} steps/s/seed)"
            )
    return rows


# ----------------------------------------------------------------------------- single seed


def single_seed(exp, workdir: str, log=print) -> dict[str, Any]:
    """Trains one seed through jaxgan.loop (checkpoints, samples, config.json), then writes
    modes.json (the protocol on 2,500 samples) and samples.png into the workdir."""
    from jaxgan import config as config_lib
    from jaxgan import loop
    from jaxgan.metrics import modes
    from jaxgan.train.seeds import stack_trees

    data = str(exp.data)
    name = exp.name or RECOMMENDED.get(data, "")
    if data in IMAGE_DATA:
        r, x = train_image_seed(
            data,
            name,
            preset=exp.preset,
            seed=exp.seed,
            workdir=workdir,
            train_steps=exp.train_steps,
            eval_seed=exp.eval_seed,
        )
        out = {
            "data": data,
            "config": name,
            "seed": exp.seed,
            "weights": "ema" if evaluates_ema(name) else "g",
            "modes": r["modes"],
            "kl": r["reverse_kl"],
        }
        with open(os.path.join(workdir, "modes.json"), "w") as f:
            json.dump(out, f, indent=2)
        image_figure([x], os.path.join(workdir, "samples.png"))
        log(json.dumps(out))
        return out
    config = train_config(data, name, exp.preset, seed=exp.seed, train_steps=exp.train_steps)
    state = loop.train_and_evaluate(config, workdir, evaluators=[])
    g, _ = config_lib.build_networks(config)
    import jax

    results, points = evaluate_seeds(
        g, stack_trees([jax.device_get(state)]), ema=evaluates_ema(name), data=data, eval_seed=exp.eval_seed
    )
    r = results[0]
    out = {
        "data": data,
        "config": name,
        "seed": exp.seed,
        "steps": int(state.step),
        "weights": "ema" if evaluates_ema(name) else "g",
        "modes": r["modes"],
        "high_quality": r["high_quality"],
        "reverse_kl": r["reverse_kl"],
    }
    with open(os.path.join(workdir, "modes.json"), "w") as f:
        json.dump(out, f, indent=2)
    samples_figure(
        points,
        modes.get_mixture(data).means,
        os.path.join(workdir, "samples.png"),
        titles=[f"{name} seed {exp.seed}: {r['modes']} modes, {100 * r['high_quality']:.1f}% HQ"],
    )
    log(json.dumps(out))
    return out


def one_cpu_device_per_core() -> None:
    """Asks XLA (before JAX starts its backend) for one host device per CPU core, unless XLA_FLAGS
    already sets a count: the sweep then splits its seeds over the cores (`seed_devices`). A 2-D step's
    ops are too small to use two cores each (figures: experiments/results/mode_collapse_speed/README.md)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores}".strip()


def main(argv: Iterable[str]) -> None:
    del argv
    from absl import flags

    exp, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    if exp.sweep:
        # Image seeds run through the loop, which would split one DCGAN's batch over the host devices
        # (measured slower): only 2-D sweeps get a device per core.
        if not set(data_names(exp)) & set(IMAGE_DATA):
            one_cpu_device_per_core()
        sweep(exp, workdir)
    else:
        single_seed(exp, workdir)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_dict("config", experiment_config(), "Benchmark options (module docstring).")
    flags.DEFINE_string("workdir", None, "Output directory.", required=True)
    app.run(main)
