"""Broker configuration: listeners, their security protocols and per-listener keys, and the
controller quorum against the roles (rafka/broker/config/topology.py)."""

from __future__ import annotations

import socket

import pytest

from rafka.broker.config import BrokerConfig, ConfigError, Listener, QuorumVoter


def load(*overrides: str, environ: dict[str, str] | None = None) -> BrokerConfig:
    return BrokerConfig.load(None, list(overrides), environ or {})


# --- listeners ----------------------------------------------------------------------------------


def test_listener_parsing() -> None:
    config = load(
        "listeners=plaintext://:9092, INTERNAL://10.0.0.1:9094,EXTERNAL://[::1]:9095",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "inter.broker.listener.name=INTERNAL",
    )
    assert config.listeners == [
        Listener("PLAINTEXT", "", 9092, "PLAINTEXT"),
        Listener("INTERNAL", "10.0.0.1", 9094, "PLAINTEXT"),
        Listener("EXTERNAL", "::1", 9095, "PLAINTEXT"),
    ]
    assert config.listeners[0].bind_host is None  # empty host: every interface
    assert config.listeners[1].bind_host == "10.0.0.1"
    assert str(config.listeners[2]) == "EXTERNAL://[::1]:9095"
    assert config.inter_broker_listener.name == "INTERNAL"


def test_advertised_listeners_default_and_hostname_substitution() -> None:
    config = load("listeners=PLAINTEXT://:9092")
    assert config.advertised_listeners == [
        Listener("PLAINTEXT", socket.gethostname(), 9092, "PLAINTEXT")
    ]
    config = load(
        "listeners=PLAINTEXT://0.0.0.0:9092",
        "advertised.listeners=PLAINTEXT://broker1.example:19092",
    )
    assert config.listeners[0].host == "0.0.0.0"
    assert config.advertised_listeners == [
        Listener("PLAINTEXT", "broker1.example", 19092, "PLAINTEXT")
    ]


