"""GAN data augmentation for a classifier: does adding conditional-GAN samples to a small labeled set help?

    python experiments/augment_classifier.py --workdir=DIR            # fast preset (results/augment_classifier_fast)
    python experiments/augment_classifier.py --workdir=DIR \
        --config=experiments/configs/augment_classifier_full.py       # the README table
    python experiments/augment_classifier.py --workdir=DIR --config.data.name=mnist --config.data.image_size=28

writes DIR/results.csv (one row per setting: n_per_class, setting, ratio, n_seeds, mean, std, and the paired
difference to "real" of the same seeds), DIR/results.md (the table and a plain verdict), DIR/per_seed.csv,
DIR/results.png (accuracy with +/- 1 std error bars), DIR/config.json and DIR/timing.json.

Protocol. For each n in n_per_class and each seed s:
  1. subset: n training images per class drawn from the train split (`per_class_subset`, seed s);
  2. GAN: a class-conditional GAN trained on that subset only (init, latents and batch order from seed s);
  3. the same classifier (architecture, initialization from seed s, number of updates, batch draws and
     augmentation draws from seed s) trained in every setting:
       real             the subset;
       classic          the subset with classic augmentation (shift, small rotation, elastic; real images);
       gan              the subset + r * n GAN samples per class (ratio r = synthetic:real);
       classic+gan      both;
       gan_filtered     the subset + r * n GAN samples per class, the ones the seed's "real" classifier
                        gives the highest probability of their conditioning class among oversample times
                        as many candidates;
       cas              GAN samples only, n per class: the classification accuracy score (Ravuri & Vinyals
                        2019, arXiv:1905.10887), train on synthetic, test on real;
  4. accuracy on the held-out test split, which neither the GAN nor any classifier (nor the filter) sees;
     the ids of every training image are checked disjoint from the test ids.
Mean and sample standard deviation (ddof=1) over seeds; since the settings share each seed's subset and
classifier initialization, the paired difference to "real" is reported too. Given the seeds, every number
is bit-reproducible on the same machine and software (all randomness is seeded; no data-order races).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
import time
from typing import Iterable, Mapping, Sequence

import numpy as np

SETTINGS = ("real", "classic", "gan", "classic+gan", "gan_filtered", "cas")
EVALUATE_ON = ("test", "validation")
# Streams folded into a seed so that what seed s draws for each purpose is independent.
_CLASSIFIER_STREAM = 1


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass
class Splits:
    """The labeled train and test splits, uint8 images, with ids unique across both splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    train_ids: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_ids: np.ndarray
    num_classes: int


def load_splits(data_config) -> Splits:
    """Both splits through jaxgan's TFDS loader. Ids: the sklearn digits' `load_digits()` row for
    `sklearn_digits` (checked against sklearn's own array in the tests); elsewhere the row in the train
    split, and len(train) + row in the test split."""
    from jaxgan import data

    d = data_config
    if d.train_split == d.test_split:
        raise ValueError(
            f"config.data.train_split and test_split are both {d.train_split!r}; the test split must "
            "be held out (e.g. train_split='train', test_split='test')."
        )
    load = functools.partial(
        data.load_tfds_images,
        d.name,
        data_dir=d.data_dir or None,
        image_size=d.image_size,
        channels=d.channels,
        with_labels=True,
    )
    train, test = load(split=d.train_split), load(split=d.test_split)
    if d.name == "sklearn_digits" and d.train_split in ("train", "test") and d.test_split in ("train", "test"):
        from jaxgan.data.digits import digits_arrays, split_indices

        rows = split_indices(digits_arrays()[1])
        train_ids, test_ids = rows[d.train_split], rows[d.test_split]
    else:
        train_ids = np.arange(len(train["label"]))
        test_ids = len(train_ids) + np.arange(len(test["label"]))
    num_classes = int(max(train["label"].max(), test["label"].max())) + 1
    return Splits(
        train["image"],
        train["label"].astype(np.int32),
        train_ids,
        test["image"],
        test["label"].astype(np.int32),
        test_ids,
        num_classes,
    )


def to_float(images: np.ndarray) -> np.ndarray:
    from jaxgan.common import to_model_range

    return to_model_range(np.asarray(images))


