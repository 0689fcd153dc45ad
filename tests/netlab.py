"""A county and a village on either side of a NAT, made of Linux network namespaces.

    county (hub, broker, coturn, the browser)      router                village (the edge agent)
    10.77.1.1/24 ──────────────────────────── 10.77.1.2 | 10.77.2.1 ──── 10.77.2.2/24
                                                 MASQUERADE out of the county side

The village's default route is the router, which masquerades the village's traffic as its own
county-side address (as village broadband or 4G does). The county has no route to 10.77.2.0/24:
nothing there can open a connection to the device. Everything is made by the lab with `ip` and
`iptables` inside namespaces it names itself, and removed by ``down`` (deleting a namespace
removes its links and its NAT table). Needs root.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
COUNTY_IP, ROUTER_COUNTY_IP, ROUTER_VILLAGE_IP, VILLAGE_IP = "10.77.1.1", "10.77.1.2", "10.77.2.1", "10.77.2.2"
_libc = ctypes.CDLL(None, use_errno=True)


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")


class NetLab:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.county, self.router, self.village = f"xlc-{tag}", f"xlr-{tag}", f"xlv-{tag}"
        self._made: list[str] = []

    def up(self) -> "NetLab":
        for ns in (self.county, self.router, self.village):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        tag = self.county[4:]
        # a veth pair is made in the root namespace and its ends moved into the two namespaces
        for a_ns, a_if, b_ns, b_if in ((self.county, f"c{tag}", self.router, f"rc{tag}"),
                                       (self.village, f"v{tag}", self.router, f"rv{tag}")):
            _run("ip", "link", "add", a_if, "type", "veth", "peer", "name", b_if)
            _run("ip", "link", "set", a_if, "netns", a_ns)
            _run("ip", "link", "set", b_if, "netns", b_ns)
        self._addr(self.county, f"c{tag}", f"{COUNTY_IP}/24")
        self._addr(self.router, f"rc{tag}", f"{ROUTER_COUNTY_IP}/24")
        self._addr(self.router, f"rv{tag}", f"{ROUTER_VILLAGE_IP}/24")
        self._addr(self.village, f"v{tag}", f"{VILLAGE_IP}/24")
        _run("ip", "-n", self.village, "route", "add", "default", "via", ROUTER_VILLAGE_IP)
        _run("ip", "netns", "exec", self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _run("ip", "netns", "exec", self.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", f"rc{tag}",
             "-s", "10.77.2.0/24", "-j", "MASQUERADE")
        return self

    @staticmethod
    def _addr(ns: str, ifname: str, cidr: str) -> None:
        _run("ip", "-n", ns, "addr", "add", cidr, "dev", ifname)
        _run("ip", "-n", ns, "link", "set", ifname, "up")

    def down(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()

    def prefix(self, ns: str) -> list[str]:
        """The command prefix that runs a program inside ``ns``."""
        return ["ip", "netns", "exec", ns]

    @contextlib.contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """Sockets made by this thread inside the block belong to ``ns`` (and stay there)."""
        here = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(there, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns}")
            yield
        finally:
            _libc.setns(here, CLONE_NEWNET)
            os.close(here)
            os.close(there)
