"""Orbax checkpoints of the one TrainState: save, verify, restore exactly.

What is guaranteed (README "Runs"):
- Orbax writes each checkpoint into a temporary directory and renames it when complete, so a process
  that dies mid-save never replaces the last good one (the temporary directory is ignored on restore).
- Every saved array's CRC32 goes into the checkpoint's own step metadata (Orbax's `custom_metadata`,
  committed with the checkpoint) and is compared on restore: altered bytes are found even where they
  still parse as numbers.
- A checkpoint is DAMAGED only when every one of its files can be read and yet the content is wrong
  (Orbax cannot parse it, or an array's checksum differs). The training loop moves a damaged checkpoint
  aside to `<step>.damaged-<time>` (never deleted) and uses the previous one; readers (sampling,
  export, metrics) skip it and leave it where it is.
- A checkpoint that cannot be READ (permissions, an I/O error) is not damage: restoring stops with
  `CheckpointUnreadableError` naming the file and the OS error, and nothing is moved.
- A checkpoint whose shapes do not fit the state being restored is a configuration mismatch, not
  damage: ValueError naming the leaves; nothing is moved.
"""

from __future__ import annotations

import errno
import os
import re
import time
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

CHECKSUMS_KEY = "jaxgan_crc32"  # custom_metadata key: {leaf name: CRC32 of its bytes, 8 hex digits}
_MOVED_ASIDE = re.compile(r"^\d+\.(damaged|unreadable)-")  # this module's quarantine names (older: unreadable)


class CheckpointUnreadableError(OSError):
    """A checkpoint's files cannot be read (permissions, I/O): not damage, so nothing is moved."""


class NoUsableCheckpointError(RuntimeError):
    """A checkpoint directory holds checkpoints, but none can be restored: the run will not start over."""


def checkpoint_manager(
    directory: str, *, max_to_keep: int = 3, async_save: bool = True, read_only: bool = False
) -> ocp.CheckpointManager:
    """A CheckpointManager over `directory` keeping the last `max_to_keep` steps.

    read_only: for readers (sampling, export, a pre-flight check): creates, deletes and cleans up nothing.
    """
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, max_to_keep=None, create=False, save_interval_steps=0)
    else:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=async_save, create=True
        )
    # The handler is named so that a fresh manager can read a checkpoint's metadata before any save.
    return ocp.CheckpointManager(
        os.path.abspath(directory), options=options, item_handlers=ocp.StandardCheckpointHandler()
    )


def _key_name(key: Any) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _leaf_name(path: tuple) -> str:
    return ".".join(_key_name(k) for k in path)


def leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{dotted leaf name: (shape, dtype)}, named as Orbax names saved arrays."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_leaf_name(path): (tuple(leaf.shape), str(np.dtype(leaf.dtype))) for path, leaf in flat}


def _host_bytes(leaf: Any) -> np.ndarray:
    """A leaf's bytes as a flat uint8 array: one replica of a replicated (multi-host) array."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            if not leaf.sharding.is_fully_replicated:
                raise ValueError(
                    "checksums need each process to hold a full copy of the state (it is replicated "
                    f"in jaxgan); got an array sharded as {leaf.sharding}."
                )
            leaf = leaf.addressable_data(0)
    return np.ascontiguousarray(np.asarray(leaf)).reshape(-1).view(np.uint8)


def array_checksums(tree: Any) -> dict[str, str]:
    """{leaf name: CRC32 of the leaf's bytes}: detects altered bytes in a saved array (zlib's CRC32:
    fast, and every burst of up to 32 flipped bits is caught)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_leaf_name(path): f"{zlib.crc32(_host_bytes(leaf)):08x}" for path, leaf in flat}


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> bool:
    """Starts saving `state` as `step` (asynchronously unless disabled), with its arrays' checksums."""
    return manager.save(
        step, args=ocp.args.StandardSave(state), custom_metadata={CHECKSUMS_KEY: array_checksums(state)}
    )


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


def step_path(manager: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(manager.directory), str(step))


def check_readable(path: str, step: int) -> None:
    """Reads every file of a checkpoint directory to its end; raises CheckpointUnreadableError naming
    the first file (or directory) that cannot be read and the OS error. Nothing is changed."""

    def fail(where: str, error: OSError) -> None:
        reason = error.strerror or str(error)
        raise CheckpointUnreadableError(
            f"Cannot read the checkpoint at step {step}: {where}: {reason} (errno "
            f"{error.errno}). It was not moved or changed; fix its permissions or the storage and relaunch."
        )

    def on_walk_error(error: OSError) -> None:
        fail(error.filename or path, error)

    for root, _, files in os.walk(path, onerror=on_walk_error):
        for name in files:
            file_path = os.path.join(root, name)
            try:
                with open(file_path, "rb") as f:
                    while f.read(1 << 24):
                        pass
            except OSError as e:
                fail(file_path, e)