# ----------------------------------------------------------------------------- the GAN


def gan_config(exp, num_classes: int):
    """The jaxgan config of the conditional GAN (MLP G and D, `exp.gan`)."""
    from jaxgan.config import base_config

    g = exp.gan
    c = base_config()
    c.data.image_size, c.data.channels = exp.data.image_size, exp.data.channels
    m = c.model
    m.name, m.latent_dim, m.g_width, m.d_width, m.depth = "mlp", g.latent_dim, g.g_width, g.d_width, g.depth
    m.num_classes, m.conditioning = num_classes, g.conditioning
    c.loss = g.loss
    c.g_optimizer.learning_rate = c.d_optimizer.learning_rate = g.learning_rate
    c.g_optimizer.b1 = c.d_optimizer.b1 = g.b1
    c.regularization.diff_augment = g.diff_augment
    c.ema_decay = g.ema_decay
    c.batch_size = g.batch_size
    c.train_steps = g.train_steps
    c.eval_metrics = ""
    return c


def train_gans(exp, images: np.ndarray, labels: np.ndarray, seeds: Sequence[int], log=print):
    """(generator, stacked states): one conditional GAN per seed on its own subset, all seeds at once.

    images: float [S, N, H, W, C] in [-1, 1]; labels int32 [S, N]. Seed s initializes its GAN with s and
    reads its batches in `ArrayBatcher(seed=s)` order, as `jaxgan.loop` would for config.seed = s.
    """
    import jax

    from jaxgan import config as config_lib
    from jaxgan import data
    from jaxgan.train.seeds import multi_seed_steps, stack_trees

    config = gan_config(exp, int(labels.max()) + 1)
    config_lib.validate(config, 1)
    g, d = config_lib.build_networks(config)
    step = config_lib.build_step(config, g, d, *config_lib.build_optimizers(config))
    states = stack_trees([step.init_state(s, images[i, :1]) for i, s in enumerate(seeds)])
    batchers = [
        data.ArrayBatcher({"image": images[i], "label": labels[i]}, batch_size=config.batch_size, seed=s)
        for i, s in enumerate(seeds)
    ]
    run = multi_seed_steps(step)
    done, total = 0, config.train_steps
    while done < total:
        k = min(exp.gan.steps_per_call, total - done)
        idx = np.stack([np.stack([[b.indices_at(t)] for t in range(done, done + k)]) for b in batchers])
        states, metrics = run(states, {"image": images, "label": labels}, idx.astype(np.int32))
        done += k
        d_loss = np.asarray(metrics["d_loss"])[:, -1]
        if not np.isfinite(d_loss).all():
            raise FloatingPointError(
                f"GAN training diverged (non-finite D loss) by step {done}; lower config.gan.learning_rate."
            )
        log(f"  GAN step {done}/{total}: d_loss " + " ".join(f"{v:.3f}" for v in d_loss))
    return g, jax.device_get(states)


