#!/usr/bin/env bash
# Make a Docker engine available for the container suite: install Debian's docker.io,
# docker-compose and debootstrap if missing, and start dockerd in the background if none answers.
# Prints the PID of a dockerd it started (nothing if one was running), for the caller to stop.
set -euo pipefail
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 \
    || ! command -v debootstrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >&2
  fi
fi
if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "docker-engine.sh: no Docker engine and no way to start one here" >&2
  exit 0
fi
dockerd >/tmp/rafka-ci-dockerd.log 2>&1 &
pid=$!
for _ in $(seq 100); do
  docker info >/dev/null 2>&1 && { echo "$pid"; exit 0; }
  sleep 0.2
done
echo "docker-engine.sh: dockerd did not answer within 20 s (see /tmp/rafka-ci-dockerd.log)" >&2
kill "$pid" 2>/dev/null || true
