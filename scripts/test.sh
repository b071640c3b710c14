#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, lints, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# kcat (librdkafka as Debian ships it) is one of the clients the tests drive; gcc and librdkafka's
# header build the benchmark's native load generator, which a test runs.
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/include/librdkafka/rdkafka.h ] || missing+=(librdkafka-dev)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache  # the dependency contracts in pyproject.toml
.venv/bin/pytest "$@"
