"""Test setup: 8 virtual CPU devices for the data-parallel tests.

XLA reads XLA_FLAGS once, when the backend starts, so this must run before jax
is imported anywhere; pytest imports conftest.py before any test module.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
