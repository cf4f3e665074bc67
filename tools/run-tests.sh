#!/usr/bin/env bash
# The test command: sets up its own virtual environment on first use, then runs pytest.
#   bash tools/run-tests.sh [pytest args...]
# Needs Python >= 3.9 and PyPI; reads ../shared (MNIST, conda-forge snapshot) when present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ENVCHECK_TEST_VENV:-$root/.venv-test}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements/test.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "run-tests: preparing $venv (first run downloads TensorFlow, ~0.5 GB)" >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$root/requirements/test.txt"
    "$venv/bin/python" -m pip install --quiet --no-deps -e "$root"
    echo "$want" > "$stamp"
fi
cd "$root"
# exit code 5 (no tests collected) is a failure too: set -e passes it on
exec "$venv/bin/python" -m pytest "$@"
