"""tools/bench.py stays runnable: one tiny row end to end, its JSON, and donation."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_mlp_row_reports_speed_flops_and_donated_state():
    result = subprocess.run(
        [sys.executable, "tools/bench.py", "--only=mlp", "--torch=off", "--steps=2", "--repeats=1",
         "--steps_per_call=2", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, XLA_FLAGS=""))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, filter(lambda l: l.startswith("{"), result.stdout.splitlines()))}
    assert set(rows) == {"peak", "mlp"}
    mlp = rows["mlp"]
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
