"""Run a test file in a child pytest process that may crash, and read back each test's outcome.

Used for tests that load third-party native code which can take the interpreter down (PyTorch, and
triton in the registry's CUDA build of PyTorch, segfaulted on load on a fresh machine): in a child,
a crash fails the test that was running, naming the signal, and the rest of the suite goes on.

The module is two things:
- a pytest plugin for the child (`-p tests.child_pytest`): one JSON line per test event, appended
  and closed at once, so the parent still knows which test had started when the child died;
- `run_file` for the parent: runs the child, and after a crash reruns it without the tests already
  reported and the one that crashed, until every test has an outcome (or `max_crashes` is reached).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPORT_ENV = "JAXGAN_CHILD_PYTEST_REPORT"
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the child's plugin


def _emit(**event) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:  # closed at once: on disk before the next test runs
            f.write(json.dumps(event) + "\n")


def pytest_runtest_logstart(nodeid, location):
    _emit(event="start", nodeid=nodeid)


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":  # the call, or a setup/teardown that did not pass
        if report.skipped and isinstance(report.longrepr, tuple):
            text = report.longrepr[2].removeprefix("Skipped: ")  # (file, line, reason)
        else:
            text = str(report.longrepr or "")
        _emit(event="report", nodeid=report.nodeid, when=report.when, outcome=report.outcome, text=text)


def pytest_collectreport(report):
    if report.failed:
        _emit(event="collect_error", nodeid=report.nodeid, text=str(report.longrepr or ""))


# --------------------------------------------------------------------------- the parent's runner


@dataclass
class Outcome:
    """A child test's result: "passed", "failed", "skipped" or "crashed", with the text that says why."""

    status: str
    text: str = ""


@dataclass
class ChildRun:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # nodeid -> outcome
    collect_errors: list[str] = field(default_factory=list)
    runs: int = 0


def describe_exit(returncode: int) -> str:
    """'SIGSEGV (signal 11)' for a child killed by a signal, 'exit status N' otherwise."""
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the crash
            break
    return events


def run_file(
    test_file: Path,
    workdir: Path,
    *,
    cwd: Path = ROOT,
    max_crashes: int = 3,
    timeout_s: float = 1800,
    extra_args: tuple[str, ...] = (),
) -> ChildRun:
    """Runs `python -m pytest test_file` in children (in `cwd`) until each collected test has an outcome.

    A child that dies (by a signal, or any exit without a result for a started test) marks the test it
    had started "crashed" with the signal and the child's output tail; the next child deselects every
    test already decided. After `max_crashes` reruns it stops: tests never started have no outcome.
    """
    result = ChildRun()
    rel = os.path.relpath(test_file, cwd)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    crashes = 0
    while True:
        report = workdir / f"child-{result.runs}.jsonl"
        env[REPORT_ENV] = str(report)
        deselect = [arg for nodeid in result.outcomes for arg in ("--deselect", nodeid)]
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.child_pytest",
            *extra_args,
            rel,
            *deselect,
        ]
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
        result.runs += 1
        events = _read_events(report)
        started, reports = [], {}
        for e in events:
            if e["event"] == "start":
                started.append(e["nodeid"])
            elif e["event"] == "report":
                reports.setdefault(e["nodeid"], []).append(e)
            elif e["event"] == "collect_error":
                result.collect_errors.append(f"{e['nodeid']}: {e['text']}")
        for nodeid, rs in reports.items():
            failed = [r for r in rs if r["outcome"] == "failed"]
            skipped = [r for r in rs if r["outcome"] == "skipped"]
            if failed:
                result.outcomes[nodeid] = Outcome("failed", "\n".join(f"[{r['when']}] {r['text']}" for r in failed))
            elif skipped:
                result.outcomes[nodeid] = Outcome("skipped", skipped[0]["text"])
            else:
                result.outcomes[nodeid] = Outcome("passed")
        unfinished = [n for n in started if n not in result.outcomes]
        output = _tail(proc.stdout + "\n" + proc.stderr)
        if not unfinished:
            if proc.returncode not in (0, 1, 5):  # 1: tests failed; 5: none collected. Else it never ran them all.
                result.collect_errors.append(
                    f"the child pytest process ended with {describe_exit(proc.returncode)} outside any test:\n{output}"
                )
            return result
        crashes += 1
        for nodeid in unfinished:
            result.outcomes[nodeid] = Outcome(
                "crashed",
                f"the child pytest process died with {describe_exit(proc.returncode)} while running "
                f"{nodeid}; its output ended:\n{output}",
            )
        if crashes > max_crashes:
            return result
