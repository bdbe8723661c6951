"""Where a compiled step's time goes, per XLA op, from a jax.profiler trace (tools/bench.py --profile)."""

from __future__ import annotations

import glob
import os
import re
import tempfile


def op_category(op_name: str) -> str:
    """The kind of an XLA op from its HLO name (`convolution.3`, `wrapped_reduce-window.29`, ...)."""
    base = re.sub(r"\.\d+$", "", op_name)
    for needle, category in (
        ("ynn", "ynnpack fusion"),
        ("conv", "convolution"),
        ("dot", "dot"),
        ("reduce-window", "reduce-window"),
        ("reduce", "reduce"),
        ("transpose", "transpose/copy"),
        ("copy", "transpose/copy"),
        ("fusion", "elementwise fusion"),
    ):
        if needle in base:
            return category
    return "other"


def op_time_breakdown(events, steps: int, top: int = 8) -> dict:
    """Per-step time by op category (ms and % of all op time) and the `top` slowest ops, from
    (thread or line name, op name, duration ns) events: XLA:CPU's per-op events run on its
    `tf_XLAEigen` threads, GPU kernels on "XLA Ops" lines; executor and thread-pool events
    (`ThunkExecutor::Execute`, `...::Await`) wrap or wait for ops and are skipped."""
    by_category: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for line, name, ns in events:
        if not (line.startswith("tf_XLAEigen") or line == "XLA Ops") or "::" in name:
            continue
        by_category[op_category(name)] = by_category.get(op_category(name), 0.0) + ns
        by_op[name] = by_op.get(name, 0.0) + ns
    total = sum(by_category.values())
    if not total:
        return {}
    ms = lambda ns: ns / 1e6 / steps
    return {
        "op_ms_per_step": ms(total),
        "categories": {
            c: {"ms": ms(v), "percent": 100 * v / total} for c, v in sorted(by_category.items(), key=lambda kv: -kv[1])
        },
        "top_ops": [[n, ms(v)] for n, v in sorted(by_op.items(), key=lambda kv: -kv[1])[:top]],
    }


def profile_steps(train_step, state, batch, calls: int, steps: int):
    """Runs `calls` more calls under jax.profiler.trace; returns the op breakdown per train step."""
    import jax
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory):
            for _ in range(calls):
                state, metrics = train_step(state, batch)
            jax.block_until_ready(metrics)
        (path,) = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
        profile = ProfileData.from_file(path)
        events = [
            (line.name, event.name, event.duration_ns)
            for plane in profile.planes
            for line in plane.lines
            for event in line.events
        ]
    return state, op_time_breakdown(events, steps)
