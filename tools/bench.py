"""Steps/s of the FULL jaxgan train step (n_critic D updates + G update + EMA).

  python tools/bench.py [--only=dcgan32] [--n_critic=5] [--critic_loop=scan] [--json]
  python tools/bench.py --only=fid [--fid_batch=50] [--fid_xla_defaults]

Median of --repeats timed runs of --steps steps each, after a warm-up; compile
time reported separately. The `fid` row is images/s of FID Inception feature
extraction (uint8 32x32x3 -> 299x299 -> 2048-d, `fid.InceptionFeatures`, one
--fid_batch batch per timed run; steps/s = batches/s); it is skipped with a
message when the Inception weights cannot be fetched. Runs on whatever backend
JAX picks (CPU here, a GPU where there is one), over all local devices. Issue
10 grows this into the full benchmark against PyTorch.
"""

from __future__ import annotations

import json
import statistics
import time

import jax
import numpy as np
import optax
from absl import app, flags

import jaxgan
from jaxgan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

flags.DEFINE_string("only", "", "Comma-separated rows to run (mlp, dcgan32, dcgan64); empty = all.")
flags.DEFINE_integer("n_critic", 1, "D updates per step.")
flags.DEFINE_string("critic_loop", "auto", "scan, unroll or auto.")
flags.DEFINE_integer("batch_size", 64, "Global batch per D update.")
flags.DEFINE_integer("steps", 10, "Steps per timed run.")
flags.DEFINE_integer("repeats", 5, "Timed runs; the median is reported.")
flags.DEFINE_bool("json", False, "One JSON line per row instead of a table.")
flags.DEFINE_integer("fid_batch", 50, "fid row: images per feature-extraction call.")
flags.DEFINE_bool("fid_xla_defaults", False, "fid row: XLA's default options, not fid.CPU_COMPILER_OPTIONS.")
FLAGS = flags.FLAGS

ROWS = {
    "mlp": lambda: (MLPGenerator(latent_dim=100, out_shape=(28, 28, 1), hidden=256, depth=2, tanh_output=True),
                    MLPDiscriminator(hidden=256, depth=2), (28, 28, 1)),
    "dcgan32": lambda: (DCGANGenerator(latent_dim=100, image_size=32, channels=1, ngf=64),
                        DCGANDiscriminator(image_size=32, ndf=64), (32, 32, 1)),
    "dcgan64": lambda: (DCGANGenerator(latent_dim=100, image_size=64, channels=3, ngf=64),
                        DCGANDiscriminator(image_size=64, ndf=64), (64, 64, 3)),
}


def bench_row(name: str) -> dict:
    generator, discriminator, shape = ROWS[name]()
    g_tx = d_tx = optax.adam(2e-4, b1=0.5)
    images = np.random.default_rng(0).uniform(-1, 1, (FLAGS.n_critic, FLAGS.batch_size, *shape)).astype(np.float32)
    state = jaxgan.create_train_state(0, generator=generator, discriminator=discriminator,
                                      example_images=images[0], g_tx=g_tx, d_tx=d_tx)
    step = jaxgan.make_train_step(generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
                                  loss=jaxgan.get_loss("non_saturating"), n_critic=FLAGS.n_critic,
                                  critic_loop=FLAGS.critic_loop)
    mesh = jaxgan.make_mesh(jax.local_devices())
    train_step = jaxgan.shard_map_step(step, mesh)
    state = jaxgan.replicate(state, mesh)
    batch = jaxgan.global_batch({"image": images}, mesh)

    start = time.perf_counter()
    state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            state, metrics = train_step(state, batch)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - start) / FLAGS.steps)
    per_step = statistics.median(times)
    return dict(name=name, backend=jax.default_backend(), devices=mesh.size, n_critic=FLAGS.n_critic,
                critic_loop=jaxgan.train.steps.resolve_critic_loop(FLAGS.critic_loop),
                batch_size=FLAGS.batch_size, steps_per_s=1.0 / per_step,
                images_per_s=FLAGS.batch_size * FLAGS.n_critic / per_step, compile_plus_first_s=compile_s)


def bench_fid() -> dict | None:
    from jaxgan.metrics import fid, weights

    try:
        variables, meta = weights.load_inception_params()
    except weights.WeightsError as e:
        print(f"fid: skipped, no Inception weights ({str(e)[:300]})", flush=True)
        return None
    options = {} if FLAGS.fid_xla_defaults else "auto"
    extractor = fid.InceptionFeatures(variables, weights_meta=meta, batch_size=FLAGS.fid_batch,
                                      compiler_options=options)
    images = np.random.default_rng(0).integers(0, 256, (extractor.batch_size, 32, 32, 3), dtype=np.uint8)
    start = time.perf_counter()
    extractor(images)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        extractor(images)
        times.append(time.perf_counter() - start)
    per_batch = statistics.median(times)
    return dict(name="fid", backend=jax.default_backend(), devices=extractor.mesh.size, n_critic="-",
                critic_loop="-", batch_size=extractor.batch_size, steps_per_s=1.0 / per_batch,
                images_per_s=extractor.batch_size / per_batch, compile_plus_first_s=compile_s,
                xla_options="defaults" if FLAGS.fid_xla_defaults else "auto")


EXTRA_ROWS = {"fid": bench_fid}


def main(argv):
    del argv
    names = [n for n in FLAGS.only.split(",") if n] or [*ROWS, *EXTRA_ROWS]
    unknown = sorted(set(names) - set(ROWS) - set(EXTRA_ROWS))
    if unknown:
        raise app.UsageError(f"Unknown rows {unknown}; valid: {sorted([*ROWS, *EXTRA_ROWS])}.")
    if not FLAGS.json:
        print(f"{'row':10} {'backend':8} {'dev':>3} {'n_crit':>6} {'loop':7} {'steps/s':>9} {'img/s':>9} {'compile s':>9}")
    for name in names:
        r = EXTRA_ROWS[name]() if name in EXTRA_ROWS else bench_row(name)
        if r is None:
            continue
        if FLAGS.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{r['name']:10} {r['backend']:8} {r['devices']:>3} {r['n_critic']:>6} {r['critic_loop']:7} "
                  f"{r['steps_per_s']:>9.2f} {r['images_per_s']:>9.0f} {r['compile_plus_first_s']:>9.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
