"""Layering: the training math imports no I/O stack and reads no config; the config schema builds nothing.

`import jaxgan` / `import jaxgan.train` must not pull in TensorFlow, TFDS, Orbax
or CLU (checked in a fresh interpreter), and no module below the orchestrators
may import them, ml_collections, or jaxgan's data/orchestrator/config/build/checkpoint
layers (checked on the source with `ast`, so a lazy import inside a function is
caught too). The config schema (`jaxgan.config`, `jaxgan.run_config`) imports no
network, loss, step or builder at module level, so loading a config stays light.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxgan"

HEAVY = ("tensorflow", "tensorflow_datasets", "orbax", "clu")
ORCHESTRATORS = (
    "jaxgan.orchestrate",
    "jaxgan.loop",
    "jaxgan.translation.orchestrate",
    "jaxgan.translation.loop",
    "jaxgan.video.orchestrate",
    "jaxgan.video.loop",
)
FORBIDDEN = (
    HEAVY
    + ("ml_collections", "jaxgan.data", "jaxgan.runner", "jaxgan.config", "jaxgan.build", "jaxgan.checkpoint")
    + ORCHESTRATORS
)

CORE_MODULES = sorted(
    [
        *ROOT.joinpath("train").rglob("*.py"),
        *ROOT.joinpath("nets").rglob("*.py"),
        *ROOT.joinpath("metrics").rglob("*.py"),
        *ROOT.joinpath("classify").rglob("*.py"),
        ROOT / "losses.py",
        ROOT / "state.py",
        ROOT / "common.py",
        ROOT / "regularizers.py",
        ROOT / "augment.py",
        ROOT / "optim.py",
        ROOT / "sampling.py",
        ROOT / "latent.py",
        ROOT / "compile_cache.py",
        ROOT / "run_config.py",
        # The translation step and nets (its orchestrator and apply.py are I/O layers, like jaxgan.orchestrate).
        ROOT / "translation" / "steps.py",
        ROOT / "translation" / "nets.py",
        # The video GAN step and nets (its orchestrator is an I/O layer).
        ROOT / "video" / "steps.py",
        ROOT / "video" / "nets.py",
        ROOT / "video" / "__init__.py",
    ]
)


def test_import_jaxgan_loads_no_io_stack():
    code = (
        "import sys\n"
        "import jaxgan, jaxgan.train, jaxgan.nets, jaxgan.losses, jaxgan.state, jaxgan.regularizers\n"
        "import jaxgan.metrics.fid, jaxgan.metrics.kid, jaxgan.metrics.prdc, jaxgan.metrics.modes\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print('LOADED', loaded)\n"
        "assert not loaded, loaded\n"
        "assert 'jaxgan.data' not in sys.modules and 'jaxgan.loop' not in sys.modules\n"
        "assert 'jaxgan.orchestrate' not in sys.modules and 'jaxgan.build' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED []" in result.stdout


def _imported_names(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    """Every module an `import` / `from ... import` statement in the file names (any depth)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)  # `from jaxgan import data`
    return names


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_core_module_list_is_complete():
    rel = {str(p.relative_to(ROOT)) for p in CORE_MODULES}
    assert {
        "train/steps.py",
        "train/parallel.py",
        "train/seeds.py",
        "nets/dcgan.py",
        "losses.py",
        "state.py",
        "common.py",
        "translation/steps.py",
    } <= rel


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_no_io_or_config(path):
    bad = sorted({n for n in _imported_names(path) if _is_forbidden(n)})
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_layering_checker_catches_violations(tmp_path):
    # The checker itself is not vacuous: it flags each form of a forbidden import.
    package = tmp_path / "jaxgan" / "train"
    package.mkdir(parents=True)
    cases = {
        "a.py": "import tensorflow as tf\n",
        "b.py": "from orbax import checkpoint\n",
        "c.py": "def f():\n    import clu.metrics\n",
        "d.py": "from jaxgan import config\n",
        "e.py": "from ..data import pipeline\n",
        "f.py": "from jaxgan.loop import train\n",
        "g.py": "import ml_collections\n",
    }
    root = tmp_path / "jaxgan"
    for name, source in cases.items():
        (package / name).write_text(source)
        assert any(_is_forbidden(n) for n in _imported_names(package / name, root)), name
    (package / "ok.py").write_text("import jax\nfrom jaxgan.common import DATA_AXIS\nfrom . import steps\n")
    assert not any(_is_forbidden(n) for n in _imported_names(package / "ok.py", root))


# What the config schema may import at module level: the standard library, ml_collections and run_config.
SCHEMA_MODULES = (ROOT / "config.py", ROOT / "run_config.py", ROOT / "compile_cache.py")
SCHEMA_FORBIDDEN = (
    "jax",
    "flax",
    "optax",
    "numpy",
    "jaxgan.nets",
    "jaxgan.losses",
    "jaxgan.train",
    "jaxgan.build",
    "jaxgan.metrics",
    "jaxgan.data",
    "jaxgan.state",
    "jaxgan.latent",
    "jaxgan.optim",
) + HEAVY


def _module_level_imports(path: pathlib.Path) -> list[str]:
    """The modules the file imports when it is imported (top-level statements only, not inside functions)."""
    names = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", SCHEMA_MODULES, ids=lambda p: p.name)
def test_config_schema_imports_no_network_or_builder(path):
    bad = sorted(
        {n for n in _module_level_imports(path) if any(n == f or n.startswith(f + ".") for f in SCHEMA_FORBIDDEN)}
    )
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad} at module level"


def test_loading_a_config_builds_nothing():
    """An experiment file's config, validated by its fields alone, leaves the builders, the orchestrators and the
    I/O stack unloaded; the old builder names still resolve from jaxgan.config, loading jaxgan.build then."""
    code = (
        "import sys\n"
        "from experiments.configs import dcgan, cyclegan, video_gan\n"
        "import jaxgan.config\n"
        "config = dcgan.get_config(); cyclegan.get_config(); video_gan.get_config()\n"
        "jaxgan.config.check_fields(config, 1)\n"
        "jaxgan.config.resolve_schedule(config)\n"
        f"heavy = {HEAVY!r} + ('jaxgan.build', 'jaxgan.runner', 'jaxgan.checkpoint', 'jaxgan.data') + "
        f"{ORCHESTRATORS!r}\n"
        "loaded = sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy)\n"
        "print('LOADED', loaded)\n"
        "assert not loaded, loaded\n"
        "from jaxgan.config import build_networks\n"
        "import jaxgan.build\n"
        "assert build_networks is jaxgan.build.build_networks and 'jaxgan.build' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED []" in result.stdout