@pytest.mark.parametrize(
    ("settings", "key", "reason"),
    [
        (("listeners=localhost:9092",), "listeners", "NAME://host:port"),
        (("listeners=PLAINTEXT://localhost",), "listeners", "host:port"),
        (("listeners=PLAINTEXT://localhost:99999",), "listeners", "out of range"),
        (("listeners=FOO://localhost:9092",), "listeners", "no security protocol"),
        (("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2",), "listeners", "appears twice"),
        (("listeners=PLAINTEXT://:9092,SSL://localhost:9092",), "listeners", "same port"),
        (("advertised.listeners=PLAINTEXT://0.0.0.0:9092",), "advertised.listeners", "0.0.0.0"),
        (("advertised.listeners=SSL://h:9093",), "advertised.listeners", "not in listeners"),
        (
            ("listener.security.protocol.map=PLAINTEXT:TLS",),
            "listener.security.protocol.map",
            "NAME:PROTOCOL",
        ),
        (
            ("listeners=EXTERNAL://:9092", "listener.security.protocol.map=EXTERNAL:PLAINTEXT"),
            "security.inter.broker.protocol",
            "PLAINTEXT is not among the broker listeners",
        ),
        (
            ("inter.broker.listener.name=PLAINTEXT", "security.inter.broker.protocol=PLAINTEXT"),
            "inter.broker.listener.name",
            "not both",
        ),
    ],
)
def test_listener_errors(settings: tuple[str, ...], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(*settings)
    assert info.value.key == key
    assert reason in str(info.value)


def test_ephemeral_port_listeners_may_share_port_zero() -> None:
    config = load(
        "listeners=PLAINTEXT://localhost:0,OTHER://localhost:0",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
    )
    assert [lst.port for lst in config.listeners] == [0, 0]


# --- controller quorum --------------------------------------------------------------------------

CLUSTER_NODE_1 = (
    "node.id=1",
    "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
    "advertised.listeners=PLAINTEXT://node1:9092",
    "controller.listener.names=CONTROLLER",
    "controller.quorum.voters=1@node1:9093,2@node2:9093,3@node3:9093",
)


def test_combined_cluster_node() -> None:
    config = load(*CLUSTER_NODE_1)
    assert not config.is_single_node
    assert config.voter_ids == [1, 2, 3]
    assert config.quorum_voters[1] == QuorumVoter(2, "node2", 9093)
    # Without an explicit map, controller listeners get PLAINTEXT as in Kafka's KRaft mode.
    assert config.controller_listeners == [Listener("CONTROLLER", "", 9093, "PLAINTEXT")]
    assert config.broker_listeners == [Listener("PLAINTEXT", "", 9092, "PLAINTEXT")]
    assert config.advertised_listeners == [Listener("PLAINTEXT", "node1", 9092, "PLAINTEXT")]


def test_controller_listener_is_not_advertised_to_clients() -> None:
    config = load(*CLUSTER_NODE_1[:2], *CLUSTER_NODE_1[3:])
    assert [lst.name for lst in config.advertised_listeners] == ["PLAINTEXT"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (("controller.quorum.voters=2@node2:9093",), "controller.quorum.voters"),
        (("controller.quorum.voters=1@node1",), "controller.quorum.voters"),
        (("controller.quorum.voters=1@node1:9093,1@node1:9094",), "controller.quorum.voters"),
        (("controller.quorum.voters=1@node1:9093",), "controller.listener.names"),
        (("controller.listener.names=CONTROLLER",), "controller.listener.names"),
        (("process.roles=broker",), "controller.quorum.voters"),
        (
            ("process.roles=broker", "controller.quorum.voters=2@c:9093"),
            "controller.listener.names",
        ),
        (
            (
                "process.roles=broker",
                "controller.quorum.voters=1@c:9093",
                "controller.listener.names=CONTROLLER",
            ),
            "controller.quorum.voters",
        ),
        (("process.roles=broker,broker",), "process.roles"),
        (("process.roles=",), "process.roles"),
        (("process.roles=zookeeper",), "process.roles"),
    ],
)
def test_quorum_errors(settings: tuple[str, ...], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(*settings)
    assert info.value.key == key


def test_broker_only_node() -> None:
    config = load(
        "node.id=4",
        "process.roles=broker",
        "controller.listener.names=CONTROLLER",
        "controller.quorum.voters=1@c1:9093",
    )
    assert config.is_broker and not config.is_controller
    assert config.voter_ids == [1]
    assert config.controller_listeners == []


def test_tls_keys_can_be_set_per_listener() -> None:
    config = load(
        "listeners=PLAINTEXT://:9092,SSL://:9093",
        "ssl.client.auth=requested",
        "listener.name.ssl.ssl.client.auth=required",
    )
    assert config.listener_get("SSL", "ssl.client.auth") == "required"
    assert config.listener_get("PLAINTEXT", "ssl.client.auth") == "requested"
    assert config.listeners[1].security_protocol == "SSL"
    environ = {"KAFKA_LISTENER_NAME_SSL_SSL_KEYSTORE_LOCATION": "/etc/rafka/broker.pem"}
    assert load(environ=environ).listener_get("SSL", "ssl.keystore.location") == (
        "/etc/rafka/broker.pem"
    )


def test_single_node_uses_kafka_quickstart_values_for_internal_topics() -> None:
    single = load()
    assert single.offsets_topic_replication_factor == 1
    assert single.transaction_state_log_replication_factor == 1
    assert single.transaction_state_log_min_isr == 1
    assert single.group_initial_rebalance_delay_ms == 0
    cluster = load(*CLUSTER_NODE_1)
    assert cluster.offsets_topic_replication_factor == 3
    assert cluster.transaction_state_log_replication_factor == 3
    assert cluster.transaction_state_log_min_isr == 2
    assert cluster.group_initial_rebalance_delay_ms == 3000
    assert load("offsets.topic.replication.factor=2").offsets_topic_replication_factor == 2
