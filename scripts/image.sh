#!/usr/bin/env bash
# Build the container image and tag it rafka:latest (or $RAFKA_IMAGE), on any machine with a
# Docker engine. The base is python:3.11-slim; where it cannot be pulled (no registry), a Debian
# bookworm base with python3 is made locally with debootstrap and `docker import`.
#   RAFKA_BASE_IMAGE=...   use this base instead
#   RAFKA_EXTRA_CA=FILE    a CA bundle pip trusts during the build (TLS-intercepting proxies);
#                          default: the system bundle when a proxy is configured or no registry
#                          is reachable, as on CI machines behind one
set -euo pipefail
cd "$(dirname "$0")/.."
image=${RAFKA_IMAGE:-rafka:latest}
base=${RAFKA_BASE_IMAGE:-python:3.11-slim}
local_base=rafka-base:bookworm

if [ -z "${RAFKA_BASE_IMAGE:-}" ] && ! docker image inspect "$base" >/dev/null 2>&1 \
    && ! docker pull -q "$base" >/dev/null 2>&1; then
  base=$local_base
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "image.sh: cannot pull python:3.11-slim; building $base with debootstrap" >&2
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    root=$(mktemp -d /var/tmp/rafka-base.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$root" http://deb.debian.org/debian >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$base" >/dev/null
  fi
  # No registry here: the proxy that reaches PyPI intercepts TLS; trust the system bundle.
  : "${RAFKA_EXTRA_CA:=/etc/ssl/certs/ca-certificates.crt}"
fi

# Always present in the build context, empty unless a bundle is given (docs/docker.md).
if [ -n "${RAFKA_EXTRA_CA:-}" ]; then cp "$RAFKA_EXTRA_CA" docker/extra-ca.crt; else : > docker/extra-ca.crt; fi
docker build --quiet --build-arg "BASE=$base" -t "$image" . >/dev/null
rm -f docker/extra-ca.crt
size=$(docker image inspect "$image" --format '{{.Size}}')
echo "image.sh: built $image from $base: $((size / 1000000)) MB"
