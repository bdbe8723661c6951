"""One training run per workdir: an exclusive lock taken before the run writes anything there.

The lock is `WORKDIR/.jaxgan.lock`, held with `fcntl.flock` for the life of the run (process 0 of a
multi-process run). The kernel releases a flock when its holder dies, however it dies, so a lock left
by a dead process is stale by construction: the next run takes it and says whose it was. The file
records the holder (PID, host, start time, command) so that a refused run can name it. The file is
never deleted (deleting a lock file races with a process that has it open); a clean exit empties it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time

LOCK_NAME = ".jaxgan.lock"


class WorkdirLockedError(RuntimeError):
    """Another live run holds this workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "an unknown time"
    return f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {when}"


class WorkdirLock:
    """`with WorkdirLock(workdir):` the run owns `workdir`, or WorkdirLockedError names who does."""

    def __init__(self, workdir: str) -> None:
        self.workdir = os.path.abspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self._fd: int | None = None
        self.previous: dict | None = None  # a stale holder's record, when one was taken over

    def __enter__(self) -> "WorkdirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise WorkdirLockedError(
                f"{self.workdir} is in use by another jaxgan run ({_describe(holder)}); wait for it to end or "
                "stop it, or use another --workdir."
            ) from None
        except OSError:
            os.close(fd)
            raise
        previous = _read(fd)
        if previous:  # a run that died without releasing: the kernel dropped its flock
            self.previous = previous
            pid = previous.get("pid")
            alive = previous.get("host") == socket.gethostname() and isinstance(pid, int) and _pid_alive(pid)
            note = " (its PID now belongs to another process, which does not hold the lock)" if alive else ""
            print(
                f"jaxgan: {self.workdir} had a stale lock from a run that ended without releasing it "
                f"({_describe(previous)}){note}; taking it over.",
                file=sys.stderr,
                flush=True,
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # released cleanly: nothing stale for the next run to report
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> dict:
    try:
        size = os.fstat(fd).st_size
        return json.loads(os.pread(fd, size, 0).decode()) if size else {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?"}
