"""A thin Orbax wrapper: save the one TrainState, restore it exactly.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a process that dies mid-save never replaces the last good one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def checkpoint_manager(directory: str, *, max_to_keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over `directory` keeping the last `max_to_keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> bool:
    """Starts saving `state` as `step` (asynchronously unless disabled)."""
    return manager.save(step, args=ocp.args.StandardSave(state))


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[Any, int | None]:
    """Restores the latest checkpoint into the structure, shapes, dtypes and
    shardings of `target` (a concrete or abstract state), or returns `target`
    unchanged when there is none. Shape mismatches raise a clear ValueError.
    """
    step = manager.latest_step()
    if step is None:
        return target, None
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    try:
        restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"The checkpoint at step {step} in {manager.directory} does not fit this configuration "
            f"(different networks or shapes?): {e}. Use a new --workdir, or the config the run was started with."
        ) from e
    return restored, step
