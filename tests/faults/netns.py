"""A private network for the fault suite: one network namespace per node, each with a veth pair
into a bridge in the root namespace, addresses from a /24 made for the run (10.213.<n>.0/24, the
bridge at .254, node i at .i). Partitions are iptables DROP rules inside the nodes' namespaces,
so only the addresses made here are ever targeted.

Runs on one machine may overlap (several engineers, CI): each takes the first free <n> under an
flock, and removes what a dead run with the same <n> left behind (the names are ours).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

FIRST_SUBNET = 7  # 10.213.7.0/24, then .8, ...
SUBNETS = 16
LOCK_DIR = Path("/tmp")
COMMAND_TIMEOUT = 30.0


class NetworkError(RuntimeError):
    pass


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def unavailable_reason() -> str | None:
    """Why namespaces with iptables cannot be made here, or None. Installs iptables through
    apt-get when running as root without it (this machine's CI does)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("iptables") is None:
        if shutil.which("apt-get") is None:
            return "no iptables and no apt-get to install it"
        try:
            install = run("apt-get", "install", "-y", "-qq", "iptables", check=False)
            if install.returncode != 0:
                run("apt-get", "update", "-qq", check=False)
                run("apt-get", "install", "-y", "-qq", "iptables", check=False)
        except subprocess.TimeoutExpired:
            return "installing iptables timed out"
        if shutil.which("iptables") is None:
            return "iptables could not be installed"
    probe = f"rafka-probe-{os.getpid()}"
    try:
        made = run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        rule = run(
            "ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-s", "10.213.255.1",
            "-j", "DROP", check=False,
        )  # fmt: skip
        if rule.returncode != 0:
            return f"iptables does not work in a namespace: {rule.stderr.strip()}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


class Network:
    """`size` namespaces on one bridge. `close()` removes everything `create()` made."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.subnet: int | None = None
        self._lock: int | None = None
        self._cuts: set[frozenset[int]] = set()

    # -- names ----------------------------------------------------------------------------------

    @property
    def bridge(self) -> str:
        return f"rfkbr{self.subnet}"

    def namespace(self, node: int) -> str:
        return f"rafka-f{self.subnet}-n{node}"

    def host_link(self, node: int) -> str:
        return f"rfk{self.subnet}v{node}"  # at most 15 characters, as Linux requires

    def address(self, node: int) -> str:
        return f"10.213.{self.subnet}.{node}"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.subnet}.254"

    def launcher(self, node: int) -> list[str]:
        """Command prefix running a process in the node's namespace (`ip` execs in place)."""
        return ["ip", "netns", "exec", self.namespace(node)]

    def nodes(self) -> range:
        return range(1, self.size + 1)

    # -- life cycle -----------------------------------------------------------------------------

    def create(self) -> Network:
        self._take_subnet()
        try:
            self._remove_leftovers()
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            # With br_netfilter loaded, frames between two ports of a bridge pass the root
            # namespace's FORWARD chain, whose policy a Docker engine sets to DROP.
            run("iptables", "-w", "5", "-I", "FORWARD", *self._forward_rule)
            for node in self.nodes():
                ns = self.namespace(node)
                run("ip", "netns", "add", ns)
                run("ip", "link", "add", self.host_link(node), "type", "veth", "peer", "name",
                    "eth0", "netns", ns)  # fmt: skip
                run("ip", "link", "set", self.host_link(node), "master", self.bridge, "up")
                run("ip", "-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
                run("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Delete the namespaces, links and bridge (kill the nodes' processes first: a namespace
        with processes in it lives on until they exit)."""
        if self.subnet is None:
            return
        self._remove_leftovers()
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def _take_subnet(self) -> None:
        in_use = run("ip", "-o", "-4", "addr", "show").stdout
        for subnet in range(FIRST_SUBNET, FIRST_SUBNET + SUBNETS):
            fd = os.open(LOCK_DIR / f"rafka-faults-10.213.{subnet}.lock", os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.subnet, self._lock = subnet, fd
            # Our own leftovers are removed by create(); an address of someone else's is not.
            if f" 10.213.{subnet}." in in_use and f"rfkbr{subnet}" not in in_use:
                os.close(fd)
                self.subnet, self._lock = None, None
                continue
            return
        raise NetworkError("no free 10.213.x.0/24 subnet for the fault suite")

    def _remove_leftovers(self) -> None:
        for node in self.nodes():
            # A run killed outright leaves its brokers running in our namespaces: end them by PID.
            pids = run("ip", "netns", "pids", self.namespace(node), check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", self.namespace(node), check=False)
            run("ip", "link", "del", self.host_link(node), check=False)
        delete = ("iptables", "-w", "5", "-D", "FORWARD", *self._forward_rule)
        while run(*delete, check=False).returncode == 0:
            pass  # every copy, a killed run's included
        run("ip", "link", "del", self.bridge, check=False)

    @property
    def _forward_rule(self) -> tuple[str, ...]:
        return ("-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT")

    # -- faults ---------------------------------------------------------------------------------

    def cut(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Drop every packet between each pair of nodes, both ways (the namespaces' INPUT
        chains: a SYN or segment sent across a cut is lost, as on a real network)."""
        for a, b in pairs:
            key = frozenset((a, b))
            if len(key) != 2 or key in self._cuts:
                continue
            for here, there in ((a, b), (b, a)):
                self._iptables(here, "-A", "INPUT", "-s", self.address(there), "-j", "DROP")
            self._cuts.add(key)

    def isolate(self, node: int) -> None:
        """Cut the node from every other node (clients in the root namespace still reach it)."""
        self.cut((node, other) for other in self.nodes() if other != node)

    def split(self, *sides: Iterable[int]) -> None:
        """Cut every node from the nodes on the other sides."""
        groups = [set(side) for side in sides]
        self.cut(
            (a, b)
            for i, left in enumerate(groups)
            for right in groups[i + 1 :]
            for a in left
            for b in right
        )

    def heal(self) -> None:
        for node in self.nodes():
            self._iptables(node, "-F", "INPUT")
        self._cuts.clear()

    @property
    def cuts(self) -> set[frozenset[int]]:
        return set(self._cuts)

    def _iptables(self, node: int, *args: str) -> None:
        run(*self.launcher(node), "iptables", "-w", "5", *args)
