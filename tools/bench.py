"""jaxgan's speed against PyTorch, in one run: the FULL train step and FID extraction.

  python tools/bench.py                      # every row, jaxgan and the PyTorch reference
  python tools/bench.py --only=dcgan32,mlp --json
  python tools/bench.py --only=mlp --steps_per_call=10 --torch=off
  python tools/bench.py --only=input         # the streamed input pipeline against the DCGAN step

Rows: `mlp` (MLP GAN 28x28x1), `dcgan32` (DCGAN 32x32x1), `dcgan64` (DCGAN
64x64x3), `sngan32` (SNGAN ResNet 32x32x3, spectral norm, hinge, n_critic 5, as
experiments/configs/sngan_resnet.py), all at batch 64 and ngf = ndf = 64;
`stylegan2_32` (experiments/configs/stylegan2.py at 32x32x3: its widths, 10
classes, non-saturating loss, style mixing 0.9, lazy R1 every 16 steps and lazy
path length every 4 inside the step, Adam lazy-corrected, half-life EMA) and
`biggan32` (experiments/configs/biggan.py at 32x32x3: BigGAN's G with spectral
norm, attention at 16, projection D, hinge, orthogonal regularization, n_critic
2), both class-conditional (random labels) at batch 64; their lazy regularizers
fire on the same steps in jaxgan and the reference (steps counted from 0), so a
timed run of --steps steps averages them alike; and
`fid` (FID Inception feature extraction, uint8 32x32x3 -> 299 -> 2048-d, batch 50),
and `ring_fast` / `ring_full`: the 2-D ring's recommended mode-collapse step
(experiments/mode_collapse.py, `pacgan2_ema_decay`; `fast`: G 4 x 128, D 3 x 64
maxout; `full`: PacGAN's G 4 x 400, D 3 x 200 x 5 maxout; 100 packed D inputs
of 2 points) trained as its sweep trains it: --seeds seeds at once (split over
one host device per CPU core), --steps_per_call steps in one `lax.scan` call
(default 500). Their steps/s is each seed's, their FLOPs per step those of all
seeds' steps, and they say how long one seed of PacGAN's 400,000 steps takes.
A train step is the whole `GANStep`: n_critic D updates + one G update + the EMA.

`input` is a group of rows of its own table: the streamed input pipeline alone
(`jaxgan.data.stream.StreamBatcher` over a `FolderSource` of --input_files random
RGB PNGs per size, written once into --input_dir and then read from the page
cache; batch --batch_size, --input_threads read threads) at each of
--input_sizes and --input_workers worker processes: images/s (median of --repeats
runs of --input_images images, after a warm-up) and "start s", the time to the
first batch (Grain spawns each worker process, which imports jaxgan). Beside it,
at each size DCGAN has (8 to 64), the images/s the DCGAN train step consumes (the
`dcgan64` row's step: ngf = ndf = 64; --input_step_steps steps per timed run),
and which of the two is the bottleneck. The pipeline alone has every core to
itself, while in training it shares them with the step, so with --input_fed the
step is also timed fed from the pipeline, batch by batch, at each worker count.

Protocol: each row runs in a fresh child process (so its peak resident memory
is its own); the first call (compilation included) is timed apart; then the
median of --repeats timed runs of --steps steps each. In the same run, the
PyTorch reference of the same networks and step (benchmarks/torch_reference.py:
eager, channels-last, torch.compile) runs row by row in its own processes, and
the table gives jaxgan / best PyTorch. "% peak" is the step's FLOPs (XLA's cost
analysis of the compiled step) times steps/s over the measured matmul peak of
the same devices (a large float32 matmul, the `peak` row). "state MB" is the
train state's size; "copies" is the compiled step's input + output buffers,
the donated (aliased) ones counted once, in units of the state: ~1 when
donation works (the new state reuses the old one's memory), ~2 when it does not;
"temp MB" is XLA's scratch for activations and gradients. `--profile` adds
where the step's time goes: XLA op time per step by category (convolution,
reduce-window, transpose/copy, elementwise fusion, ...) and the slowest ops,
from a jax.profiler trace of --steps more steps.

Needs torch for the reference (`pip install "jaxgan[bench]"`); without it the
jaxgan rows still run and the PyTorch columns say why they are empty.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string(
    "only",
    "",
    "Comma-separated rows (mlp, dcgan32, dcgan64, sngan32, stylegan2_32, biggan32, fid, ring_fast, ring_full, "
    "input); empty = all.",
)
flags.DEFINE_integer(
    "batch_size",
    64,
    "Global batch per D update (fid: images per extraction call = 50; ring rows: their configuration's 200 points).",
)
flags.DEFINE_integer(
    "n_critic", 0, "D updates per step; 0 = the row's own (1; sngan32: 5; biggan32: 2; ring rows: always 1)."
)
flags.DEFINE_string("critic_loop", "auto", "scan, unroll or auto.")
flags.DEFINE_integer(
    "steps_per_call",
    0,
    "Train steps per compiled call (jaxgan.multi_step; ring rows: the sweep's "
    "lax.scan); 0 = 1 (ring rows: 500); steps/s counts steps.",
)
flags.DEFINE_integer("seeds", 1, "ring rows: seeds trained at once (the benchmark's sweep trains 10).")
flags.DEFINE_string("step_loop", "auto", "With steps_per_call > 1: scan, unroll or auto.")
flags.DEFINE_string(
    "compiler_options",
    "auto",
    "XLA options of the step: 'auto' (jaxgan's CPU choice), 'none' (XLA defaults) or k=v,k=v.",
)
flags.DEFINE_integer("steps", 10, "Steps per timed run.")
flags.DEFINE_integer("repeats", 5, "Timed runs; the median is reported.")
flags.DEFINE_enum("torch", "auto", ["auto", "off"], "auto: run the PyTorch reference when torch is installed.")
flags.DEFINE_string("torch_variants", "eager,channels_last,compile", "PyTorch variants to run.")
flags.DEFINE_bool("json", False, "One JSON line per row instead of a table.")
flags.DEFINE_bool("fid_xla_defaults", False, "fid row: XLA's default options, not fid.CPU_COMPILER_OPTIONS.")
flags.DEFINE_bool(
    "profile",
    False,
    "Train rows: also profile --steps steps per XLA op (jax.profiler) and report "
    "where the time goes, by op category and the top ops.",
)
flags.DEFINE_string("input_sizes", "64,128", "input rows: image sizes (the PNGs' and the batches').")
flags.DEFINE_string("input_workers", "0,1,2", "input rows: StreamBatcher worker_count values.")
flags.DEFINE_integer("input_threads", 2, "input rows: StreamBatcher num_threads (config.data.read_threads).")
flags.DEFINE_integer("input_images", 1024, "input rows: images per timed run (rounded up to whole batches).")
flags.DEFINE_integer("input_files", 1000, "input rows: PNG files per size in --input_dir.")
flags.DEFINE_string("input_dir", "", "input rows: where the PNG folders are written and reused; '' = a temp dir.")
flags.DEFINE_integer("input_step_steps", 3, "input rows: DCGAN steps per timed run (--repeats runs).")
flags.DEFINE_bool("input_fed", True, "input rows: also time the DCGAN step fed from the pipeline, per worker count.")
flags.DEFINE_string("child", "", "Internal: run one row in this process and print its JSON line.")
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_ROWS = ("mlp", "dcgan32", "dcgan64", "sngan32", "stylegan2_32", "biggan32")
# Train rows built from an experiments/configs preset (at 32x32x3, --batch_size, the row's n_critic).
PRESET_ROWS = {"sngan32": "sngan_resnet", "stylegan2_32": "stylegan2", "biggan32": "biggan"}
RING_ROWS = {"ring_fast": "fast", "ring_full": "full"}  # row -> experiments/mode_collapse.py preset
RING_STEPS_PER_CALL = 500
PROTOCOL_STEPS = 400_000  # PacGAN's 2-D runs: 400 epochs of 1000 batches
INPUT_GROUP = "input"  # rows of the input pipeline and the DCGAN step beside it: their own table
INPUT_WARMUP_BATCHES = 2
ALL_ROWS = (*TRAIN_ROWS, "fid", *RING_ROWS, INPUT_GROUP)
TORCH_ROWS = (*TRAIN_ROWS, "fid")  # the rows benchmarks/torch_reference.py has
ROW_N_CRITIC = {"sngan32": 5, "biggan32": 2}
PEAK_MATMUL_SIZE = 2048


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _row_networks(name: str):
    from jaxgan.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

    if name == "mlp":
        return (
            MLPGenerator(latent_dim=100, out_shape=(28, 28, 1), hidden=256, depth=2, tanh_output=True),
            MLPDiscriminator(hidden=256, depth=2),
            (28, 28, 1),
        )
    size = {"dcgan32": 32, "dcgan64": 64}.get(name) or _rgb_dcgan_size(name)
    if size:
        channels = 1 if name == "dcgan32" else 3
        return (
            DCGANGenerator(latent_dim=100, image_size=size, channels=channels, ngf=64),
            DCGANDiscriminator(image_size=size, ndf=64),
            (size, size, channels),
        )
    raise KeyError(name)


def _rgb_dcgan_size(name: str) -> int | None:
    """N of a `dcgan<N>rgb` row (DCGAN NxNx3, as `dcgan64` at another size; the input rows' step)."""
    if name.startswith("dcgan") and name.endswith("rgb") and name[5:-3].isdigit():
        return int(name[5:-3])
    return None


def _row_step(name: str, n_critic: int):
    """(generator, discriminator, sample shape, step, g_tx, d_tx) of a train row."""
    import optax

    import jaxgan

    if name in PRESET_ROWS:
        import importlib

        from jaxgan.config import build_networks, build_optimizers, build_step

        config = importlib.import_module(f"experiments.configs.{PRESET_ROWS[name]}").get_config()
        config.data.channels, config.batch_size, config.n_critic = 3, FLAGS.batch_size, n_critic
        config.critic_loop = FLAGS.critic_loop
        generator, discriminator = build_networks(config)
        g_tx, d_tx = build_optimizers(config)
        step = build_step(config, generator, discriminator, g_tx, d_tx)
        return generator, discriminator, step.sample_shape, step, g_tx, d_tx
    generator, discriminator, shape = _row_networks(name)
    g_tx = d_tx = optax.adam(2e-4, b1=0.5)
    step = jaxgan.make_train_step(
        generator=generator,
        discriminator=discriminator,
        g_tx=g_tx,
        d_tx=d_tx,
        loss=jaxgan.get_loss("non_saturating"),
        n_critic=n_critic,
        ema_decay=0.999,
        critic_loop=FLAGS.critic_loop,
    )
    return generator, discriminator, shape, step, g_tx, d_tx


def _compiler_options():
    text = FLAGS.compiler_options
    if text in ("auto", "none"):
        return "auto" if text == "auto" else None
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return options


def _tree_bytes(tree) -> int:
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))


def _compiled_flops(compiled) -> float:
    """XLA's FLOP count of a compiled function (0.0 where the backend gives none); a loop's body counts once."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def _time_steps(call, state, *, calls: int, steps_per_call: int):
    """Times `call(state) -> (state, metrics)`: the first call (compilation included) apart, then the median
    over --repeats runs of `calls` calls, per step. Returns (first call s, s per step, state, metrics)."""
    import jax

    start = time.perf_counter()
    state, metrics = call(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(calls):
            state, metrics = call(state)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - start) / (calls * steps_per_call))
    return compile_s, statistics.median(times), state, metrics


def bench_train_row(name: str, fed_workers: tuple[int, ...] = ()) -> dict:
    """A train row; with `fed_workers`, also the step fed from the input pipeline at each worker count."""
    import jax
    import numpy as np

    import jaxgan

    n_critic = FLAGS.n_critic or ROW_N_CRITIC.get(name, 1)
    generator, discriminator, shape, step, g_tx, d_tx = _row_step(name, n_critic)
    k = FLAGS.steps_per_call or 1
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (n_critic, FLAGS.batch_size, *shape)).astype(np.float32)
    host = {"image": images}
    if step.num_classes:  # class-conditional rows: random real labels (G draws its own, uniform)
        host["label"] = rng.integers(0, step.num_classes, (n_critic, FLAGS.batch_size)).astype(np.int32)
    state = jaxgan.create_train_state(
        0, generator=generator, discriminator=discriminator, example_images=images[0], g_tx=g_tx, d_tx=d_tx
    )
    state = state.replace(extras=step.init_extras(state))
    mesh = jaxgan.make_mesh(jax.local_devices())
    train_step = jaxgan.shard_map_step(
        step, mesh, steps_per_call=k, step_loop=FLAGS.step_loop, compiler_options=_compiler_options()
    )
    state = jaxgan.replicate(state, mesh)
    if k > 1:
        batch = jaxgan.train.multi_global_batch({key: np.stack([v] * k) for key, v in host.items()}, mesh)
    else:
        batch = jaxgan.global_batch(host, mesh)
    state_bytes = _tree_bytes(state)

    compiled = train_step.compiled.lower(state, batch).compile()
    flops = _compiled_flops(compiled)
    if k > 1 and jaxgan.train.steps.resolve_step_loop(FLAGS.step_loop) == "unroll":
        flops /= k  # XLA counts a scan's body once, but every unrolled copy
    row_options = jaxgan.train.parallel.resolve_compiler_options(_compiler_options(), jax.local_devices(), step)
    memory = compiled.memory_analysis()
    held = temp = None
    if memory is not None:  # in and out buffers, the donated ones counted once; activations apart
        held = memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
        temp = memory.temp_size_in_bytes

    calls = max(1, FLAGS.steps // k)
    compile_s, per_step, state, _ = _time_steps(lambda s: train_step(s, batch), state, calls=calls, steps_per_call=k)
    fed = None
    if fed_workers:
        fed, state = _time_fed_steps(train_step, state, mesh, shape, n_critic, fed_workers)
    breakdown = None
    if FLAGS.profile:
        sys.path.insert(0, ROOT)
        from benchmarks.xla_profile import profile_steps

        state, breakdown = profile_steps(train_step, state, batch, calls, calls * k)
    return dict(
        op_breakdown=breakdown,
        fed=fed,
        name=name,
        framework="jaxgan",
        backend=jax.default_backend(),
        devices=mesh.size,
        n_critic=n_critic,
        critic_loop=jaxgan.train.steps.resolve_critic_loop(FLAGS.critic_loop),
        steps_per_call=k,
        batch_size=FLAGS.batch_size,
        steps_per_s=1.0 / per_step,
        images_per_s=FLAGS.batch_size * n_critic / per_step,
        compile_plus_first_s=compile_s,
        flops_per_step=flops,
        state_mb=state_bytes / 2**20,
        step_temp_mb=None if temp is None else temp / 2**20,
        state_copies=None if held is None else held / state_bytes,
        peak_rss_mb=peak_rss_mb(),
        compiler_options=row_options or "xla defaults",
    )


def _input_folder(size: int) -> str:
    root = FLAGS.input_dir or os.path.join(tempfile.gettempdir(), "jaxgan_bench_input")
    return os.path.join(root, f"png{size}x{size}_n{FLAGS.input_files}")


def write_input_folder(size: int) -> str:
    """--input_files random size x size RGB PNGs (img_000000.png, ...); the missing ones are written, so a
    folder written before is reused."""
    import numpy as np
    from PIL import Image

    path = _input_folder(size)
    os.makedirs(path, exist_ok=True)
    present = set(os.listdir(path))
    for i in range(FLAGS.input_files):
        name = f"img_{i:06d}.png"
        if name not in present:
            pixels = np.random.default_rng([size, i]).integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(path, f".{name}.tmp"), format="PNG")
            os.replace(os.path.join(path, f".{name}.tmp"), os.path.join(path, name))  # never a truncated PNG
    return path


def _stream_batcher(size: int, worker_count: int):
    from jaxgan.data.sources import FolderSource
    from jaxgan.data.stream import StreamBatcher

    return StreamBatcher(
        FolderSource(_input_folder(size)),
        batch_size=FLAGS.batch_size,
        seed=0,
        image_size=size,
        channels=3,
        worker_count=worker_count,
        num_threads=FLAGS.input_threads,
    )


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)  # stops Grain's threads and worker processes
    if close is not None:
        close()


def bench_input_pipeline(size: int, worker_count: int) -> dict:
    """Images/s of the streamed input pipeline alone: StreamBatcher batches read as fast as they come."""
    import grain  # noqa: F401 - imported before the clock starts: "start s" is the pipeline's own start-up

    import jaxgan.data.stream  # noqa: F401

    start = time.perf_counter()
    batcher = _stream_batcher(size, worker_count)
    stream = batcher.iterate(0)
    first = next(stream)
    startup_s = time.perf_counter() - start
    if first["image"].shape != (FLAGS.batch_size, size, size, 3):
        raise ValueError(f"batch of {first['image'].shape}, expected {(FLAGS.batch_size, size, size, 3)}")
    # Warm-up: more batches than the read-ahead buffers hold (Grain's, and each worker's), so that the timed
    # runs read batches as they are made, not ones made ahead.
    for _ in range(max(INPUT_WARMUP_BATCHES, (worker_count + 1) * (batcher.prefetch + 1))):
        next(stream)
    batches = -(-FLAGS.input_images // FLAGS.batch_size)
    times = []
    for _ in range(FLAGS.repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            next(stream)
        times.append(time.perf_counter() - t0)
    _close(stream)
    return dict(
        name=f"input{size}",
        framework="jaxgan",
        image_size=size,
        worker_count=worker_count,
        num_threads=FLAGS.input_threads,
        batch_size=FLAGS.batch_size,
        files=len(batcher.source),
        images_per_s=batches * FLAGS.batch_size / statistics.median(times),
        startup_s=startup_s,
        peak_rss_mb=peak_rss_mb(),
        workers_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0 or None,
    )


def _time_fed_steps(train_step, state, mesh, shape, n_critic: int, worker_counts):
    """Images/s of the compiled step fed from the input pipeline (each batch read while the step runs) at each
    worker count, beside the same step on one fixed batch ("fixed"), and the final state.

    Every pipeline is started first (its first step, worker start-up included, timed apart; then
    INPUT_WARMUP_BATCHES untimed steps) and kept open, its workers idle while another is timed; then --repeats
    rounds each time --steps steps of every variant in turn, so that a change in the machine's load during
    the run falls on all of them alike. Each variant's median round is reported."""
    import jax
    import numpy as np

    import jaxgan

    fixed = jaxgan.global_batch(
        {"image": np.random.default_rng(0).uniform(-1, 1, (n_critic, FLAGS.batch_size, *shape)).astype(np.float32)},
        mesh,
    )

    def feeder(stream):
        return lambda: jaxgan.global_batch({"image": np.stack([next(stream)["image"] for _ in range(n_critic)])}, mesh)

    streams, feeds, first_s = {}, {"fixed": lambda: fixed}, {}
    for worker_count in worker_counts:
        streams[worker_count] = _stream_batcher(shape[0], worker_count).iterate(0)
        feeds[worker_count] = feeder(streams[worker_count])
        start = time.perf_counter()
        state, metrics = train_step(state, feeds[worker_count]())
        jax.block_until_ready(metrics)
        first_s[worker_count] = time.perf_counter() - start
        for _ in range(INPUT_WARMUP_BATCHES):
            state, metrics = train_step(state, feeds[worker_count]())
        jax.block_until_ready(metrics)
    times = {key: [] for key in feeds}
    for _ in range(FLAGS.repeats):
        for key, feed in feeds.items():
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                state, metrics = train_step(state, feed())
            jax.block_until_ready(metrics)
            times[key].append((time.perf_counter() - start) / FLAGS.steps)
    for stream in streams.values():
        _close(stream)
    fed = {}
    for key, per_step in times.items():
        per_step = statistics.median(per_step)
        fed[key] = dict(images_per_s=FLAGS.batch_size * n_critic / per_step, steps_per_s=1.0 / per_step)
        if key in first_s:
            fed[key]["first_step_s"] = first_s[key]
    return fed, state


def bench_ring_row(name: str) -> dict:
    """The ring's recommended mode-collapse step as experiments/mode_collapse.py's sweep trains it:
    `jaxgan.train.seeds.multi_seed_steps`, K steps of S seeds per call, the seeds split over the devices."""
    import jax
    import numpy as np

    import jaxgan
    from experiments import mode_collapse
    from jaxgan.train.seeds import tree_index

    preset = RING_ROWS[name]
    seeds = list(range(FLAGS.seeds))
    runs = mode_collapse.seed_runs("ring", mode_collapse.RECOMMENDED["ring"], preset, seeds)
    config, step, data, devices = runs.config, runs.step, runs.data, runs.devices
    k = FLAGS.steps_per_call or RING_STEPS_PER_CALL
    indices = mode_collapse.batch_indices(runs.batchers, 0, k, config.n_critic)

    # FLOPs of one step of one seed: XLA's cost analysis of the plain step (a loop's body is counted once).
    mesh = jaxgan.make_mesh(devices[:1])
    one_step = jaxgan.shard_map_step(step, mesh)
    one_batch = jaxgan.global_batch({"image": data["image"][0][indices[0, 0]]}, mesh)
    one_state = jaxgan.replicate(tree_index(runs.states, 0), mesh)
    flops = _compiled_flops(one_step.compiled.lower(one_state, one_batch).compile()) * len(seeds)

    calls = max(1, FLAGS.steps // k)
    compile_s, per_step, _, metrics = _time_steps(
        lambda s: runs.run(s, data, indices), runs.states, calls=calls, steps_per_call=k
    )
    if not np.isfinite(np.asarray(metrics["d_loss"])).all():
        return dict(name=name, framework="jaxgan", error="the ring step diverged (non-finite d_loss)")
    return dict(
        name=name,
        framework="jaxgan",
        backend=jax.default_backend(),
        devices=len(devices),
        seeds=len(seeds),
        preset=preset,
        n_critic=config.n_critic,
        steps_per_call=k,
        batch_size=config.batch_size,
        steps_per_s=1.0 / per_step,
        images_per_s=config.batch_size * config.n_critic * len(seeds) / per_step,
        compile_plus_first_s=compile_s,
        flops_per_step=flops,
        protocol_minutes_per_seed=PROTOCOL_STEPS * per_step / 60,
        peak_rss_mb=peak_rss_mb(),
    )


def bench_fid() -> dict:
    import jax
    import numpy as np

    from jaxgan.metrics import fid, weights

    try:
        variables, meta = weights.load_inception_params()
    except weights.WeightsError as e:
        return dict(name="fid", framework="jaxgan", error=f"no Inception weights ({str(e)[:300]})")
    options = {} if FLAGS.fid_xla_defaults else "auto"
    extractor = fid.InceptionFeatures(variables, weights_meta=meta, batch_size=50, compiler_options=options)
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
    flops = None
    try:
        flops = _compiled_flops(extractor._fn.lower(extractor._variables, images).compile()) or None  # noqa: SLF001
    except Exception:  # noqa: BLE001 - the % of peak column is then left empty
        pass
    return dict(
        name="fid",
        framework="jaxgan",
        backend=jax.default_backend(),
        devices=extractor.mesh.size,
        n_critic=None,
        critic_loop=None,
        steps_per_call=1,
        batch_size=extractor.batch_size,
        steps_per_s=1.0 / per_batch,
        images_per_s=extractor.batch_size / per_batch,
        compile_plus_first_s=compile_s,
        flops_per_step=flops,
        peak_rss_mb=peak_rss_mb(),
        compiler_options="defaults" if FLAGS.fid_xla_defaults else "auto",
    )


def bench_peak() -> dict:
    """The float32 matmul throughput of the devices jaxgan uses: the denominator of '% peak'."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = PEAK_MATMUL_SIZE
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(matmul(a, a))
    times = []
    for _ in range(max(5, FLAGS.repeats)):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        times.append(time.perf_counter() - start)
    return dict(
        name="peak", framework="jaxgan", backend=jax.default_backend(), gflops=2 * n**3 / statistics.median(times) / 1e9
    )


def run_child(name: str, **overrides) -> dict:
    """Runs `tools/bench.py --child=NAME` with this run's flags (`overrides` replacing some); returns its JSON
    line."""
    flag_names = (
        "batch_size",
        "n_critic",
        "critic_loop",
        "steps_per_call",
        "step_loop",
        "compiler_options",
        "steps",
        "repeats",
        "fid_xla_defaults",
        "profile",
        "seeds",
        "input_threads",
        "input_images",
        "input_files",
        "input_dir",
        "input_workers",
        "input_fed",
    )
    argv = [sys.executable, os.path.abspath(__file__), f"--child={name}"]
    argv += [f"--{f}={overrides.get(f, getattr(FLAGS, f))}" for f in flag_names]
    result = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")),
    )
    return _last_json(result, name)


def _last_json(result: subprocess.CompletedProcess, name: str) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        return dict(name=name, error=f"exit {result.returncode}: {result.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def torch_rows(name: str) -> list[dict]:
    """The PyTorch reference's rows for `name`, one per variant (benchmarks/torch_reference.py)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return [dict(name=name, framework="torch", error='torch not installed: pip install "jaxgan[bench]"')]
    n_critic = FLAGS.n_critic or ROW_N_CRITIC.get(name, 1)
    argv = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "torch_reference.py"),
        f"--only={name}",
        f"--variants={FLAGS.torch_variants}",
        f"--steps={FLAGS.steps}",
        f"--repeats={FLAGS.repeats}",
        "--json",
    ]
    if name != "fid":
        argv += [f"--batch_size={FLAGS.batch_size}", f"--n_critic={n_critic}"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if not rows:
        return [dict(name=name, framework="torch", error=f"exit {result.returncode}: {result.stderr.strip()[-600:]}")]
    return rows


def best_torch(rows: list[dict]) -> dict | None:
    ok = [r for r in rows if not r.get("error") and r.get("steps_per_s")]
    return max(ok, key=lambda r: r["steps_per_s"]) if ok else None


def _fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def input_step_row(size: int) -> str | None:
    """The train row whose DCGAN step consumes size x size RGB images (`dcgan64` at 64), or None (no DCGAN)."""
    from jaxgan.nets.registry import SUPPORTED_IMAGE_SIZES

    if size not in SUPPORTED_IMAGE_SIZES["dcgan"]:
        return None
    return "dcgan64" if size == 64 else f"dcgan{size}rgb"


def run_input_group() -> None:
    """The `input` rows: the input pipeline alone at each size and worker count, the DCGAN step beside it
    (also fed from the pipeline with --input_fed), and which one is the bottleneck; their own table."""
    sizes, workers = _int_list(FLAGS.input_sizes), _int_list(FLAGS.input_workers)
    if not FLAGS.json:
        print(
            f"\ninput pipeline: StreamBatcher over FolderSource ({FLAGS.input_files} random RGB PNGs per size, "
            f"page-cached), batch {FLAGS.batch_size}, read_threads {FLAGS.input_threads}; "
            f"DCGAN step (ngf = ndf = 64, n_critic {FLAGS.n_critic or 1}) beside it; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(
            f"{'size':>5} {'workers':>7} {'img/s':>8} {'start s':>7} {'RSS MB':>7} {'wkr MB':>7} | "
            f"{'step img/s':>10} {'fed img/s':>9} {'bottleneck':>10}",
            flush=True,
        )
    for size in sizes:
        write_input_folder(size)
        step_name = input_step_row(size)
        step = run_child(f"input_step/{step_name}", steps=FLAGS.input_step_steps) if step_name else None
        step_rate = step.get("images_per_s") if step else None
        fed = (step or {}).get("fed") or {}
        rows = [run_child(f"input_pipeline/{size}/{w}") for w in workers]
        if FLAGS.json:
            for r in (*rows, *([step] if step else [])):
                print(json.dumps(r), flush=True)
            continue
        if step and step.get("error"):
            print(f"{size:>5} DCGAN step ({step_name}) error: {step['error']}", flush=True)
        for w, row in zip(workers, rows):
            if row.get("error"):
                print(f"{size:>5} {w:>7} error: {row['error']}", flush=True)
                continue
            rate = row["images_per_s"]
            verdict = "-" if step_rate is None else "input" if rate < step_rate else "step"
            print(
                f"{size:>5} {w:>7} {rate:>8.0f} {row['startup_s']:>7.1f} {row['peak_rss_mb']:>7.0f} "
                f"{_fmt(row.get('workers_peak_rss_mb'), '.0f'):>7} | {_fmt(step_rate, '.0f'):>10} "
                f"{_fmt(fed.get(str(w), {}).get('images_per_s'), '.0f'):>9} {verdict:>10}",
                flush=True,
            )
        ok = [(r["images_per_s"], w) for w, r in zip(workers, rows) if not r.get("error")]
        if not ok:
            continue
        best, best_w = max(ok)
        if step_rate is None:
            why = "the DCGAN step failed" if step_name else "no DCGAN at this size (it has 8 to 64)"
            print(
                f"{'':5} {size}x{size}: {why}; the pipeline alone gives up to {best:.0f} img/s (worker_count {best_w})",
                flush=True,
            )
            continue
        slow = [w for rate, w in ok if rate < step_rate]
        which = (
            f"the input pipeline at worker_count {slow}"
            if slow
            else f"the train step (pipeline/step >= {min(rate for rate, _ in ok) / step_rate:.3g}x)"
        )
        print(
            f"{'':5} {size}x{size}: bottleneck: {which}; the step consumes {step_rate:.0f} img/s (first call "
            f"{step['compile_plus_first_s']:.0f} s), the pipeline gives up to {best:.0f} (worker_count {best_w})",
            flush=True,
        )
        if fed:
            print(
                f"{'':5} {size}x{size}: step fed from the pipeline, timed in turn with the step on a fixed batch "
                f"({fed['fixed']['images_per_s']:.0f} img/s): "
                + ", ".join(
                    f"worker_count {w}: {fed[str(w)]['images_per_s']:.0f} img/s (first step "
                    f"{fed[str(w)]['first_step_s']:.1f} s)"
                    for w in workers
                ),
                flush=True,
            )
    if not FLAGS.json:
        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)


def main(argv):
    del argv
    if FLAGS.child:
        if FLAGS.child in RING_ROWS:
            from experiments import mode_collapse

            mode_collapse.one_cpu_device_per_core()  # as its sweep: seeds in parallel on the cores
            print(json.dumps(bench_ring_row(FLAGS.child)), flush=True)
            return
        if FLAGS.child.startswith("input_pipeline/"):  # input_pipeline/SIZE/WORKERS
            _, size, workers = FLAGS.child.split("/")
            print(json.dumps(bench_input_pipeline(int(size), int(workers))), flush=True)
            return
        if FLAGS.child.startswith("input_step/"):  # input_step/ROW: a train row, also fed from the pipeline
            fed_workers = tuple(_int_list(FLAGS.input_workers)) if FLAGS.input_fed else ()
            print(json.dumps(bench_train_row(FLAGS.child.split("/")[1], fed_workers)), flush=True)
            return
        import jax  # noqa: F401 - after flags, in the child only

        row = {"peak": bench_peak, "fid": bench_fid}.get(FLAGS.child)
        print(json.dumps(row() if row else bench_train_row(FLAGS.child)), flush=True)
        return
    names = [n for n in FLAGS.only.split(",") if n] or list(ALL_ROWS)
    unknown = sorted(set(names) - set(ALL_ROWS))
    if unknown:
        raise app.UsageError(f"Unknown rows {unknown}; valid: {list(ALL_ROWS)}.")
    for flag, least in (
        ("seeds", 1),
        ("steps_per_call", 0),
        ("steps", 1),
        ("repeats", 1),
        ("input_threads", 1),
        ("input_images", 1),
        ("input_files", 1),
        ("input_step_steps", 1),
    ):
        if getattr(FLAGS, flag) < least:
            raise app.UsageError(f"--{flag}={getattr(FLAGS, flag)}: it must be >= {least}.")
    if INPUT_GROUP in names and (not _int_list(FLAGS.input_sizes) or min(_int_list(FLAGS.input_workers) or [-1]) < 0):
        raise app.UsageError("--input_sizes needs a size and --input_workers counts >= 0.")
    peak = run_child("peak") if set(names) - {INPUT_GROUP} else {}
    peak_gflops = peak.get("gflops")
    if peak and FLAGS.json:
        print(json.dumps(peak), flush=True)
    elif peak:  # the train table (none when only the input rows run)
        print(
            f"matmul peak: {_fmt(peak_gflops, '.0f')} GFLOP/s ({peak.get('backend', '?')}, "
            f"float32 {PEAK_MATMUL_SIZE}^2)",
            flush=True,
        )
        print(
            f"{'row':12} {'steps/s':>8} {'img/s':>7} {'compile s':>9} {'GFLOP/st':>8} {'% peak':>6} "
            f"{'state MB':>8} {'copies':>6} {'temp MB':>7} {'RSS MB':>7} | {'torch best':>22} {'RSS MB':>7} {'ratio':>6}",
            flush=True,
        )
    for name in names:
        if name == INPUT_GROUP:
            run_input_group()
            continue
        row = run_child(name)
        if row.get("flops_per_step") and peak_gflops and row.get("steps_per_s"):
            row["percent_of_peak"] = 100 * row["flops_per_step"] * row["steps_per_s"] / (peak_gflops * 1e9)
        references = torch_rows(name) if FLAGS.torch == "auto" and name in TORCH_ROWS else []
        best = best_torch(references)
        if best and row.get("steps_per_s"):
            row["torch_best_variant"] = best.get("variant")
            row["torch_best_steps_per_s"] = best["steps_per_s"]
            row["ratio_to_torch_best"] = row["steps_per_s"] / best["steps_per_s"]
        if FLAGS.json:
            for r in (row, *references):
                print(json.dumps(r), flush=True)
            continue
        if row.get("error"):
            print(f"{name:12} error: {row['error']}", flush=True)
            continue
        torch_text = (
            f"{best['steps_per_s']:.2f} ({best.get('variant')})"
            if best
            else (
                references[0].get("error", "")[:22] if references else "off" if name in TORCH_ROWS else "no reference"
            )
        )
        print(
            f"{name:12} {row['steps_per_s']:>8.2f} {row['images_per_s']:>7.0f} {row['compile_plus_first_s']:>9.1f} "
            f"{_fmt(row.get('flops_per_step') and row['flops_per_step'] / 1e9, '.2f'):>8} "
            f"{_fmt(row.get('percent_of_peak'), '.0f'):>6} {_fmt(row.get('state_mb'), '.1f'):>8} "
            f"{_fmt(row.get('state_copies'), '.2f'):>6} {_fmt(row.get('step_temp_mb'), '.0f'):>7} "
            f"{row['peak_rss_mb']:>7.0f} | {torch_text:>22} "
            f"{_fmt(best and best.get('peak_rss_mb'), '.0f'):>7} {_fmt(row.get('ratio_to_torch_best'), '.2f'):>6}",
            flush=True,
        )
        if row.get("protocol_minutes_per_seed"):
            print(
                f"{'':12} {row['seeds']} seed(s) on {row['devices']} device(s), {row['steps_per_call']} steps per "
                f"call: one seed of PacGAN's {PROTOCOL_STEPS:,} steps takes "
                f"{row['protocol_minutes_per_seed']:.0f} min",
                flush=True,
            )
        if row.get("op_breakdown"):
            b = row["op_breakdown"]
            print(
                f"{'':12} XLA op time {b['op_ms_per_step']:.1f} ms/step (all threads): "
                + ", ".join(f"{c} {v['percent']:.0f}%" for c, v in b["categories"].items()),
                flush=True,
            )
            print(f"{'':12} slowest ops (ms/step): " + ", ".join(f"{n} {ms:.1f}" for n, ms in b["top_ops"]), flush=True)
        for r in references:
            if r.get("error"):
                print(f"{'':12} torch {r.get('variant', '')}: {r['error'][:200]}", flush=True)
            else:
                print(
                    f"{'':12} torch {r.get('variant', ''):14} {r['steps_per_s']:>8.2f} steps/s, compile "
                    f"{_fmt(r.get('compile_plus_first_s'), '.1f')} s",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
