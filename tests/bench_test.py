"""tools/bench.py stays runnable: two tiny rows end to end, their JSON, and donation."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench_xla_flags() -> str:
    """This process's XLA flags (conftest.py) without its 8 virtual devices: the rows count their own (1 for
    `mlp`, one per core for the ring). The cheap LLVM optimization stays: the rows' FLOPs (XLA's HLO cost
    analysis), donation and the matmul peak (a runtime library call) do not depend on it, while XLA's default
    level made the ring's 2-seed scanned step compile ~2.5x longer (measured: the fixture's CPU 58 s -> 45 s)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    return " ".join(f for f in flags if "xla_force_host_platform_device_count" not in f)


@pytest.fixture(scope="module")
def bench_rows():
    """One bench run of the `mlp` row and the mode-collapse `ring_fast` row (2 seeds): {name: JSON row}."""
    result = subprocess.run(
        [
            sys.executable,
            "tools/bench.py",
            "--only=mlp,ring_fast",
            "--torch=off",
            "--steps=2",
            "--repeats=1",
            "--steps_per_call=2",
            "--seeds=2",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, XLA_FLAGS=_bench_xla_flags()),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        r["name"]: r for r in map(json.loads, filter(lambda line: line.startswith("{"), result.stdout.splitlines()))
    }


def test_bench_mlp_row_reports_speed_flops_and_donated_state(bench_rows):
    assert set(bench_rows) == {"peak", "mlp", "ring_fast"}
    mlp = bench_rows["mlp"]
    assert mlp["steps_per_s"] > 0 and mlp["steps_per_call"] == 2 and mlp["devices"] == 1
    assert mlp["images_per_s"] == mlp["steps_per_s"] * 64  # batch 64, n_critic 1
    # FLOPs of one step (XLA's count) between two hand bounds from the layer sizes (MACs per sample):
    # D update = G forward on 64 + D forward/backward on 64 real + 64 fake; G update = G forward/backward
    # + D forward/backward-to-input on 64. Lower: each forward matmul and each weight gradient of the
    # net being trained; upper: every matmul three times (forward, weight and input gradients).
    d_macs = 784 * 256 + 256 * 256 + 256
    g_macs = 100 * 256 + 256 * 256 + 256 * 784
    lower = 2 * (g_macs * 64 + 2 * d_macs * 128 + 2 * g_macs * 64 + d_macs * 64)
    upper = 2 * 3 * (2 * g_macs * 64 + d_macs * 192)
    assert lower <= mlp["flops_per_step"] <= upper, (lower, mlp["flops_per_step"], upper)
    assert 0 < mlp["percent_of_peak"] < 100
    # Donation: the step's inputs and outputs hold ~one copy of the state, not two.
    assert 0.9 < mlp["state_copies"] < 1.5, mlp["state_copies"]
    assert mlp["peak_rss_mb"] > 0


def test_op_time_breakdown_by_category_on_hand_made_events():
    from benchmarks import xla_profile

    assert [
        xla_profile.op_category(n)
        for n in (
            "convolution-base-dilated.3",
            "wrapped_reduce-window.29",
            "transpose_copy_fusion.6",
            "multiply_add_fusion.67",
            "dot.2",
            "while",
            "copy_bitcast_fusion.5",
            "ynn_fusion.10",
        )
    ] == [
        "convolution",
        "reduce-window",
        "transpose/copy",
        "elementwise fusion",
        "dot",
        "other",
        "transpose/copy",
        "ynnpack fusion",
    ]
    events = [
        ("tf_XLAEigen/1", "convolution.1", 6e6),
        ("tf_XLAEigen/2", "convolution.1", 2e6),
        ("tf_XLAEigen/1", "wrapped_reduce-window.2", 2e6),
        ("tf_XLAEigen/1", "ThunkExecutor::Execute", 50e6),  # a wrapper around the ops: skipped
        ("tf_XLAEigen/2", "SlinkyThreadPool::Await", 9e6),  # waiting, not computing: skipped
        ("python", "block_until_ready", 90e6),
    ]  # not an XLA op: skipped
    b = xla_profile.op_time_breakdown(events, steps=2)
    assert b["op_ms_per_step"] == 5.0  # (6 + 2 + 2) ms over 2 steps
    assert b["categories"] == {
        "convolution": {"ms": 4.0, "percent": 80.0},
        "reduce-window": {"ms": 1.0, "percent": 20.0},
    }
    assert b["top_ops"] == [["convolution.1", 4.0], ["wrapped_reduce-window.2", 1.0]]
    assert xla_profile.op_time_breakdown([("python", "x", 1.0)], steps=1) == {}


def test_bench_ring_row_trains_seeds_as_the_sweep_and_counts_their_flops(bench_rows):
    """The mode-collapse ring row: 2 seeds of the fast preset's step, 2 steps per scanned call."""
    ring = bench_rows["ring_fast"]
    cores = len(os.sched_getaffinity(0))
    assert ring["seeds"] == 2 and ring["devices"] == (2 if cores >= 2 else 1) and ring["steps_per_call"] == 2
    assert ring["batch_size"] == 200  # 100 packed D inputs of 2 points (pacgan2)
    assert abs(ring["images_per_s"] - ring["steps_per_s"] * 200 * 2) < 1e-6 * ring["images_per_s"]
    assert abs(ring["protocol_minutes_per_seed"] * ring["steps_per_s"] * 60 - 400_000) < 1e-3
    # FLOPs of one step of both seeds between hand bounds (MACs per sample of the fast preset's nets:
    # G 2 -> 4 x 128 -> 2, D 4 -> 3 maxout layers of 64 x 5 pieces -> 1). Lower: the matmuls no step can skip:
    # D update: G forward on 200 points, D forward and weight gradients on 100 real + 100 fake packed inputs;
    # G update: G forward and weight gradients on 200 points, D forward and input gradients on 100 packed
    # inputs. Upper: every matmul three times, G on 2 x 200 points and D on 300 packed inputs. One seed's
    # count alone (the seeds left out) is below the lower bound.
    g_macs = 2 * 128 + 3 * 128 * 128 + 128 * 2
    d_macs = 4 * 320 + 2 * 64 * 320 + 64
    lower = 2 * (3 * g_macs * 200 + 2 * d_macs * 200 + 2 * d_macs * 100)
    upper = 2 * 3 * (2 * g_macs * 200 + d_macs * 300)
    per_seed = ring["flops_per_step"] / 2
    assert lower <= per_seed <= upper, (lower, per_seed, upper)
    assert 0 < ring["percent_of_peak"] < 100


def test_bench_refuses_a_seed_count_below_one_before_running_a_row():
    result = subprocess.run(
        [sys.executable, "tools/bench.py", "--only=ring_fast", "--seeds=0", "--torch=off"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--seeds=0: it must be >= 1" in result.stderr, result.stderr[-2000:]
    assert "matmul peak" not in result.stdout  # refused before the first child process ran
