"""Netlink work for the network drivers (pyroute2), each call in a worker thread.

pyroute2 keeps thread-local state: every function opens its own ``IPRoute`` in the
thread that uses it and closes it. Errors carry errno (``NetlinkError.code``).
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from lxctl.public import DriverError, netlink

if TYPE_CHECKING:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

_limiter = trio.CapacityLimiter(4)
T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(fn, *args, limiter=_limiter)


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def exists(ifname: str) -> bool:
    with netlink.route() as ipr:
        return _index(ipr, ifname) is not None


def ensure_bridge(ifname: str, mtu: int | None, hwaddr: str | None,
                  addresses: list[str]) -> bool:
    """Create (if missing) and bring up a Linux bridge; True if it was created."""
    with netlink.route() as ipr:
        created = False
        idx = _index(ipr, ifname)
        if idx is None:
            ipr.link("add", ifname=ifname, kind="bridge")
            created = True
            idx = _index(ipr, ifname)
            assert idx is not None
        try:
            _configure(ipr, idx, mtu, hwaddr, addresses)
        except netlink.error():
            if created:
                ipr.link("del", index=idx)
            raise
        return created


def configure(ifname: str, mtu: int | None, hwaddr: str | None,
              addresses: list[str]) -> bool:
    """MTU, MAC and addresses of an existing interface (an Open vSwitch bridge's own
    port), brought up; False if it is not there (yet)."""
    with netlink.route() as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return False
        _configure(ipr, idx, mtu, hwaddr, addresses)
        return True


def _configure(ipr: IPRoute, idx: int, mtu: int | None, hwaddr: str | None,
               addresses: list[str]) -> None:
    attrs: dict[str, Any] = {}
    if mtu:
        attrs["mtu"] = mtu
    if hwaddr:
        attrs["address"] = hwaddr
    if attrs:
        ipr.link("set", index=idx, **attrs)
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in ipr.get_addr(index=idx)}
    for cidr in addresses:
        iface = ipaddress.ip_interface(cidr)
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
    ipr.link("set", index=idx, state="up")


def enslave(bridge: str, ports: list[str]) -> list[str]:
    """Put host interfaces into the bridge; the names that do not exist."""
    missing = []
    with netlink.route() as ipr:
        br = _index(ipr, bridge)
        assert br is not None
        for port in ports:
            idx = _index(ipr, port)
            if idx is None:
                missing.append(port)
                continue
            ipr.link("set", index=idx, master=br, state="up")
    return missing


def delete(ifname: str) -> None:
    with netlink.route() as ipr:
        idx = _index(ipr, ifname)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
            except netlink.error() as exc:
                if exc.code != errno.ENODEV:
                    raise


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet on an interface or in a route here (to pick a free one)."""
    out = []
    with netlink.route() as ipr:
        for a in ipr.get_addr(family=2):
            out.append(ipaddress.ip_interface(
                f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}").network)
        for r in ipr.get_routes(family=2):
            dst = r.get_attr("RTA_DST")
            if dst:
                out.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
    return [n for n in out if isinstance(n, ipaddress.IPv4Network)]


def counters(ifname: str) -> dict[str, Any] | None:
    """State, MTU, MAC, addresses and byte/packet counters of an interface."""
    with netlink.route() as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return None
        link = ipr.get_links(idx)[0]
        stats = link.get_attr("IFLA_STATS64") or {}
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                 for a in ipr.get_addr(index=idx)]
        return {
            "host_name": ifname,
            "state": link.get_attr("IFLA_OPERSTATE", "").lower(),
            "mtu": link.get_attr("IFLA_MTU"),
            "hwaddr": link.get_attr("IFLA_ADDRESS"),
            "addresses": addrs,
            "counters": {"bytes_received": stats.get("rx_bytes", 0),
                         "bytes_sent": stats.get("tx_bytes", 0),
                         "packets_received": stats.get("rx_packets", 0),
                         "packets_sent": stats.get("tx_packets", 0)},
        }


def netlink_error(exc: NetlinkError, what: str) -> DriverError:
    return DriverError(f"{what}: {exc.args[1] if len(exc.args) > 1 else exc}")


VLAN_ALIAS = "lxctl-vlan"  # ifalias of the VLAN links this package made (removed by it)


def ensure_vlan(parent: str, vid: int, ifname: str) -> None:
    """The 802.1Q VLAN ``ifname`` on ``parent`` (``ip link add link P name P.VID type
    vlan id VID``), up; an existing one is kept (and left alone at ``drop_vlan`` unless
    it was made here)."""
    with netlink.route() as ipr:
        if _index(ipr, ifname) is not None:
            return
        link = _index(ipr, parent)
        if link is None:
            raise DriverError(f"parent interface {parent!r} not found")
        ipr.link("add", ifname=ifname, kind="vlan", link=link, vlan_id=vid)
        idx = _index(ipr, ifname)
        assert idx is not None
        try:
            ipr.link("set", index=idx, ifalias=VLAN_ALIAS, state="up")
        except netlink.error():
            ipr.link("del", index=idx)
            raise


def drop_vlan(ifname: str) -> None:
    """Delete the VLAN link if this package made it."""
    with netlink.route() as ipr:
        idx = _index(ipr, ifname)
        if idx is not None and ipr.get_links(idx)[0].get_attr("IFLA_IFALIAS") == VLAN_ALIAS:
            ipr.link("del", index=idx)
