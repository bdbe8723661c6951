"""The pieces every jaxgan step is built from: the GAN zoo's, the translation and the video steps.

- `update_net`: one data-parallel optimizer step of a network (local gradients, pmean, Optax);
- `compile_init`: a run-once initialization compiled cheaply;
- `train_forward`: a training-mode forward pass that returns the new BatchNorm statistics.

The data-parallel wrappers (`shard_map_step`, `pmap_step`) are in `jaxgan.train.parallel`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import optax

from jaxgan import state as state_lib
from jaxgan.common import DATA_AXIS, Params
from jaxgan.state import NetState


def as_varying(tree: Any, axis_name: str) -> Any:
    """`tree` (the params to differentiate) marked device-varying over `axis_name`.

    Under shard_map, the gradient of a per-device loss with respect to a
    replicated (invariant) value is implicitly summed over devices. Marking the
    params device-varying first gives each device its LOCAL gradient, which the
    caller then averages explicitly with pmean: the same code is then correct
    under shard_map and pmap alike.
    """
    return jax.lax.pcast(tree, axis_name, to="varying")


def apply_gradients(net: NetState, grads: Params, tx: optax.GradientTransformation, batch_stats: Params) -> NetState:
    """One Optax update of a network with averaged `grads`; its BatchNorm statistics become `batch_stats`."""
    updates, opt_state = tx.update(grads, net.opt_state, net.params)
    return NetState(params=optax.apply_updates(net.params, updates), batch_stats=batch_stats, opt_state=opt_state)


def update_net(
    net: NetState,
    tx: optax.GradientTransformation,
    loss_fn: Callable[[Params], tuple[jax.Array, Any]],
    *,
    axis_name: str = DATA_AXIS,
    batch_stats: Callable[[Any], Params] | None = None,
    grad_scale: float | None = None,
) -> tuple[NetState, tuple[jax.Array, Any], Params]:
    """One data-parallel optimizer step of `net` on `loss_fn(params) -> (loss, aux)`.

    Each device differentiates its local loss (`as_varying`), the gradients are
    averaged over `axis_name` (pmean) and applied by `tx`, so every device ends
    with the same network. `batch_stats(aux)` gives the new BatchNorm statistics
    (default: unchanged); `grad_scale` multiplies the local gradients before the
    average (lazy regularization's interval). Returns (net, (loss, aux), averaged grads).
    """
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(as_varying(net.params, axis_name))
    if grad_scale is not None:
        grads = jax.tree_util.tree_map(lambda g: g * grad_scale, grads)
    grads = jax.lax.pmean(grads, axis_name)
    stats = net.batch_stats if batch_stats is None else batch_stats(aux)
    return apply_gradients(net, grads, tx, stats), (loss, aux), grads


def call_args(x: jax.Array, labels: jax.Array | None) -> tuple[jax.Array, ...]:
    """A network's positional inputs: (x,) or, class-conditional, (x, labels)."""
    return (x,) if labels is None else (x, labels)


def train_forward(
    module: nn.Module, params: Params, batch_stats: Params, x: jax.Array, labels: jax.Array | None = None
) -> tuple[jax.Array, Params]:
    """Training-mode forward pass returning the output and the new BatchNorm stats."""
    if not batch_stats:
        return module.apply({"params": params}, *call_args(x, labels), train=True), batch_stats
    out, mutated = module.apply(
        {"params": params, "batch_stats": batch_stats}, *call_args(x, labels), train=True, mutable=["batch_stats"]
    )
    return out, mutated["batch_stats"]


# Initialization runs once and XLA's optimizing CPU backend is slow to compile its threefry normal draws,
# so on CPU it is compiled without the expensive passes (jaxgan.state's options, plus LLVM's; measurements:
# experiments/results/step_loop_cpu/README.md).
INIT_COMPILER_OPTIONS = {**state_lib.INIT_COMPILER_OPTIONS, "xla_llvm_disable_expensive_passes": True}


def compile_init(init: Callable[[jax.Array], Any]) -> Callable[[int | jax.Array], Any]:
    """`init` compiled once, cheaply; the returned function takes a seed or a PRNGKey."""
    options = INIT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    compiled = jax.jit(init).lower(jax.random.PRNGKey(0)).compile(options)
    return lambda seed: compiled(jax.random.PRNGKey(seed) if isinstance(seed, int) else seed)