def _is_io_error(error: BaseException) -> bool:
    """Whether an exception (or one it was raised from) is the OS refusing or failing a read."""
    io_errnos = {errno.EACCES, errno.EPERM, errno.EIO, errno.ENXIO, errno.EAGAIN, errno.ETIMEDOUT}
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in io_errnos:
            return True
        if re.search(r"PERMISSION_DENIED|Permission denied|Input/output error|UNAVAILABLE", str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _verify(manager: ocp.CheckpointManager, step: int, restored: Any) -> str | None:
    """None if every array's checksum matches the one saved with it (or none was saved: a checkpoint
    written before jaxgan recorded them), else which arrays differ."""
    try:
        recorded = (manager.metadata(step).custom_metadata or {}).get(CHECKSUMS_KEY)
    except Exception:  # noqa: BLE001 - unreadable step metadata: the restore itself already worked
        recorded = None
    if not recorded:
        logging.warning(
            "The checkpoint at step %d has no array checksums (written before jaxgan recorded "
            "them); its contents cannot be verified.",
            step,
        )
        return None
    got = array_checksums(restored)
    bad = sorted(name for name in set(recorded) | set(got) if recorded.get(name) != got.get(name))
    if not bad:
        return None
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    return f"the checksums of {', '.join(bad[:3])}{more} differ from the ones saved with it"


def quarantine(manager: ocp.CheckpointManager, step: int) -> str:
    """Moves a damaged checkpoint aside (never deletes it) and returns its new path."""
    source = step_path(manager, step)
    target = f"{source}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    if jax.process_index() == 0:
        os.rename(source, target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"jaxgan quarantine {step}")
    manager.reload()
    return target


def moved_aside(directory: str) -> list[str]:
    """The checkpoints this module moved aside in `directory` (damaged; `unreadable` in older versions)."""
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if _MOVED_ASIDE.match(name))


def check_fits(directory: str, target: Any) -> int | None:
    """A pre-flight check that writes nothing: the newest checkpoint in `directory` can be read and its
    shapes fit `target`. Returns its step (None when there is no checkpoint). Raises
    CheckpointUnreadableError or ValueError (as `restore_latest` would) before a run writes anything."""
    if not os.path.isdir(directory):
        return None
    with checkpoint_manager(directory, read_only=True) as manager:
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            return None
        check_readable(step_path(manager, steps[0]), steps[0])
        saved = _saved_specs(manager, steps[0])
        mismatch = describe_mismatch(saved, leaf_specs(target)) if saved is not None else None
        if mismatch:
            raise ValueError(_mismatch_message(steps[0], manager.directory, mismatch))
        return steps[0]


def _mismatch_message(step: int, directory: Any, mismatch: str) -> str:
    return (
        f"The checkpoint at step {step} in {directory} does not fit this configuration (different networks or "
        f"shapes): {mismatch}. Use a new --workdir, or the config the run was started with (WORKDIR/config.json)."
    )


def _restore_target(leaf: Any) -> jax.ShapeDtypeStruct:
    """A leaf's shape, dtype and sharding for Orbax; this process's first device where the leaf has no
    sharding (numpy, a bare ShapeDtypeStruct). Orbax would otherwise use the saved sharding, whose devices
    are those of the run that saved it: another topology when several processes wrote the checkpoint."""
    struct = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(struct, "sharding", None) is None:
        struct = jax.ShapeDtypeStruct(
            struct.shape, struct.dtype, sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        )
    return struct


def restore_latest(
    manager: ocp.CheckpointManager, target: Any, *, move_damaged: bool = False
) -> tuple[Any, int | None]:
    """Restores the newest good checkpoint into the structure, shapes, dtypes and shardings of `target`
    (a concrete or abstract state), or returns `target` unchanged when there is none.

    Raises CheckpointUnreadableError when a checkpoint's files cannot be read, and ValueError naming the
    leaves that differ when it does not fit `target`; neither moves anything. A damaged checkpoint is
    skipped for the next older one, and moved aside first when `move_damaged` (the training loop only).
    """
    expected = leaf_specs(target)
    abstract = jax.tree_util.tree_map(_restore_target, target)
    for step in sorted(manager.all_steps(), reverse=True):
        path = step_path(manager, step)
        check_readable(path, step)
        saved = _saved_specs(manager, step)
        mismatch = describe_mismatch(saved, expected) if saved is not None else None
        if mismatch:
            raise ValueError(_mismatch_message(step, manager.directory, mismatch))
        try:
            state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # noqa: BLE001 - tensorstore raises ValueError/OSError/... for damaged files
            check_readable(path, step)  # a read that failed only now: an I/O error, not damage
            if _is_io_error(e):
                raise CheckpointUnreadableError(
                    f"Cannot read the checkpoint at step {step} in {manager.directory}: "
                    f"{str(e).splitlines()[0][:300]}. It was not moved or changed; fix the storage and relaunch."
                ) from e
            problem = f"Orbax cannot parse it: {str(e).splitlines()[0][:300]}"
        else:
            problem = _verify(manager, step, state)
            if problem is None:
                return state, step
        if move_damaged:
            where = f"moved it aside to {quarantine(manager, step)}"
        else:
            where = f"left it in place ({path})"
        logging.warning(
            "The checkpoint at step %d is damaged (%s); %s and trying the previous one.", step, problem, where
        )
        print(f"jaxgan: checkpoint {step} is damaged ({problem}); {where}; trying the previous one.", flush=True)
    return target, None
