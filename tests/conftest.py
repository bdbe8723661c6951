"""Test setup: 8 virtual CPU devices, and compilation made cheap for a 2-core CI.

XLA reads XLA_FLAGS once, when the backend starts, so this must run before jax
is imported anywhere; pytest imports conftest.py before any test module. The
environment is inherited by the subprocesses the tests launch (CLI runs), so
they compile the same programs the same way.

- 8 virtual CPU devices for the data-parallel tests.
- LLVM at -O0 (`--xla_backend_optimization_level=0`): most tests are dominated
  by compiling tiny programs, where LLVM's optimizer is most of the cost
  (measured: the all-stabilizers step test 114 s -> 75 s of CPU; a 2,000-step
  MLP training test unchanged). XLA's HLO passes (fusion, layout) still run.
  Set JAXGAN_TEST_XLA_OPT=1 to test at XLA's default optimization instead.
- A persistent compilation cache for the session (a fresh temporary folder,
  removed at exit): tests and their CLI subprocesses that build the same
  program (the loop's test config, above all) compile it once (measured: five
  loop tests 123 s -> 72 s of CPU). Tests that count compilations count its
  hits too (train_step_test). JAXGAN_TEST_COMPILATION_CACHE=0 turns it off.
"""

import atexit
import os
import shutil
import tempfile


def _add_xla_flag(flag: str) -> None:
    name = flag.split("=")[0]
    if name not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()


_add_xla_flag("--xla_force_host_platform_device_count=8")
if os.environ.get("JAXGAN_TEST_XLA_OPT", "0") != "1":
    _add_xla_flag("--xla_backend_optimization_level=0")
if os.environ.get("JAXGAN_TEST_COMPILATION_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxgan-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
