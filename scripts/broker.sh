#!/usr/bin/env bash
# Start a single-node rafka broker on localhost:9092 (data in ./rafka-data), installing first.
# Extra arguments go to `rafka broker`, e.g. --override num.partitions=3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/rafka broker "$@"