def generate_per_class(
    generator, params, batch_stats, *, per_class: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """per_class * num_classes samples: sample i has class i % num_classes and latent i of `seed`, so the
    first k * num_classes samples hold k of each class."""
    from jaxgan.sampling import sample_batched

    labels = np.tile(np.arange(num_classes, dtype=np.int32), per_class)
    images = sample_batched(generator, params, batch_stats, num=len(labels), seed=seed, labels=labels)
    return np.asarray(images, np.float32), labels


def first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Rows of the first k samples of each class (in row order)."""
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rank[rows] = np.arange(len(rows))
    return np.flatnonzero(rank < k)


# ----------------------------------------------------------------------------- the classifier runs


def count_per_class(ratio: float, n: int) -> int:
    """Synthetic images per class at synthetic:real `ratio` with n real per class (ratio * n, a whole number)."""
    k = ratio * n
    if ratio <= 0 or abs(k - round(k)) > 1e-9:
        raise ValueError(
            f"ratio {ratio} with n_per_class={n} gives {k} synthetic images per class; choose "
            "positive ratios with ratio * n_per_class a whole number."
        )
    return int(round(k))


def setting_list(exp) -> list[tuple[str, float]]:
    """(setting, ratio) in table order; ratio is synthetic:real (cas: synthetic images per real one, no real)."""
    out = [("real", 0.0), ("classic", 0.0)]
    out += [("gan", float(r)) for r in exp.ratios]
    out += [("classic+gan", float(r)) for r in exp.classic_gan_ratios]
    out += [("gan_filtered", float(r)) for r in exp.filter_ratios]
    return out + [("cas", 1.0)]


def pool_for(
    setting: str,
    ratio: float,
    n: int,
    real: Mapping[str, np.ndarray],
    synth: Mapping[str, np.ndarray],
    filtered_rows: np.ndarray | None,
    size: int,
) -> tuple[dict[str, np.ndarray], int]:
    """One seed's training pool for a setting, zero-padded to `size` rows, and the rows in use."""
    if setting in ("real", "classic"):
        parts = [(real, None)]
    elif setting in ("gan", "classic+gan"):
        parts = [(real, None), (synth, first_per_class(synth["label"], count_per_class(ratio, n)))]
    elif setting == "gan_filtered":
        parts = [(real, None), (synth, filtered_rows)]
    elif setting == "cas":
        parts = [(synth, first_per_class(synth["label"], n))]
    else:
        raise ValueError(f"Unknown setting {setting!r}; valid: {SETTINGS}.")
    images, labels, is_real = [], [], []
    for part, rows in parts:
        rows = np.arange(len(part["label"])) if rows is None else rows
        images.append(part["image"][rows])
        labels.append(part["label"][rows])
        is_real.append(np.full(len(rows), part is real))
    images, labels, is_real = np.concatenate(images), np.concatenate(labels), np.concatenate(is_real)
    used = len(labels)
    pad = size - used
    return {
        "image": np.pad(images, ((0, pad),) + ((0, 0),) * (images.ndim - 1)),
        "label": np.pad(labels, (0, pad)).astype(np.int32),
        "is_real": np.pad(is_real, (0, pad)),
    }, used


def run_size(
    exp, splits: Splits, n: int, seeds: Sequence[int], log=print, workdir: str | None = None
) -> dict[tuple[str, float], list[float]]:
    """Every setting for n images per class: {(setting, ratio): [accuracy of each seed]}. With a workdir,
    also writes samples_n{n}.png: the first seed's real subset (left) and GAN samples, one row per class."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxgan import classify
    from jaxgan.train.seeds import stack_trees, tree_index

    C = splits.num_classes
    t0 = time.perf_counter()
    subsets = [classify.per_class_subset(splits.train_labels, n, seed=s, num_classes=C) for s in seeds]
    for rows in subsets:  # the GAN and every classifier train on these rows (and on GAN samples) only
        classify.check_disjoint(training_subset=splits.train_ids[rows], test_split=splits.test_ids)
    real_x = np.stack([to_float(splits.train_images[r]) for r in subsets])
    real_y = np.stack([splits.train_labels[r] for r in subsets])

    log(f"n={n}: training {len(seeds)} conditional GANs on {n * C} images each")
    generator, gans = train_gans(exp, real_x, real_y, seeds, log=log)
    t_gan = time.perf_counter() - t0

    settings = setting_list(exp)
    max_ratio = max([r for s, r in settings if s != "cas"] + [1.0])
    candidates = max(
        [count_per_class(r, n) for s, r in settings if s in ("gan", "classic+gan")]
        + [n]
        + [exp.filter_oversample * count_per_class(r, n) for s, r in settings if s == "gan_filtered"]
    )
    synth = []
    for i, s in enumerate(seeds):
        gan = tree_index(gans, i)
        params = gan.g_ema_params if exp.gan.use_ema else gan.g.params
        x, y = generate_per_class(generator, params, gan.g.batch_stats, per_class=candidates, num_classes=C, seed=s)
        synth.append({"image": x, "label": y})

    if workdir:
        save_samples(real_x[0], real_y[0], synth[0], os.path.join(workdir, f"samples_n{n}.png"), per_class=min(n, 10))

    cfg = exp.classifier
    model = classify.SmallCNN(num_classes=C, widths=tuple(cfg.widths), hidden=cfg.hidden)
    tx = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    k = exp.classic
    augment = functools.partial(
        classic_augment_fn(),
        max_shift=k.max_shift,
        max_rotation_degrees=k.max_rotation_degrees,
        elastic_alpha=k.elastic_alpha,
        elastic_sigma=k.elastic_sigma,
        fill=k.fill,
    )
    fits = {
        False: classify.make_fit_seeds(model=model, tx=tx, num_steps=cfg.steps, batch_size=cfg.batch_size),
        True: classify.make_fit_seeds(
            model=model, tx=tx, num_steps=cfg.steps, batch_size=cfg.batch_size, augment=augment
        ),
    }
    init = jax.jit(jax.vmap(lambda key: classify.create_state(model, tx, key, jnp.zeros((1, *real_x.shape[2:])))))
    init_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), _CLASSIFIER_STREAM) for s in seeds])
    states0 = init(init_keys)

    eval_x, eval_y = evaluation_sets(exp, splits, subsets, seeds)
    evaluate = jax.jit(jax.vmap(lambda p, x, y: classify.accuracy(model, p, x, y)))
    probs_fn = jax.jit(jax.vmap(lambda p, x: jax.nn.softmax(classify.predict_logits(model, p, x))))
    pool_size = (1 + max_ratio) * n * C
    pool_size = int(max(pool_size, n * C * (1 + max([r for s, r in settings if s == "gan_filtered"] + [0]))))

    results: dict[tuple[str, float], list[float]] = {}
    real_params, filtered = None, {}
    for setting, ratio in settings:
        if setting == "gan_filtered" and ratio not in filtered:
            probs = np.asarray(probs_fn(real_params, jnp.stack([jnp.asarray(p["image"]) for p in synth])))
            keep = count_per_class(ratio, n)
            filtered[ratio] = []
            for i, p in enumerate(synth):
                cand = first_per_class(p["label"], exp.filter_oversample * keep)
                own = probs[i, cand, p["label"][cand]]
                filtered[ratio].append(cand[classify.top_confident_per_class(own, p["label"][cand], keep)])
        pools, used = zip(
            *[
                pool_for(
                    setting,
                    ratio,
                    n,
                    {"image": real_x[i], "label": real_y[i]},
                    synth[i],
                    filtered[ratio][i] if setting == "gan_filtered" else None,
                    pool_size,
                )
                for i in range(len(seeds))
            ]
        )
        t = time.perf_counter()
        states, _ = fits[setting in ("classic", "classic+gan")](
            states0, stack_trees(pools), jnp.asarray(used, jnp.int32)
        )
        acc = np.asarray(evaluate(states.params, eval_x, eval_y), np.float64)
        if setting == "real":
            real_params = states.params
        results[(setting, ratio)] = acc.tolist()
        log(
            f"n={n} {setting:12s} ratio {ratio:g}: {exp.evaluate_on} accuracy {acc.mean():.4f} +/- "
            f"{acc.std(ddof=1) if len(acc) > 1 else 0.0:.4f} ({time.perf_counter() - t:.0f} s)"
        )
    log(f"n={n}: GANs {t_gan:.0f} s, total {time.perf_counter() - t0:.0f} s")
    return results


def save_samples(
    real_x: np.ndarray, real_y: np.ndarray, synth: Mapping[str, np.ndarray], path: str, *, per_class: int
) -> str:
    """A PNG grid, one row per class: `per_class` real images, a blank, then `per_class` GAN samples."""
    from PIL import Image

    from jaxgan.common import to_uint8
    from jaxgan.sampling import image_grid

    rows = []
    for c in range(int(real_y.max()) + 1):
        r = real_x[real_y == c][:per_class]
        g = synth["image"][synth["label"] == c][:per_class]
        r = np.concatenate([r, np.full((per_class - len(r),) + r.shape[1:], -1.0, np.float32)])
        rows.append(np.concatenate([r, np.full((1,) + r.shape[1:], 1.0, np.float32), g]))
    images = np.asarray(to_uint8(np.concatenate(rows)))
    grid = image_grid(images, columns=2 * per_class + 1)
    scale = max(1, 96 // images.shape[1])
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).resize(
        (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST
    ).save(path)
    return path


def classic_augment_fn():
    from jaxgan.classify import classic_augment

    return classic_augment


def evaluation_sets(exp, splits: Splits, subsets: Sequence[np.ndarray], seeds: Sequence[int]):
    """Per-seed evaluation images [S, M, ...] and labels [S, M]: the test split for every seed, or
    (evaluate_on='validation') up to max_validation train images outside each seed's subset."""
    if exp.evaluate_on not in EVALUATE_ON:
        raise ValueError(f"config.evaluate_on={exp.evaluate_on!r}; valid: {EVALUATE_ON}.")
    if exp.evaluate_on == "test":
        x, y = to_float(splits.test_images), splits.test_labels
        return np.stack([x] * len(seeds)), np.stack([y] * len(seeds))
    rest = [np.setdiff1d(np.arange(len(splits.train_labels)), rows) for rows in subsets]
    m = min(exp.max_validation, min(len(r) for r in rest))
    picks = [np.sort(np.random.default_rng([s, 2]).choice(r, m, replace=False)) for s, r in zip(seeds, rest)]
    return (
        np.stack([to_float(splits.train_images[p]) for p in picks]),
        np.stack([splits.train_labels[p] for p in picks]),
    )


# ----------------------------------------------------------------------------- tables and plot


@dataclasses.dataclass
class Row:
    """One line of results.csv: a setting's accuracy over seeds, and its paired difference to "real"."""

    n_per_class: int
    setting: str
    ratio: float
    n_seeds: int
    mean: float
    std: float  # sample standard deviation over seeds (ddof=1)
    delta_mean: float  # mean over seeds of (this setting - real), same seed
    delta_std: float


def summarize(n: int, results: Mapping[tuple[str, float], Sequence[float]]) -> list[Row]:
    """Rows in `results` order: mean, sample std and the paired difference to ("real", 0)."""
    real = np.asarray(results[("real", 0.0)], np.float64)
    rows = []
    for (setting, ratio), acc in results.items():
        acc = np.asarray(acc, np.float64)
        delta = acc - real
        sd = lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0
        rows.append(Row(n, setting, float(ratio), len(acc), float(acc.mean()), sd(acc), float(delta.mean()), sd(delta)))
    return rows


def helps(row: Row) -> bool:
    """Whether a setting beats "real": its mean paired gain exceeds two standard errors of that gain."""
    if row.n_seeds < 2:
        return row.delta_mean > 0
    return row.delta_mean > 2 * row.delta_std / math.sqrt(row.n_seeds)


def verdict(rows: Sequence[Row]) -> list[str]:
    """Plain sentences per n_per_class: did GAN samples help, against real only and against classic?"""
    lines = []
    for n in sorted({r.n_per_class for r in rows}):
        block = [r for r in rows if r.n_per_class == n]
        by = {(r.setting, r.ratio): r for r in block}
        real, classic = by[("real", 0.0)], by.get(("classic", 0.0))
        gan_rows = [r for r in block if r.setting in ("gan", "gan_filtered")]
        best = max(gan_rows, key=lambda r: r.mean) if gan_rows else None
        text = f"**{n} per class.** Real only: {100 * real.mean:.1f}%."
        if best is not None:
            gain = f"{100 * best.delta_mean:+.1f} +/- {100 * best.delta_std:.1f} points"
            picked = f"the best of {len(gan_rows)} GAN settings, not corrected for picking the best"
            if helps(best):
                text += (
                    f" GAN samples helped: the best GAN setting ({best.setting}, ratio {best.ratio:g}) "
                    f"reached {100 * best.mean:.1f}% ({gain} over real only, paired by seed; {picked})."
                )
            else:
                text += (
                    f" GAN samples did NOT help: the best GAN setting ({best.setting}, ratio {best.ratio:g}) "
                    f"reached {100 * best.mean:.1f}% ({gain} vs real only, paired by seed; not more than "
                    f"two standard errors above zero; {picked})."
                )
        if classic is not None:
            text += f" Classic augmentation: {100 * classic.mean:.1f}% ({100 * classic.delta_mean:+.1f} points)."
            both = [r for r in block if r.setting == "classic+gan"]
            if both:
                b = max(both, key=lambda r: r.mean)
                word = "above" if b.mean - classic.mean > 0 else "not above"
                text += (
                    f" Classic + GAN (ratio {b.ratio:g}): {100 * b.mean:.1f}%, {word} classic alone "
                    f"({100 * (b.mean - classic.mean):+.1f} points)."
                )
        cas = by.get(("cas", 1.0))
        if cas is not None:
            text += (
                f" Classification accuracy score (trained on {n} GAN samples per class only): "
                f"{100 * cas.mean:.1f}% vs {100 * real.mean:.1f}% for {n} real ones."
            )
        lines.append(text)
    return lines


def write_tables(rows: Sequence[Row], workdir: str, *, evaluate_on: str = "test") -> tuple[str, str]:
    """results.csv (every Row field, full precision) and results.md (percentages and the verdict)."""
    csv_path, md_path = os.path.join(workdir, "results.csv"), os.path.join(workdir, "results.md")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in dataclasses.fields(Row)])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in dataclasses.asdict(r).items()})
    lines = [
        f"{evaluate_on} accuracy (%), mean +/- sample std over seeds; gain = paired difference to real only.",
        "",
        "| n per class | setting | synthetic:real | seeds | accuracy | gain vs real |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (
            "-"
            if r.setting in ("real", "classic")
            else ("1:0 (synthetic only)" if r.setting == "cas" else f"{r.ratio:g}:1")
        )
        gain = "" if r.setting == "real" else f"{100 * r.delta_mean:+.1f} +/- {100 * r.delta_std:.1f}"
        lines.append(
            f"| {r.n_per_class} | {r.setting} | {ratio} | {r.n_seeds} | {100 * r.mean:.1f} +/- "
            f"{100 * r.std:.1f} | {gain} |"
        )
    lines += [""] + verdict(rows)
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return csv_path, md_path


COLORS = {
    "real": (90, 90, 90),
    "classic": (31, 119, 180),
    "gan": (255, 127, 14),
    "classic+gan": (44, 160, 44),
    "gan_filtered": (214, 39, 40),
    "cas": (148, 103, 189),
}


def plot(rows: Sequence[Row], path: str, *, evaluate_on: str = "test") -> str:
    """A PNG bar chart (pillow): one panel per n_per_class, one horizontal bar per setting (mean accuracy)
    with +/- 1 std error bars, an accuracy axis with ticks, and a legend of the setting colors."""
    from PIL import Image, ImageDraw

    sizes = sorted({r.n_per_class for r in rows})
    per = max(sum(r.n_per_class == n for r in rows) for n in sizes)
    bar, label_w, plot_w, top = 18, 120, 300, 40
    panel_h = top + per * bar + 50
    legend_h = 20 * math.ceil(len(COLORS) / 3) + 10
    width = len(sizes) * (label_w + plot_w + 30) + 10
    image = Image.new("RGB", (width, panel_h + legend_h + 20), "white")
    draw = ImageDraw.Draw(image)
    black, grey = (0, 0, 0), (210, 210, 210)
    low = [r.mean - r.std for r in rows if np.isfinite(r.mean)]
    lo = max(0.0, math.floor(10 * min(low + [1.0])) / 10)  # axis from a round tenth below the lowest bar
    to_x = lambda ox, a: ox + label_w + (min(max(a, lo), 1.0) - lo) / (1.0 - lo + 1e-12) * plot_w
    for p, n in enumerate(sizes):
        ox = 10 + p * (label_w + plot_w + 30)
        draw.text((ox + label_w, 8), f"{n} labeled images per class", fill=black)
        block = [r for r in rows if r.n_per_class == n]
        for t in np.linspace(lo, 1.0, 6):
            x = to_x(ox, t)
            draw.line([x, top - 4, x, top + len(block) * bar], fill=grey)
            draw.text((x - 10, top + len(block) * bar + 4), f"{100 * t:.0f}", fill=black)
        draw.text(
            (ox + label_w + 40, top + len(block) * bar + 20), f"{evaluate_on} accuracy (%), mean +/- std", fill=black
        )
        for i, r in enumerate(block):
            y = top + i * bar
            name = r.setting if r.setting in ("real", "classic", "cas") else f"{r.setting} {r.ratio:g}:1"
            draw.text((ox, y + 3), name, fill=black)
            x0, x1 = to_x(ox, lo), to_x(ox, r.mean)
            draw.rectangle([x0, y + 3, x1, y + bar - 3], fill=COLORS.get(r.setting, black))
            ea, eb = to_x(ox, r.mean - r.std), to_x(ox, r.mean + r.std)
            draw.line([ea, y + bar / 2, eb, y + bar / 2], fill=black, width=1)
            draw.line([ea, y + 4, ea, y + bar - 4], fill=black)
            draw.line([eb, y + 4, eb, y + bar - 4], fill=black)
        draw.line([to_x(ox, lo), top - 4, to_x(ox, lo), top + len(block) * bar], fill=black)
    ly = panel_h + 10
    for j, (name, color) in enumerate(COLORS.items()):
        x, y = 10 + (j % 3) * 180, ly + 20 * (j // 3)
        draw.rectangle([x, y + 2, x + 14, y + 12], fill=color)
        draw.text((x + 20, y + 1), name, fill=black)
    image.save(path)
    return path


# ----------------------------------------------------------------------------- driver


def check_config(exp) -> None:
    """Clear errors before any data loads or anything compiles."""
    if exp.seeds < 1:
        raise ValueError(f"config.seeds={exp.seeds} must be >= 1 (the issue asks for >= 5 per setting).")
    if not exp.n_per_class or min(exp.n_per_class) < 1:
        raise ValueError(f"config.n_per_class={exp.n_per_class!r} must be positive ints, e.g. (10, 20, 50).")
    if exp.evaluate_on not in EVALUATE_ON:
        raise ValueError(f"config.evaluate_on={exp.evaluate_on!r}; valid: {EVALUATE_ON}.")
    if exp.filter_oversample < 1:
        raise ValueError(f"config.filter_oversample={exp.filter_oversample} must be >= 1.")
    for n in exp.n_per_class:
        for r in list(exp.ratios) + list(exp.classic_gan_ratios) + list(exp.filter_ratios):
            count_per_class(float(r), int(n))
    if exp.classifier.steps < 1 or exp.gan.train_steps < 1:
        raise ValueError("config.classifier.steps and config.gan.train_steps must be >= 1.")


def run(exp, workdir: str, log=print) -> list[Row]:
    """The whole experiment: every n_per_class, every setting, `seeds` seeds; writes the outputs."""
    check_config(exp)
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(os.path.join(workdir, "results.csv")) and not exp.overwrite:
        raise FileExistsError(
            f"{workdir}/results.csv exists; choose another --workdir or pass --config.overwrite=True to replace it."
        )
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(exp.to_json(indent=2))
    t0 = time.perf_counter()
    splits = load_splits(exp.data)
    log(
        f"{exp.data.name}: {len(splits.train_labels)} train / {len(splits.test_labels)} test images, "
        f"{splits.num_classes} classes"
    )
    seeds = list(range(exp.seeds))
    rows, per_seed, timing = [], [], {}
    for n in exp.n_per_class:
        t = time.perf_counter()
        results = run_size(exp, splits, int(n), seeds, log=log, workdir=workdir)
        timing[f"n{n}_s"] = round(time.perf_counter() - t, 1)
        rows += summarize(int(n), results)
        per_seed += [
            dict(n_per_class=n, setting=s, ratio=r, seed=seed, accuracy=repr(a))
            for (s, r), accs in results.items()
            for seed, a in zip(seeds, accs)
        ]
        write_tables(rows, workdir, evaluate_on=exp.evaluate_on)
        plot(rows, os.path.join(workdir, "results.png"), evaluate_on=exp.evaluate_on)
        with open(os.path.join(workdir, "per_seed.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(per_seed[0]))
            w.writeheader()
            w.writerows(per_seed)
    timing["total_s"] = round(time.perf_counter() - t0, 1)
    with open(os.path.join(workdir, "timing.json"), "w") as f:
        json.dump(timing, f, indent=2)
    for line in verdict(rows):
        log(line)
    return rows


def main(argv: Iterable[str]) -> None:
    del argv
    from absl import flags

    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "augment_classifier.py"),
        "Experiment config (fast preset by default).",
        lock_config=True,
    )
    flags.DEFINE_string("workdir", None, "Output directory.", required=True)
    app.run(main)
