#!/usr/bin/env bash
# Runs a command inside jaxgan's virtual environment, creating it and installing
# jaxgan with its test extra first when needed (again whenever pyproject.toml
# changes). PyTorch is NOT installed: it is only the `bench` extra (the PyTorch
# reference of tools/bench.py and its tests, which skip without it); see
# docs/install.md. JAXGAN_VENV picks the environment's directory (default: .venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${JAXGAN_VENV:-$root/.venv}"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "jaxgan needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  "$(pick_python)" -m venv "$venv"
fi
stamp="$venv/.jaxgan-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "jaxgan: installing into $venv (about a minute, once)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root[test]"
  touch "$stamp"
fi
cd "$root"
# shellcheck disable=SC1091
source "$venv/bin/activate"
exec "$@"
