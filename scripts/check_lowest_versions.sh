#!/usr/bin/env bash
# The fast suite against the lowest versions pyproject.toml declares: every `name>=X` of
# [project] dependencies and the test extra installed as `name==X` (wheels only) in a fresh
# virtual environment. Run from the repository root: bash scripts/check_lowest_versions.sh
set -euo pipefail
lowest=$(python - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
pins = project["dependencies"] + project["optional-dependencies"]["test"]
print(" ".join(pin.replace(">=", "==") for pin in pins if ">=" in pin))
PY
)
echo "lowest declared versions: $lowest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
venv=$tmp/lowest
python -m venv "$venv"
"$venv/bin/pip" install -q --only-binary=:all: $lowest
"$venv/bin/pip" install -q --no-deps -e .
"$venv/bin/python" -m pytest -m "not slow" -p no:cacheprovider
