"""A thin Orbax wrapper: save the one TrainState, restore it exactly.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a process that dies mid-save never replaces the last good one
(the temporary directory is ignored on restore). A finished checkpoint that is
damaged later (a truncated or deleted file) is detected on restore, moved aside
to `<step>.unreadable-<time>` (never deleted) and the previous one is used, with
a warning that says so. A checkpoint whose shapes do not match the state being
restored is a configuration mismatch, not damage: that raises a clear error and
nothing is moved.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging


def checkpoint_manager(directory: str, *, max_to_keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over `directory` keeping the last `max_to_keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True)
    # The handler is named so that a fresh manager can read a checkpoint's metadata before any save.
    return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> bool:
    """Starts saving `state` as `step` (asynchronously unless disabled)."""
    return manager.save(step, args=ocp.args.StandardSave(state))


def _key_name(key: Any) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{dotted leaf name: (shape, dtype)}, named as Orbax names saved arrays."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(_key_name(k) for k in path): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
            for path, leaf in flat}


def _saved_specs(manager: ocp.CheckpointManager, step: int) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """The saved leaves' shapes and dtypes, or None when the metadata cannot be read."""
    try:
        metadata = manager.item_metadata(step)
        tree = getattr(metadata, "tree", metadata)
        leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "name"))
        return {leaf.name: (tuple(leaf.shape), str(np.dtype(leaf.dtype))) for leaf in leaves} or None
    except Exception:  # noqa: BLE001 - any failure to read means "unknown", decided by the restore
        return None


def describe_mismatch(saved: dict, expected: dict, limit: int = 5) -> str | None:
    """A readable list of the leaves that differ between a checkpoint and a state, or None."""
    problems = []
    for name in sorted(set(saved) | set(expected)):
        if name not in expected:
            problems.append(f"{name}: in the checkpoint {saved[name]}, not in this configuration")
        elif name not in saved:
            problems.append(f"{name}: in this configuration {expected[name]}, not in the checkpoint")
        elif saved[name] != expected[name]:
            problems.append(f"{name}: checkpoint {saved[name]} vs configuration {expected[name]}")
    if not problems:
        return None
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def quarantine(manager: ocp.CheckpointManager, step: int) -> str:
    """Moves an unreadable checkpoint aside (never deletes it) and returns its new path."""
    source = os.path.join(str(manager.directory), str(step))
    target = f"{source}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
    if jax.process_index() == 0:
        os.rename(source, target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"jaxgan quarantine {step}")
    manager.reload()
    return target


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[Any, int | None]:
    """Restores the newest readable checkpoint into the structure, shapes, dtypes
    and shardings of `target` (a concrete or abstract state), or returns `target`
    unchanged when there is none.

    A checkpoint that does not fit `target` raises ValueError naming the leaves
    that differ. A damaged one is moved aside and the next older one is tried.
    """
    expected = leaf_specs(target)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    for step in sorted(manager.all_steps(), reverse=True):
        saved = _saved_specs(manager, step)
        mismatch = describe_mismatch(saved, expected) if saved is not None else None
        if mismatch:
            raise ValueError(
                f"The checkpoint at step {step} in {manager.directory} does not fit this configuration "
                f"(different networks or shapes): {mismatch}. Use a new --workdir, or the config the run "
                "was started with (WORKDIR/config.json)."
            )
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract)), step
        except Exception as e:  # noqa: BLE001 - tensorstore raises ValueError/OSError/... for damaged files
            moved = quarantine(manager, step)
            logging.warning("The checkpoint at step %d is unreadable (%s); moved it to %s and falling "
                            "back to the previous one.", step, str(e).splitlines()[0][:300], moved)
            print(f"jaxgan: checkpoint {step} is unreadable, moved aside to {moved}; trying the previous one.",
                  flush=True)
    return target, None
