"""Configuration from the environment: RAFKA_<KEY>, and apache/kafka's image convention
KAFKA_<KEY> (with CLUSTER_ID)."""

from __future__ import annotations

import logging
import re

from rafka.broker.config.definitions import DEFINITIONS

log = logging.getLogger(__name__)

ENV_PREFIX = "RAFKA_"
# RAFKA_ variables that configure something other than the broker config (see rafka.broker.logs).
RESERVED_ENV_VARS = frozenset({"RAFKA_LOG_FORMAT", "RAFKA_LOG_LEVEL", "RAFKA_BOOTSTRAP_SERVER"})


def env_var_name(key: str) -> str:
    """RAFKA_<KEY>: dots to underscores, upper case; rafka's own "rafka." keys drop that prefix."""
    bare = key.removeprefix("rafka.")
    return ENV_PREFIX + bare.replace(".", "_").replace("-", "_").upper()


ENV_VARS: dict[str, str] = {env_var_name(name): name for name in DEFINITIONS}
assert len(ENV_VARS) == len(DEFINITIONS), "two config keys map to the same environment variable"

# apache/kafka's container image convention, so that compose files written for it work with the
# image swapped: KAFKA_<KEY> with '_' for '.', '__' for '_' and '___' for '-', and CLUSTER_ID.
KAFKA_ENV_PREFIX = "KAFKA_"
# Variables of that image that set up its JVM or its scripts, not the broker.
KAFKA_JVM_ENV_VARS = frozenset(
    {
        "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME",
        "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_VERSION", "KAFKA_HOME", "KAFKA_DEBUG",
    }
)  # fmt: skip


def kafka_env_key(var: str) -> str:
    """KAFKA_LOG_RETENTION_HOURS -> log.retention.hours; '__' is '_', '___' is '-'."""
    name = var.removeprefix(KAFKA_ENV_PREFIX).lower()
    return re.sub("_{1,3}", lambda run: _KAFKA_ENV_SEPARATORS[len(run.group())], name)


_KAFKA_ENV_SEPARATORS = {1: ".", 2: "_", 3: "-"}
