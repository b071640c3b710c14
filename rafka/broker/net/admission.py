"""Who may talk to a controller listener: the configured voters, by address.

Raft and the nodes' requests to the controller are served on controller listeners only; this
keeps everyone but the other nodes off them too. A voter's host is resolved again when an
unknown address connects (at most once a second), so that a container that restarts with a new
address on its network is admitted as soon as its name resolves to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)

REFRESH_S = 1.0


def _normal(ip: str) -> str:
    """One spelling per address: no IPv6 zone, IPv4-mapped IPv6 as IPv4."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class VoterAdmission:
    def __init__(self, hosts: Iterable[str]) -> None:
        self._hosts = sorted({host for host in hosts if host})
        self._addresses: set[str] = set()
        self._resolved_at = float("-inf")
        self._lock = asyncio.Lock()

    async def admits(self, peer_ip: str) -> bool:
        ip = _normal(peer_ip)
        if ip in self._addresses:
            return True
        async with self._lock:
            if ip not in self._addresses and time.monotonic() - self._resolved_at >= REFRESH_S:
                await self._resolve()
        if ip in self._addresses:
            return True
        log.warning("connection to a controller listener from a non-voter", peer=peer_ip)
        return False

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        addresses: set[str] = set()
        for host in self._hosts:
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:  # not resolvable yet (a container still starting): next time
                continue
            addresses.update(_normal(str(info[4][0])) for info in infos)
        self._addresses = addresses
        self._resolved_at = time.monotonic()
