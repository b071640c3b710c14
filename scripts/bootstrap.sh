#!/usr/bin/env bash
# Creates .venv and installs rafka (editable, with its test extras) from pyproject.toml.
# Idempotent: reinstalls only when pyproject.toml or the C sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.rafka-installed
want=$(cat pyproject.toml rafka/protocol/*.c 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --quiet --upgrade pip setuptools wheel
  .venv/bin/pip install --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi
