#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, lints, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# kcat (librdkafka as Debian ships it) is one of the clients the tests drive.
if ! command -v kcat >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq kcat >/dev/null
fi
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache  # the dependency contracts in pyproject.toml
.venv/bin/pytest "$@"
