"""Trains the DigitsCNN shipped in jaxgan/metrics/assets/ (Stacked-digits modes and "FCD").

  python tools/train_digits_classifier.py [--out_dir=jaxgan/metrics/assets] [--seed=0]

Data: scikit-learn's digits exactly as jaxgan's GAN data pipeline sees them
(uint8, upsampled 8 -> 32 bilinear antialiased, scaled to [-1, 1]), trained on
the `sklearn_digits` train split (1442) and evaluated once, at the end, on the
held-out split (355); the held-out set is never used to pick anything. Training
augments with random translations of up to +-2 px (at 32 px) so the classifier
tolerates imperfectly centred GAN digits. Adam with a cosine-decayed learning
rate. Deterministic on CPU for a given seed (a few minutes on 2 cores).

Writes digits_classifier.msgpack (flax.serialization bytes of the params) and
digits_classifier.json (accuracies, the real-vs-real FCD floors, recipe, sha256
of the params file).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import serialization

from jaxgan.metrics import digits_classifier as dc

flags.DEFINE_string("out_dir", dc.ASSETS_DIR, "Where to write the params and the JSON.")
flags.DEFINE_integer("seed", 0, "Init, shuffling and augmentation seed.")
flags.DEFINE_integer("epochs", 60, "Passes over the train split.")
flags.DEFINE_integer("batch_size", 64, "Examples per update.")
flags.DEFINE_float("learning_rate", 3e-3, "Peak Adam learning rate (cosine decay to 0).")
flags.DEFINE_integer("max_shift", 2, "Random translation range in pixels at 32 px.")
flags.DEFINE_integer("floor_samples", 10_000, "Stacked samples per side for the recorded FCD floor.")
FLAGS = flags.FLAGS


def _shift(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Random integer translations of float [-1, 1] images [B, S, S, 1], background -1."""
    if max_shift == 0:
        return images
    b, s = images.shape[0], images.shape[1]
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), constant_values=-1.0)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, b))
    return np.stack([padded[i, dy[i] : dy[i] + s, dx[i] : dx[i] + s] for i in range(b)])


def _to_model(images_u8: np.ndarray) -> np.ndarray:
    return (images_u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0))[..., None]


def _accuracy(params, images: np.ndarray, labels: np.ndarray) -> float:
    logits, _ = dc.classify(images, params=params)
    return float(np.mean(logits.argmax(-1) == labels))


def main(argv):
    del argv
    x_train_u8, y_train = dc.load_split("train")
    x_test_u8, y_test = dc.load_split("test")
    x_train = _to_model(x_train_u8)
    steps_per_epoch = len(x_train) // FLAGS.batch_size
    total_steps = steps_per_epoch * FLAGS.epochs

    params = dc.init_params(FLAGS.seed)
    tx = optax.adam(optax.cosine_decay_schedule(FLAGS.learning_rate, total_steps))
    opt_state = tx.init(params)

    @jax.jit
    def update(params, opt_state, x, y):
        def loss_fn(p):
            logits, _ = dc.DigitsCNN().apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(FLAGS.seed)
    start = time.time()
    for epoch in range(FLAGS.epochs):
        perm = rng.permutation(len(x_train))
        losses = []
        for i in range(steps_per_epoch):
            idx = perm[i * FLAGS.batch_size : (i + 1) * FLAGS.batch_size]
            xb = _shift(x_train[idx], rng, FLAGS.max_shift)
            params, opt_state, loss = update(params, opt_state, jnp.asarray(xb), jnp.asarray(y_train[idx]))
            losses.append(float(loss))
        if epoch % 10 == 9 or epoch == FLAGS.epochs - 1:
            print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}, {time.time() - start:.0f}s", flush=True)

    train_acc = _accuracy(params, x_train_u8, y_train)
    test_acc = _accuracy(params, x_test_u8, y_test)
    print(f"train accuracy {train_acc:.4f}, held-out accuracy {test_acc:.4f}")
    floor = dc.frechet_digits_floor(params=params)
    floor_stacked = dc.frechet_digits_floor(stacked=True, num_samples=FLAGS.floor_samples, seed=0, params=params)
    print(f"FCD floor (train vs held-out): digits {floor:.4f}, stacked {floor_stacked:.4f}")

    os.makedirs(FLAGS.out_dir, exist_ok=True)
    blob = serialization.to_bytes(params)
    params_path = os.path.join(FLAGS.out_dir, os.path.basename(dc.PARAMS_PATH))
    with open(params_path, "wb") as f:
        f.write(blob)
    info = {
        "held_out_accuracy": test_acc,
        "train_accuracy": train_acc,
        "num_train": int(len(y_train)),
        "num_held_out": int(len(y_test)),
        "split": "sklearn_digits: within each class, every 5th example (load_digits order) is held out",
        "preprocessing": "uint8 (v*255+8)//16, bilinear antialiased resize 8->32, x/127.5-1",
        "image_size": dc.IMAGE_SIZE,
        "fcd_floor": {
            "digits": floor,
            "digits_note": "all 1442 train vs all 355 held-out images",
            "stacked": floor_stacked,
            "stacked_note": f"{FLAGS.floor_samples} stacked samples from train (seed 0) vs from held-out (seed 1)",
        },
        "num_params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
        "recipe": {
            "seed": FLAGS.seed,
            "epochs": FLAGS.epochs,
            "batch_size": FLAGS.batch_size,
            "optimizer": "adam, cosine decay",
            "learning_rate": FLAGS.learning_rate,
            "max_shift_px": FLAGS.max_shift,
        },
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        "versions": {"jax": jax.__version__},
    }
    with open(os.path.join(FLAGS.out_dir, os.path.basename(dc.INFO_PATH)), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"wrote {params_path} ({len(blob)} bytes)")


if __name__ == "__main__":
    app.run(main)
