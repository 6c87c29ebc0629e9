"""Network namespaces for one run: a router namespace, one namespace per node, one for
the clients, and the partitions cut in the router.

Layout (nothing is created in, or changes, the host's own network namespace)::

    <run>-b0  eth0 198.18.10.2/24 --veth-- h0 198.18.10.1 \\
    <run>-b1  eth0 198.18.11.2/24 --veth-- h1 198.18.11.1  >  <run>-hub (forwarding)
    <run>-b2  eth0 198.18.12.2/24 --veth-- h2 198.18.12.1  |
    <run>-cl  eth0 198.18.100.2/24 --veth- hcl 198.18.100.1 /

Every veth is created inside the hub namespace with its peer moved straight into the
node's namespace, so no interface ever appears on the host.  The addresses come from
198.18.0.0/15, the block RFC 2544 reserves for benchmark test networks: it never collides
with a real network, and it only exists inside the run's namespaces.

A partition is a pair of policy-routing rules in the hub, ``ip rule add from A to B
blackhole`` (and B to A): the router silently drops every packet between the two, both
new connections and established ones, exactly like a switch or firewall that starts
dropping (Jepsen's iptables DROP).  Nothing is reset: a TCP connection across the cut
hangs until a timeout on either end notices, as it would in a real partition.  Healing
deletes the rules.  ``ip rule`` needs no kernel module beyond routing itself, which is
why it is used here instead of nftables or tc actions (neither loads on every machine).
"""

from __future__ import annotations

import subprocess
from typing import Iterable

import attrs

from kafkacheck.real.procs import RUN_PREFIX, owner_of, pid_alive, is_kafkacheck

CLIENTS = "cl"
_RULE_BASE = 1000


class NetnsError(RuntimeError):
    """Creating or changing the run's namespaces failed; the message says which command."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


@attrs.define
class Host:
    """One namespace on the run's network: a node (``b0``..) or the clients (``cl``)."""

    name: str
    netns: str
    address: str
    hub_if: str
    hub_address: str


@attrs.define
class Network:
    run_id: str
    hosts: dict[str, Host]
    hub: str
    cuts: dict[frozenset[str], int] = attrs.field(factory=dict)
    _next_rule: int = _RULE_BASE

    @classmethod
    def create(cls, run_id: str, nodes: Iterable[str]) -> "Network":
        """Create the hub and one namespace per node plus the clients' namespace."""
        hub = f"{run_id}-hub"
        hosts: dict[str, Host] = {}
        for i, name in enumerate(list(nodes)):
            hosts[name] = Host(name, f"{run_id}-{name}", f"198.18.{10 + i}.2",
                               f"h{i}", f"198.18.{10 + i}.1")
        hosts[CLIENTS] = Host(CLIENTS, f"{run_id}-{CLIENTS}", "198.18.100.2", "hcl",
                              "198.18.100.1")
        network = cls(run_id, hosts, hub)
        try:
            ip("netns", "add", hub)
            ip("-n", hub, "link", "set", "lo", "up")
            subprocess.run(["ip", "netns", "exec", hub, "sysctl", "-qw",
                            "net.ipv4.ip_forward=1"], check=True, capture_output=True)
            for host in hosts.values():
                network._add_host(host)
        except (NetnsError, subprocess.CalledProcessError, OSError) as error:
            network.destroy()
            raise NetnsError(str(error)) from None
        return network

    def _add_host(self, host: Host) -> None:
        ip("netns", "add", host.netns)
        ip("-n", host.netns, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", host.hub_if, "type", "veth", "peer", "name", "eth0",
           "netns", host.netns)
        ip("-n", self.hub, "addr", "add", f"{host.hub_address}/24", "dev", host.hub_if)
        ip("-n", self.hub, "link", "set", host.hub_if, "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "route", "add", "default", "via", host.hub_address)

    def netns_of(self, name: str) -> str:
        return self.hosts[name].netns

    def address(self, name: str) -> str:
        return self.hosts[name].address

    # -- partitions ---------------------------------------------------------------------

    def cut(self, a: str, b: str) -> bool:
        """Drop every packet between hosts ``a`` and ``b``; False if already cut."""
        pair = frozenset((a, b))
        if pair in self.cuts or a == b:
            return False
        priority = self._next_rule
        self._next_rule += 2
        src, dst = self.hosts[a].address, self.hosts[b].address
        ip("-n", self.hub, "rule", "add", "from", src, "to", dst, "blackhole",
           "priority", str(priority))
        ip("-n", self.hub, "rule", "add", "from", dst, "to", src, "blackhole",
           "priority", str(priority + 1))
        self.cuts[pair] = priority
        return True

    def heal(self) -> list[tuple[str, str]]:
        """Remove every cut; returns the pairs that were cut."""
        healed = []
        for pair, priority in sorted(self.cuts.items(), key=lambda kv: kv[1]):
            for p in (priority, priority + 1):
                ip("-n", self.hub, "rule", "del", "priority", str(p), check=False)
            healed.append(tuple(sorted(pair)))
        self.cuts.clear()
        return healed  # type: ignore[return-value]

    # -- teardown -----------------------------------------------------------------------

    def destroy(self) -> None:
        """Kill whatever still runs in the run's namespaces, then delete them (which
        deletes their veths)."""
        for netns in [h.netns for h in self.hosts.values()] + [self.hub]:
            remove_netns(netns)


def list_netns() -> list[str]:
    result = ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def remove_netns(netns: str) -> None:
    """Kill the processes inside one of our namespaces and delete it."""
    if not netns.startswith(RUN_PREFIX + "-"):
        raise ValueError(f"refusing to remove namespace {netns!r}: not kafkacheck's")
    pids = ip("netns", "pids", netns, check=False).stdout.split()
    for pid in pids:
        subprocess.run(["kill", "-CONT", pid], capture_output=True)
        subprocess.run(["kill", "-KILL", pid], capture_output=True)
    ip("netns", "del", netns, check=False)


def stale_namespaces() -> list[str]:
    """Our namespaces whose owning kafkacheck process is gone."""
    stale = []
    for netns in list_netns():
        if not netns.startswith(RUN_PREFIX + "-"):
            continue
        run_id = "-".join(netns.split("-")[:3])
        owner = owner_of(run_id)
        if owner is not None and pid_alive(owner) and is_kafkacheck(owner):
            continue
        stale.append(netns)
    return stale


def probe(run_id: str) -> str | None:
    """Can this process create namespaces and veths?  None if so, else why not."""
    netns = f"{run_id}-probe"
    try:
        ip("netns", "add", netns)
        ip("-n", netns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        ip("-n", netns, "rule", "add", "from", "198.18.0.1", "to", "198.18.0.2",
           "blackhole", "priority", "1000")
    except (NetnsError, OSError) as error:
        return str(error)
    finally:
        ip("netns", "del", netns, check=False)
    return None
