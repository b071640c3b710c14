"""The peer channel under network faults (issue 13, availability 6 and the trigger of bug 3).

- A connect begun while the peer is unreachable must not sit in SYN-SENT under the kernel's
  backoff (SYN retransmits about 1, 2, 3, 4, 5, 7, 11, 19 s after it began on Linux 6.x): after
  the heal the peer is reached within 2 s. The peer is a real broker in a private network
  namespace (`unshare -n`, root only) whose address is a blackhole until the heal: routed to
  the loopback device but not assigned, so SYNs are dropped without an answer, as a partition
  does; the heal assigns it.
- A connect that is not set up gives up within socket.connection.setup.timeout.ms.
- A request that times out resets its connection: bytes still queued (in asyncio's buffer or the
  kernel's send queue) are discarded, so the peer sees a reset, never the stale request.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_process import BrokerProcess, free_port  # noqa: E402

from rafka.broker.cluster.peers import PeerNetwork, PeerUnavailable  # noqa: E402

HOST = "127.0.0.1"
API_VERSIONS = 18
PRODUCE = 0
RECOVERY_BOUND_S = 2.0
# Long enough that the first connect's SYN retransmissions are seconds apart at the heal (the
# next one after 7.5 s comes at about 11 s).
PARTITION_S = 7.5
LOCAL = "10.77.0.1"  # this namespace's own address on the loopback device
PEER = "10.77.0.2"  # the peer's address: a blackhole until the heal assigns it


def _netns_usable() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs root, unshare and ip for a private network namespace"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.decode().strip()}"
    return None


def test_a_peer_is_reached_promptly_after_a_partition_heals() -> None:
    reason = _netns_usable()
    if reason is not None:
        pytest.skip(reason)
    script = (
        f"ip link set lo up && ip addr add {LOCAL}/32 dev lo && "
        f"ip route add {PEER}/32 dev lo src {LOCAL} && "
        f"exec {sys.executable} {__file__} blackhole-recovery"
    )
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["partitioned_failures"] > 0
    assert result["recovery_s"] < RECOVERY_BOUND_S, (
        f"peer reached {result['recovery_s']:.1f} s after the heal"
    )


async def _blackhole_recovery(port: int) -> dict[str, float]:
    """In the private namespace: requests to the blackholed peer fail for PARTITION_S (as
    Raft's fetches and votes retry), then the heal; how long until a request is answered."""
    network = PeerNetwork(1, {1: (LOCAL, 1), 2: (PEER, port)})
    failures = 0
    try:
        loop = asyncio.get_running_loop()
        partition_ends = loop.time() + PARTITION_S
        while loop.time() < partition_ends:
            try:
                await network.request(2, API_VERSIONS, 3, _api_versions(), timeout=0.3)
            except PeerUnavailable:
                failures += 1
        subprocess.run(["ip", "addr", "add", f"{PEER}/32", "dev", "lo"], check=True)
        healed = time.monotonic()
        while True:
            try:
                response = await network.request(2, API_VERSIONS, 3, _api_versions(), timeout=0.3)
                break
            except PeerUnavailable:
                if time.monotonic() - healed > 30:
                    raise
        assert response.error_code == 0
        return {"partitioned_failures": failures, "recovery_s": time.monotonic() - healed}
    finally:
        network.close()


def _main_blackhole_recovery() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        # Listens on every address, so on the peer's once the heal assigns it.
        broker = BrokerProcess(
            Path(data),
            port=port,
            listeners=f"PLAINTEXT://0.0.0.0:{port}",
            **{"advertised.listeners": f"PLAINTEXT://{HOST}:{port}"},
        )
        with broker:
            result = asyncio.run(_blackhole_recovery(port))
    print(json.dumps(result))


async def test_a_connect_gives_up_within_its_timeout() -> None:
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    with listener, socket.create_connection((HOST, port)):  # fills the accept queue
        network = PeerNetwork(1, {1: (HOST, 1), 2: (HOST, port)}, connect_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(PeerUnavailable, match="connect not set up"):
            # A request timeout longer than the connect's: the connect itself gives up.
            await network.request(2, API_VERSIONS, 3, _api_versions(), timeout=5.0)
        assert time.monotonic() - started < 1.0
        network.close()


async def test_a_timed_out_request_is_reset_not_delivered_later() -> None:
    """The peer accepts but reads nothing (paused, or its link cut after the handshake): a
    large request stays queued at the sender when it times out. After the timeout the peer
    must find a reset, not the request."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited when accepted
    listener.bind((HOST, 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    network = PeerNetwork(1, {1: (HOST, 1), 2: (HOST, port)})
    records = b"\x00" * (4 << 20)
    loop = asyncio.get_running_loop()
    try:
        request = asyncio.ensure_future(
            network.request(2, PRODUCE, 9, _produce(records), timeout=0.5)
        )
        accepted, _ = await loop.run_in_executor(None, listener.accept)
        with accepted:
            with pytest.raises(PeerUnavailable, match="did not answer"):
                await request
            received, outcome = await loop.run_in_executor(None, _read_all, accepted)
    finally:
        network.close()
        listener.close()
    assert outcome == "reset", f"peer saw {outcome} after {received} bytes"
    assert received < len(records)


def _read_all(connection: socket.socket) -> tuple[int, str]:
    """Bytes read until the connection ends, and how it ended: "reset" or "eof"."""
    connection.settimeout(10)
    received = 0
    try:
        while data := connection.recv(1 << 16):
            received += len(data)
    except ConnectionResetError:
        return received, "reset"
    return received, "eof"


def _api_versions() -> dict:
    return {"client_software_name": "rafka-test", "client_software_version": "0"}


def _produce(records: bytes) -> dict:
    return {
        "transactional_id": None,
        "acks": 1,
        "timeout": 1000,
        "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": records}]}],
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["blackhole-recovery"]:
        _main_blackhole_recovery()
