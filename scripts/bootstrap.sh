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
# Bytecode for the broker's modules, as a wheel or the image ships it: with
# PYTHONDONTWRITEBYTECODE set, every start would otherwise compile ~1 MB of source (~100 ms).
# Cheap when nothing changed (compileall skips up-to-date files).
.venv/bin/python -m compileall -q rafka >/dev/null
