"""Peak resident memory of a streamed training run against the dataset's size.

  python tools/measure_stream_rss.py                       # 2,000 and 20,000 PNGs, 50 steps each
  python tools/measure_stream_rss.py --dir=/tmp/pngs --sizes=2000,20000 --steps=50 --worker_count=1
  python tools/measure_stream_rss.py --train_arg=--config.eval_every_steps=50 --train_arg=--config.eval_metrics=msssim

Writes folders of random 64x64 RGB PNGs (DIR/n2000, DIR/n20000; reused when they already hold the
right files), then runs the same `experiments/train.py` run (DCGAN, `config.data.source=folder`) on
each, in a fresh child process and a fresh workdir, and prints a markdown table of each run's peak
RSS and wall time. Streaming (jaxgan.data.stream) should make the peak independent of the number of
files: only the file names are held, never the decoded images; the last line says whether the peaks
are within --tolerance of each other.

Two peaks per run: "peak RSS" is the training process's own high-water mark (`os.wait4`'s rusage:
the child's ru_maxrss, which the kernel keeps for it and its waited-for descendants, so each run is
measured apart, unlike RUSAGE_CHILDREN, which only ever grows); "tree peak" is the largest sum of
RSS over the process and its descendants (Grain's worker processes with --worker_count > 0),
sampled every --sample_s seconds with psutil (counted twice where pages are shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "experiments", "train.py")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "jaxgan_stream_rss"), help="PNG folders.")
    p.add_argument("--sizes", default="2000,20000", help="Comma-separated numbers of files, one run each.")
    p.add_argument("--image_size", type=int, default=64, help="Side of the PNGs and of the model.")
    p.add_argument("--steps", type=int, default=50, help="Train steps per run.")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="config.model.g_width and d_width.")
    p.add_argument("--worker_count", type=int, default=0, help="config.data.worker_count.")
    p.add_argument("--read_threads", type=int, default=2, help="config.data.read_threads.")
    p.add_argument("--tolerance", type=float, default=0.10, help="Allowed relative spread of the peaks.")
    p.add_argument("--sample_s", type=float, default=0.1, help="Tree-RSS sampling period.")
    p.add_argument(
        "--train_arg",
        action="append",
        default=[],
        help="An extra experiments/train.py argument for every run (repeatable), e.g. --train_arg=--config.n_critic=2.",
    )
    p.add_argument("--keep_workdirs", action="store_true", help="Keep each run's workdir (and its log).")
    p.add_argument("--json", action="store_true", help="Also print one JSON line per run.")
    return p.parse_args(argv)


def make_folder(path: str, count: int, size: int, seed: int = 0) -> str:
    """`count` random size x size RGB PNGs in `path` (img_000000.png, ...): missing ones are written, the
    folder reused as it is when it holds exactly those files."""
    import numpy as np
    from PIL import Image

    os.makedirs(path, exist_ok=True)
    names = [f"img_{i:06d}.png" for i in range(count)]
    present = {n for n in os.listdir(path) if n.endswith(".png")}
    extra = present - set(names)
    if extra:
        raise ValueError(f"{path} holds {len(extra)} PNGs not written by this tool (e.g. {sorted(extra)[0]}).")
    missing = [i for i, n in enumerate(names) if n not in present]
    if not missing:
        return path
    print(f"writing {len(missing)} PNGs into {path}", flush=True)
    for i in missing:
        pixels = np.random.default_rng([seed, i]).integers(0, 256, (size, size, 3), dtype=np.uint8)
        tmp = os.path.join(path, f".{names[i]}.tmp")
        Image.fromarray(pixels).save(tmp, format="PNG")
        os.replace(tmp, os.path.join(path, names[i]))  # an interrupted run leaves no truncated PNG
    return path


def train_argv(args: argparse.Namespace, folder: str, workdir: str) -> list[str]:
    """The same run for every folder: only --config.data.name and --workdir differ."""
    s = args.steps
    return [
        sys.executable,
        TRAIN,
        f"--workdir={workdir}",
        "--config.data.source=folder",
        f"--config.data.name={folder}",
        f"--config.data.image_size={args.image_size}",
        "--config.data.channels=3",
        f"--config.data.worker_count={args.worker_count}",
        f"--config.data.read_threads={args.read_threads}",
        f"--config.model.g_width={args.width}",
        f"--config.model.d_width={args.width}",
        f"--config.batch_size={args.batch_size}",
        f"--config.train_steps={s}",
        f"--config.log_every_steps={s}",
        f"--config.sample_every_steps={s}",
        f"--config.checkpoint_every_steps={s}",
        "--config.eval_every_steps=0",
        "--config.progress_bar=False",
        *args.train_arg,
    ]


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_one(args: argparse.Namespace, folder: str, count: int) -> dict:
    """One training run in a child process: its peak RSS (own, and of its process tree) and wall time."""
    workdir = tempfile.mkdtemp(prefix=f"stream_rss_n{count}_")
    log_path = workdir + ".log"
    argv = train_argv(args, folder, os.path.join(workdir, "run"))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tree_peak = [0]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample():
            while not done.wait(args.sample_s):
                tree_peak[0] = max(tree_peak[0], _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not every child's so far
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    row = dict(
        files=count,
        decoded_mb=count * args.image_size**2 * 3 / 2**20,
        peak_rss_mb=usage.ru_maxrss / 1024.0,  # kB on Linux
        tree_peak_rss_mb=tree_peak[0] / 2**20,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        returncode=proc.returncode,
        log=log_path,
    )
    if proc.returncode:
        with open(log_path) as f:
            row["error"] = f.read()[-2000:]
    elif not args.keep_workdirs:
        subprocess.run(["rm", "-rf", workdir], check=False)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| files | decoded dataset MB | peak RSS MB | tree peak RSS MB | wall s | CPU s (user+sys) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['files']:,} | {r['decoded_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['tree_peak_rss_mb']:.0f} | "
            f"{r['wall_s']:.1f} | {r['user_s'] + r['sys_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if len(sizes) < 1 or min(sizes) < 1:
        raise SystemExit(f"--sizes={args.sizes!r}: positive integers, comma-separated.")
    folders = {n: make_folder(os.path.join(args.dir, f"n{n}"), n, args.image_size) for n in sizes}
    print(" ".join(train_argv(args, "<folder>", "<workdir>")[1:]), flush=True)
    rows = []
    for n in sizes:
        print(f"training on {n:,} files ...", flush=True)
        row = run_one(args, folders[n], n)
        if args.json:
            print(json.dumps(row), flush=True)
        if row.get("error"):
            print(f"run on {n} files failed (exit {row['returncode']}), log {row['log']}:\n{row['error']}")
            return 1
        rows.append(row)
    print(table(rows), flush=True)
    if len(rows) > 1:
        peaks = [r["peak_rss_mb"] for r in rows]
        spread = (max(peaks) - min(peaks)) / min(peaks)
        verdict = "within" if spread <= args.tolerance else "NOT within"
        print(
            f"peak RSS spread {spread:.1%} ({max(peaks) - min(peaks):.0f} MB): {verdict} {args.tolerance:.0%}",
            flush=True,
        )
        return 0 if spread <= args.tolerance else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
