"""socket.send.buffer.bytes, socket.receive.buffer.bytes and socket.listen.backlog.size reach the
broker's sockets, as the kernel reports them (`ss`): the accepted connection's buffers (the kernel
doubles what is asked) and the listening socket's backlog."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from raw_client import RawClient

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)"),
]


def ss(*args: str) -> str:
    return subprocess.run(["ss", "-n", *args], capture_output=True, text=True, check=True).stdout


def broker_side_buffers(port: int, client_port: int) -> tuple[int, int]:
    """(receive buffer, send buffer) of the broker's end of one connection."""
    out = ss("-t", "-m", "state", "established", f"( sport = :{port} and dport = :{client_port} )")
    found = re.search(r"skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def listen_backlog(port: int) -> int:
    lines = ss("-l", "-t", f"( sport = :{port} )").splitlines()[1:]
    assert len(lines) == 1, lines
    return int(lines[0].split()[2])  # a listening socket's Send-Q is its backlog


def buffers_of_a_connection(port: int, bootstrap: str) -> tuple[int, int]:
    """The broker's (receive, send) buffer sizes on a connection that has been answered."""
    with RawClient(bootstrap) as client:
        request = ApiVersionsRequest(client_software_name="test", client_software_version="1")
        assert client.request(request, ApiVersionsResponse).error_code == 0
        return broker_side_buffers(port, client.sock.getsockname()[1])


def test_socket_settings_reach_the_kernel(broker_factory) -> None:
    broker = broker_factory(
        **{
            "socket.send.buffer.bytes": "65536",
            "socket.receive.buffer.bytes": "32768",
            "socket.listen.backlog.size": "7",
        }
    ).start()
    assert listen_backlog(broker.port) == 7
    assert buffers_of_a_connection(broker.port, broker.bootstrap) == (2 * 32768, 2 * 65536)


def test_minus_one_leaves_the_buffers_to_the_kernel(broker_factory) -> None:
    broker = broker_factory(
        **{"socket.send.buffer.bytes": "-1", "socket.receive.buffer.bytes": "-1"}
    ).start()
    assert buffers_of_a_connection(broker.port, broker.bootstrap) != (2 * 102400, 2 * 102400)


def test_the_defaults_are_kafkas(broker) -> None:
    assert listen_backlog(broker.port) == 50
    assert buffers_of_a_connection(broker.port, broker.bootstrap) == (2 * 102400, 2 * 102400)
