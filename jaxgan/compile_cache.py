"""The one in-process cache of compiled functions, keyed by what they are built from.

An orchestrator that is called again with the same config in one process (a resume after `stop_at`, tests,
a notebook) gets the functions it compiled the first time instead of tracing and compiling them again;
`jaxgan.sampling.compiled_generate` keeps its jitted generators here too. Across processes, JAX's persistent
compilation cache (`JAX_COMPILATION_CACHE_DIR`) does the same for the XLA executables.

Keys are hashable: `config_key` turns a config (or the part of it a function is built from) and the mesh
into one. The cache keeps the `MAX_ENTRIES` most recently used entries.
"""

from __future__ import annotations

import collections
import json
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 64
_CACHE: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()


def config_key(kind: str, config: Any, mesh: Any = None) -> tuple[str, str, tuple[str, ...] | None]:
    """(kind, the config as sorted JSON, the mesh's devices): `config` is a ConfigDict or JSON-able data."""
    if hasattr(config, "to_json_best_effort"):
        config = json.loads(config.to_json_best_effort())
    devices = None if mesh is None else tuple(str(d) for d in mesh.devices.flat)
    return kind, json.dumps(config, sort_keys=True), devices


def cached(key: Hashable, build: Callable[[], T]) -> T:
    """`build()`'s result, built once per `key` while it stays among the most recently used entries."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = build()
    _CACHE[key] = value
    while len(_CACHE) > MAX_ENTRIES:
        _CACHE.popitem(last=False)
    return value


def clear() -> None:
    """Drops every cached function (their compiled executables are freed with them)."""
    _CACHE.clear()
