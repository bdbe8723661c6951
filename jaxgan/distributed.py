"""Multi-process (multi-host) runs: `initialize()` joins this process to the others, before any JAX work.

Start the same command once per host (or once per process), each with `--multihost`; the processes
find each other through one of:

- the environment: JAX_COORDINATOR_ADDRESS (host:port of process 0, reachable from every process),
  JAX_NUM_PROCESSES and JAX_PROCESS_ID (0 .. N-1), which jaxgan reads and passes to JAX;
- JAX's cluster auto-detection when those are not set: SLURM (`srun`), Cloud TPU VM pod slices,
  Open MPI, Kubernetes (JobSet).

Every process then sees the devices of all processes (`jax.devices()`); each loads only its rows of
every global batch. On CPU the cross-process collectives go through gloo (`jax_cpu_collectives_implementation`),
which `initialize` selects; the option does nothing on GPU or TPU. docs/multihost.md shows the commands.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Callable, Mapping

ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
ENV_COUNT = "JAX_NUM_PROCESSES"
ENV_ID = "JAX_PROCESS_ID"


_joined = False  # whether this process joined a multi-process run (`initialize`)


class MultihostConfigError(ValueError):
    """The environment does not describe a multi-process run consistently (one line, naming the fix)."""


def _int_var(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise MultihostConfigError(f"{name}={value!r} is not an integer; set it to e.g. {name}=0.") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The keyword arguments of `jax.distributed.initialize` that the environment sets (none: auto-detection).

    Raises MultihostConfigError for a half-set or inconsistent environment."""
    environ = os.environ if environ is None else environ
    address = environ.get(ENV_ADDRESS, "").strip() or None
    count, pid = _int_var(environ, ENV_COUNT), _int_var(environ, ENV_ID)
    if count is not None and pid is None:
        raise MultihostConfigError(
            f"{ENV_COUNT}={count} is set but {ENV_ID} is not; give every process its own {ENV_ID} "
            f"(0 .. {count - 1}), or unset {ENV_COUNT} to let JAX detect the cluster."
        )
    if pid is not None and count is None:
        raise MultihostConfigError(
            f"{ENV_ID}={pid} is set but {ENV_COUNT} is not; set {ENV_COUNT} to the number of processes on "
            "every process."
        )
    if count is not None:
        if count < 1:
            raise MultihostConfigError(f"{ENV_COUNT}={count} must be >= 1.")
        if not 0 <= pid < count:
            raise MultihostConfigError(f"{ENV_ID}={pid} must be in 0 .. {count - 1} ({ENV_COUNT}={count}).")
        if address is None:
            raise MultihostConfigError(
                f"{ENV_COUNT} and {ENV_ID} are set but {ENV_ADDRESS} is not; set it to host:port of process 0 "
                f"(the same on every process), e.g. {ENV_ADDRESS}=10.0.0.1:1234."
            )
    if address is not None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise MultihostConfigError(
                f"{ENV_ADDRESS}={address!r} is not host:port; set it to process 0's address and a free port, "
                "e.g. 127.0.0.1:1234."
            )
    settings: dict[str, object] = {}
    if address is not None:
        settings["coordinator_address"] = address
    if count is not None:
        settings.update(num_processes=count, process_id=pid)
    return settings


def initialize() -> None:
    """Joins the multi-process run (`jax.distributed.initialize`); call it once, before any other JAX call.

    Uses gloo for cross-process collectives on CPU. Raises MultihostConfigError when the environment is
    misconfigured or no cluster is detected and JAX_COORDINATOR_ADDRESS and friends are not set."""
    settings = settings_from_env()
    import jax  # pylint: disable=g-import-not-at-top

    global _joined
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**settings)
        _joined = True
    except ValueError as e:
        if settings.get("num_processes") is not None:
            raise
        raise MultihostConfigError(
            f"--multihost: no cluster was detected (SLURM, Cloud TPU, Open MPI, Kubernetes) and the environment "
            f"does not describe the processes (JAX: {e}); set {ENV_ADDRESS}=HOST:PORT (process 0's), "
            f"{ENV_COUNT}=N and {ENV_ID}=0..N-1 on every process."
        ) from e


def failing_fast(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
    """An absl `main` that, in a multi-process run, leaves at once when it fails (an exception, or an
    error status other than 143, the preemption stop every process reaches together).

    A process that ends normally waits in JAX's shutdown barrier for the others (5 minutes), while they
    wait for it in their next collective: a failure of one process (a workdir lock held elsewhere, a
    missing file) would hold the whole job. Leaving with os._exit skips that barrier; JAX's coordination
    service then stops the others (within seconds when process 0 fails, within its heartbeat timeout,
    100 s, otherwise). Context managers (the workdir lock, writers) have exited before this runs."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> int | None:
        try:
            status = main(argv)
        except (Exception, KeyboardInterrupt):  # noqa: BLE001 - any failure leaves the run; SystemExit does not
            if not _joined:
                raise
            traceback.print_exc()
            status = 1
        if _joined and status not in (None, 0, 143):
            import jax  # pylint: disable=g-import-not-at-top

            print(
                f"jaxgan: process {jax.process_index()} of {jax.process_count()} failed (exit status {status}); "
                "leaving the multi-process run now, so that JAX stops the other processes too.",
                file=sys.stderr,
                flush=True,
            )
            sys.stdout.flush()
            os._exit(status)
        return status

    return wrapped
