# rafka's container image: `docker run -p 9092:9092 rafka` is a Kafka for local development.
#
# Build with scripts/image.sh (it also works where no image can be pulled). BASE is any Debian-
# like image with python3 (>= 3.11) and python3-venv; `docker/extra-ca.crt`, if not empty, is
# trusted by pip during the build only (a TLS-intercepting proxy's CA bundle): docs/docker.md.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# A compiler for the optional C record codec (the image runs fine without it, slower).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev binutils \
    $(test -x /usr/local/bin/python3 || echo python3-dev) \
 && rm -rf /var/lib/apt/lists/*
COPY docker/extra-ca.crt /tmp/extra-ca.crt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rafka ./rafka
RUN python3 -m venv /opt/rafka \
 && if [ -s /tmp/extra-ca.crt ]; then export PIP_CERT=/tmp/extra-ca.crt; fi \
 && /opt/rafka/bin/pip install --no-cache-dir --quiet . \
 && /opt/rafka/bin/pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true \
 # Wheels ship their extensions with symbols (uvloop's: 13 of its 14 MB).
 && find /opt/rafka -name '*.so' -exec strip --strip-unneeded {} + \
 # Bytecode compiled now, so that a container boots without writing .pyc files.
 && /opt/rafka/bin/python -m compileall -q -j 0 /opt/rafka/lib \
 && find /opt/rafka -name '*.c' -delete

FROM ${BASE} AS runtime
COPY --from=build /opt/rafka /opt/rafka
COPY docker/entrypoint.sh /usr/local/bin/rafka-entrypoint
RUN (useradd --system --uid 1000 --home-dir /var/lib/rafka --shell /usr/sbin/nologin rafka \
     || adduser --system --uid 1000 --home /var/lib/rafka rafka) \
 && mkdir -p /var/lib/rafka/data && chown -R rafka /var/lib/rafka \
 # apache/kafka's start script, where testcontainers' KafkaContainer runs it.
 && mkdir -p /etc/kafka/docker && ln -s /usr/local/bin/rafka-entrypoint /etc/kafka/docker/run \
 # What a broker never reads: manuals, translations, documentation (but the copyright notices),
 # the package index, and the base's pip and the wheels it installs venvs from.
 && find /usr/share/doc -type f ! -name copyright -delete \
 && rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* /var/lib/apt/lists/* \
    /var/cache/debconf/*-old /usr/share/python-wheels /usr/local/bin/pip* \
    /usr/local/lib/python3*/site-packages/pip /usr/local/lib/python3*/site-packages/setuptools \
    /usr/local/lib/python3*/site-packages/wheel /usr/local/lib/python3*/ensurepip/_bundled \
 # and what of the standard library only a developer's session uses (help() texts, 2to3).
 && rm -rf /usr/lib/python3*/pydoc_data /usr/lib/python3*/lib2to3 \
    /usr/local/lib/python3*/pydoc_data /usr/local/lib/python3*/lib2to3

# One layer, so that what was deleted above leaves the image instead of hiding under a layer.
FROM scratch
COPY --from=runtime / /
ENV PATH=/opt/rafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RAFKA_LOG_FORMAT=json
USER rafka
WORKDIR /var/lib/rafka
VOLUME /var/lib/rafka
EXPOSE 9092 19092
# The probe without the CLI framework: this runs every 5 s for the container's whole life.
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "rafka.cli.probe", "--timeout", "3"]
ENTRYPOINT ["rafka-entrypoint"]
CMD ["rafka", "broker"]
