#!/usr/bin/env bash
# The test command: sets up its own virtual environment on first use, then runs pytest.
#   bash tools/run-tests.sh [pytest args...]
# Needs Python 3.11-3.13 (what the pins in requirements/test.txt support) and PyPI; reads
# ../shared (MNIST, conda-forge snapshot) when present.
#   PYTHON=python3.12        the interpreter the venv is made from (default python3)
#   ENVCHECK_TEST_VENV=DIR   where the venv lives (default .venv-test)
#   ENVCHECK_TORCH_INDEX=URL the index the CPU build of torch comes from (default PyTorch's CPU
#                            index; empty: plain pip configuration, e.g. PyPI only)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ENVCHECK_TEST_VENV:-$root/.venv-test}"
python="${PYTHON:-python3}"
torch_index="${ENVCHECK_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "run-tests: no '$python' on PATH; install Python 3.11-3.13 or set PYTHON=/path/to/python3" >&2
    exit 2
fi
# torch 2.13, numpy 2.4, platformdirs 4.14 and scipy 1.17 need >= 3.11; tensorflow-cpu 2.21
# has no wheel for 3.14.
"$python" -c '
import sys
v = sys.version_info
if not (3, 11) <= v[:2] <= (3, 13):
    sys.exit(f"run-tests: Python {v[0]}.{v[1]} cannot install the pinned test packages; "
             "use Python 3.11-3.13, e.g. PYTHON=python3.12 bash tools/run-tests.sh")
'

stamp="$venv/.requirements.sha256"
want="$("$python" -c '
import hashlib, sys
print(hashlib.sha256(b"".join(open(p, "rb").read() for p in sys.argv[1:])).hexdigest())
' "$root/requirements/test.txt" "$root/pyproject.toml")"
vpy="$venv/bin/python"
[ -x "$venv/Scripts/python.exe" ] && vpy="$venv/Scripts/python.exe"  # Windows (Git Bash)

if [ ! -x "$vpy" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "run-tests: preparing $venv (the first run downloads about 0.7 GB of wheels:" \
        "CPU torch, tensorflow-cpu, scipy, pandas, matplotlib, py-rattler; pip shows each" \
        "download and its progress)" >&2
    "$python" -m venv "$venv"
    vpy="$venv/bin/python"
    [ -x "$venv/Scripts/python.exe" ] && vpy="$venv/Scripts/python.exe"
    "$vpy" -m pip install --quiet --upgrade pip
    # pip's own output, not --quiet: each package as it is fetched, its size, and on a terminal
    # a progress bar, so a first run that downloads for minutes never looks hung
    pip_install() { "$vpy" -m pip install --progress-bar on "$@" >&2; }
    # torch first, from PyTorch's CPU index where it answers: on Linux x86-64, PyPI's torch is
    # the CUDA build with gigabytes of NVIDIA libraries. Where only PyPI (or a local mirror in
    # the pip configuration) is reachable, the same pin comes from there.
    torch_pin="$(grep -E '^torch==' "$root/requirements/test.txt")"
    echo "run-tests: [1/3] $torch_pin" >&2
    if [ -n "$torch_index" ] && "$vpy" -c '
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5).close()
' "$torch_index" 2>/dev/null; then
        pip_install --extra-index-url "$torch_index" "$torch_pin"
    else
        [ -n "$torch_index" ] && echo "run-tests: $torch_index does not answer; installing" \
            "$torch_pin from the pip configuration (on Linux x86-64 PyPI's is the CUDA build)" >&2
        pip_install "$torch_pin"
    fi
    echo "run-tests: [2/3] the other pinned packages of requirements/test.txt" >&2
    pip_install -r "$root/requirements/test.txt"
    echo "run-tests: [3/3] envcheck from this checkout (editable)" >&2
    "$vpy" -m pip install --quiet --no-deps -e "$root"
    echo "$want" > "$stamp"
    echo "run-tests: $venv is ready; later runs start at once" >&2
fi
cd "$root"
# exit code 5 (no tests collected) is a failure too: set -e passes it on
exec "$vpy" -m pytest "$@"
