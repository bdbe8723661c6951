"""The PyTorch reference tests (tests/torch_reference_checks.py), run in a child pytest process.

PyTorch is optional (`pip install "jaxgan[bench]"`), and its native code can take a process down: on a
fresh machine the registry's CUDA build imported triton on the first `torch.optim.Adam`, and triton's
native module segfaulted, killing the whole suite. So this file never imports torch. It probes torch
in a subprocess first (a crash there skips these tests, naming it), then runs the checks in a child
process; a crash in one check fails that check here, naming the signal, and the others still run.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests import child_pytest

CHECKS = Path(__file__).with_name("torch_reference_checks.py")
ENABLE = (
    'to run them: pip install -e ".[bench]" (the registry\'s Linux torch is the CUDA build, ~3 GB; '
    "the CPU-only one: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)

# What the checks use, in the order they first use it: the import, a conv, autograd, Adam (which
# imports torch._dynamo and, in CUDA builds, triton).
PROBE = """
import torch
x = torch.zeros(1, 1, 4, 4, requires_grad=True)
torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3)).sum().backward()
opt = torch.optim.Adam([x], lr=1e-3)
opt.step()
print(torch.__version__)
"""


def _check_names() -> list[str]:
    """The checks' test functions, read from the file's syntax (importing it would import torch)."""
    tree = ast.parse(CHECKS.read_text(encoding="utf-8"))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def probe_torch(timeout_s: float = 300) -> tuple[bool, str]:
    """(usable, message): runs PROBE in a fresh interpreter; a crash or error there is named."""
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"PyTorch's first use (import, conv, backward, Adam) did not finish in {timeout_s:.0f} s"
    if proc.returncode != 0:
        tail = child_pytest._tail(proc.stderr, 8)
        return False, (
            f"PyTorch's first use (import, conv, backward, Adam) ended with "
            f"{child_pytest.describe_exit(proc.returncode)} in a fresh interpreter: {tail}"
        )
    return True, proc.stdout.strip()


@pytest.fixture(scope="module")
def child_run(tmp_path_factory) -> child_pytest.ChildRun:
    if importlib.util.find_spec("torch") is None:
        pytest.skip(f"PyTorch is not installed, so the PyTorch reference tests are skipped; {ENABLE}")
    usable, message = probe_torch()
    if not usable:
        pytest.skip(f"{message} -- the installed PyTorch cannot run here; {ENABLE}")
    return child_pytest.run_file(CHECKS, tmp_path_factory.mktemp("torch_reference"))


@pytest.mark.parametrize("name", _check_names())
def test_torch_reference(name, child_run):
    """One test here per check function there; its parametrized cases are summed up."""
    assert not child_run.collect_errors, "\n".join(child_run.collect_errors)
    cases = {nodeid: o for nodeid, o in child_run.outcomes.items() if nodeid.split("::")[-1].split("[")[0] == name}
    assert cases, f"{name} never ran in the child process ({child_run.runs} runs; see the other checks' crashes)"
    bad = {n: o for n, o in cases.items() if o.status in ("failed", "crashed")}
    if bad:
        pytest.fail("\n\n".join(f"{n} {o.status}:\n{o.text}" for n, o in bad.items()), pytrace=False)
    if all(o.status == "skipped" for o in cases.values()):
        pytest.skip("; ".join(sorted({o.text for o in cases.values()})))


# --------------------------------------------------------------------------- the crash guard itself (no torch)


def test_probe_names_a_crash_in_torchs_import(tmp_path, monkeypatch):
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("import ctypes\nctypes.string_at(0)\n")  # a native crash on import
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    usable, message = probe_torch()
    assert not usable
    assert "SIGSEGV (signal 11)" in message


def test_a_crashing_test_fails_alone_and_the_others_still_run(tmp_path):
    (tmp_path / "crashy_checks.py").write_text(
        "import ctypes, pytest\n"
        "def test_before(): assert 1 + 1 == 2\n"
        "def test_crash(): ctypes.string_at(0)\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_after(x): assert x < 2\n"
        "def test_skip(): pytest.skip('no widget here')\n"
        "def test_abort(): import os; os.abort()\n"
    )
    run = child_pytest.run_file(tmp_path / "crashy_checks.py", tmp_path, cwd=tmp_path)
    got = {nodeid.split("::")[-1]: o for nodeid, o in run.outcomes.items()}
    assert {k: o.status for k, o in got.items()} == {
        "test_before": "passed",
        "test_crash": "crashed",
        "test_after[1]": "passed",
        "test_after[2]": "failed",
        "test_skip": "skipped",
        "test_abort": "crashed",
    }
    assert "SIGSEGV (signal 11)" in got["test_crash"].text and "test_crash" in got["test_crash"].text
    assert "SIGABRT (signal 6)" in got["test_abort"].text
    assert "assert 2 < 2" in got["test_after[2]"].text
    assert got["test_skip"].text == "no widget here"
    assert run.runs == 3 and not run.collect_errors  # two crashes, two reruns


def test_a_crash_before_any_test_is_reported(tmp_path):
    (tmp_path / "dies_on_import_checks.py").write_text("import ctypes\nctypes.string_at(0)\ndef test_x(): pass\n")
    run = child_pytest.run_file(tmp_path / "dies_on_import_checks.py", tmp_path, cwd=tmp_path)
    assert run.outcomes == {}
    assert len(run.collect_errors) == 1 and "SIGSEGV (signal 11)" in run.collect_errors[0]
