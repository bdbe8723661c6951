"""K train steps in one pure call (`multi_step`): one dispatch and host round trip per K steps."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.common import Metrics
from jaxgan.train.checks import resolve_critic_loop


def resolve_step_loop(step_loop: str) -> str:
    """ "scan" or "unroll" for K train steps in one call (`multi_step`); "auto" picks by backend.

    Both give the result of K single steps. On XLA CPU a `lax.scan` over whole conv train
    steps runs many times slower than the same steps unrolled, so "auto" unrolls on CPU and
    scans on accelerators (measurements: experiments/results/step_loop_cpu/README.md). A scan
    over MLP steps is fast on CPU too: ask for "scan" there (compile time stays flat in K).
    """
    return resolve_critic_loop(step_loop)


def multi_step(
    step: Callable[[Any, Mapping[str, jax.Array]], tuple[Any, Metrics]], num_steps: int, *, step_loop: str = "auto"
) -> Callable:
    """K = `num_steps` train steps in one pure call: `(state, batches) -> (state, metrics)`.

    Every batch leaf gains a leading K axis (`[K, n_critic, B, ...]`); step k
    reads `batches[k]`. Metrics come back stacked, `[K]` per name. The state
    after the call equals K single calls of `step` (same keys: each step folds
    its own `state.step`), so the option changes speed, never results. One call
    per K steps removes K-1 dispatches and host round trips: what pays for small
    models (the MLP GAN, 2-D mixtures) where the step is shorter than its launch.
    """
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps (steps per call) must be an int >= 1, got {num_steps!r}.")
    loop = resolve_step_loop(step_loop)
    num_steps = int(num_steps)

    def run(state: Any, batches: Mapping[str, jax.Array]) -> tuple[Any, Metrics]:
        if loop == "scan":
            return jax.lax.scan(step, state, batches)
        per_step = []
        for k in range(num_steps):
            state, metrics = step(state, {name: leaf[k] for name, leaf in batches.items()})
            per_step.append(metrics)
        return state, jax.tree_util.tree_map(lambda *m: jnp.stack(m), *per_step)

    return run
