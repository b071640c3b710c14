"""Broker configuration: Kafka's keys and defaults, loaded from file < env RAFKA_<KEY> < --override.

The package's modules: definitions (the catalogue of keys), properties (the file syntax),
environment (RAFKA_ and KAFKA_ variables), values and endpoints (parsing and checking), topology
(listeners and quorum derived across keys and checked against the roles), and broker_config
(BrokerConfig, the merged and validated layers).

Where rafka departs from Kafka's defaults it says so in the definition's doc line:
- zero-config single node: node.id=1, process.roles=broker,controller, a listener on
  localhost:9092, data under ./rafka-data, and an in-process one-voter quorum when
  controller.quorum.voters is empty;
- durability (DESIGN principle 5): log.flush.interval.messages=1, i.e. fsync before acknowledging
  (group commit makes one fsync cover every append since the last); other values are refused
  (definitions.NOT_IMPLEMENTED), and any log.flush.interval.ms is met, as every write is fsynced;
- segment files are deleted at once and the metadata quorum does not linger:
  log.segment.delete.delay.ms=0 and controller.quorum.append.linger.ms=0;
- replica.fetch.max.bytes=8 MiB (Kafka: 1 MiB): a follower fsyncs before each fetch, so it
  fetches more at a time;
- internal topics: 8 partitions instead of 50 (see definitions._INTERNAL_TOPIC_PARTITIONS);
- single-node mode uses the values of Kafka's own quickstart server.properties for internal
  topic replication (1) and the initial rebalance delay (0): Kafka's defaults need 3 nodes.
"""

from rafka.broker.config.broker_config import BrokerConfig, ConfigEntry
from rafka.broker.config.definitions import (
    DEFINITIONS,
    LONG_MAX,
    NOT_IMPLEMENTED,
    ConfigDef,
    ConfigError,
    ConfigType,
)
from rafka.broker.config.endpoints import Listener, QuorumVoter
from rafka.broker.config.environment import ENV_VARS, env_var_name, kafka_env_key
from rafka.broker.config.properties import parse_properties
from rafka.broker.config.values import parse_value, render_value

__all__ = [
    "BrokerConfig",
    "ConfigDef",
    "ConfigEntry",
    "ConfigError",
    "ConfigType",
    "DEFINITIONS",
    "ENV_VARS",
    "LONG_MAX",
    "Listener",
    "NOT_IMPLEMENTED",
    "QuorumVoter",
    "env_var_name",
    "kafka_env_key",
    "parse_properties",
    "parse_value",
    "render_value",
]
