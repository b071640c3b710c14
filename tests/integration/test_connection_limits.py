"""max.connections, max.connections.per.ip and connections.max.idle.ms are enforced (issue 16,
done-when 5): the connection past a limit is closed at once and the others keep working; a
connection that does nothing for the idle time is closed, a busy one is not."""

from __future__ import annotations

import time

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from raw_client import RawClient

pytestmark = pytest.mark.timeout(60)

API_VERSIONS = ApiVersionsRequest(client_software_name="test", client_software_version="1")


def answers(client: RawClient) -> bool:
    return client.request(API_VERSIONS, ApiVersionsResponse).error_code == 0


@pytest.mark.parametrize("key", ["max.connections", "max.connections.per.ip"])
def test_the_connection_past_the_limit_is_closed(broker_factory, key: str) -> None:
    broker = broker_factory(**{key: "3"}).start()
    clients = [RawClient(broker.bootstrap) for _ in range(3)]
    try:
        assert all(answers(client) for client in clients)
        with RawClient(broker.bootstrap) as fourth:
            assert fourth.closed_by_peer(5.0)
        assert all(answers(client) for client in clients)  # the others are unaffected
        clients.pop().close()
        # The freed slot is taken again (the close reaches the broker asynchronously).
        deadline = time.monotonic() + 10
        while True:
            replacement = RawClient(broker.bootstrap)
            try:
                if answers(replacement):
                    clients.append(replacement)
                    break
            except ConnectionError:
                replacement.close()
            assert time.monotonic() < deadline, "the freed connection slot was never reused"
    finally:
        for client in clients:
            client.close()


def test_idle_connections_are_closed_and_busy_ones_are_not(broker_factory) -> None:
    broker = broker_factory(**{"connections.max.idle.ms": "1000"}).start()
    with RawClient(broker.bootstrap) as idle, RawClient(broker.bootstrap) as busy:
        assert answers(idle) and answers(busy)
        assert not idle.closed_by_peer(0.5)  # not before its time
        assert answers(busy)
        started = time.monotonic()
        # The busy one asks every 200 ms for 2.5 idle times; the idle one is closed meanwhile.
        while time.monotonic() - started < 2.5:
            assert answers(busy)
            time.sleep(0.2)
        assert idle.closed_by_peer(0.1)
        assert answers(busy)
