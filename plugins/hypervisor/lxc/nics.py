"""NIC hot-plug into a running container: the interface is made on the host side
(pyroute2: a veth pair into the NIC's bridge, a macvlan child of its parent, or the
driver's own interface for ``phys``) and moved into the container's network namespace
under a temporary name, then named, addressed (MAC), sized (MTU) and brought up there
by ``ip`` under ``nsenter`` (the subprocess helper: pyroute2 forks to reach another
namespace, which a threaded daemon must not). Undone if a step fails. Hot-unplug
deletes it (veth, macvlan) or hands a ``phys`` interface back to the host under its
own name, as LXC does at stop."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import trio

from lxctl.public import DriverError, InvalidArgument, NicDevice, Outcome, netlink, run

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


async def _inside(pid: int, *args: str) -> Outcome:
    return await run(["nsenter", "-t", str(pid), "-n", "ip", *args], check=False,
                     timeout=10)


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _temporary(pid: int, nic: NicDevice) -> str:
    return "lxh" + hashlib.sha256(f"{pid}/{nic.name}".encode()).hexdigest()[:10]


async def hotplug(pid: int, nic: NicDevice) -> None:
    if (await _inside(pid, "link", "show", "dev", nic.name_in_instance)).ok:
        raise InvalidArgument(f"Device {nic.name!r}: the container already has an "
                              f"interface {nic.name_in_instance!r}", device=nic.name)
    if nic.kind == "veth" and nic.vlan is not None:
        raise InvalidArgument(f"Device {nic.name!r}: vlan= on a Linux bridge NIC cannot "
                              "be hot-plugged; stop the instance first", device=nic.name)
    moved = await trio.to_thread.run_sync(_make_and_move, pid, nic)
    try:
        args = ["link", "set", "dev", moved, "name", nic.name_in_instance]
        if nic.hwaddr:
            args += ["address", nic.hwaddr]
        if nic.mtu:
            args += ["mtu", str(nic.mtu)]
        out = await _inside(pid, *args, "up")
        if not out.ok:
            raise DriverError(f"Device {nic.name!r}: cannot set it up in the container: "
                              f"{out.tail()}", device=nic.name)
        await trio.to_thread.run_sync(set_limits, nic)
    except BaseException:
        with trio.CancelScope(shield=True):
            await hot_unplug(pid, nic, moved)
        raise
def _make_and_move(pid: int, nic: NicDevice) -> str:
    """Make the host side and move the container's end in; its name there."""
    with netlink.route() as ipr:
        link = _index(ipr, nic.link) if nic.link else None
        if link is None:
            raise DriverError(f"Device {nic.name!r}: interface {nic.link!r} not found",
                              device=nic.name)
        made: int | None = None
        try:
            if nic.kind == "veth":
                tmp = _temporary(pid, nic)
                host = nic.host_name or "veth" + tmp[3:11]
                for old in (host, tmp):
                    if (idx := _index(ipr, old)) is not None:
                        ipr.link("del", index=idx)
                ipr.link("add", ifname=host, kind="veth", peer=tmp)
                made = _index(ipr, host)
                assert made is not None
                ipr.link("set", index=made, master=link, state="up",
                         **({"mtu": nic.mtu} if nic.mtu else {}))
            elif nic.kind == "macvlan":
                tmp = _temporary(pid, nic)
                ipr.link("add", ifname=tmp, kind="macvlan", link=link,
                         macvlan_mode=MACVLAN_MODES.get(nic.mode or "bridge", 4))
                made = _index(ipr, tmp)
            elif nic.kind == "phys":
                tmp = nic.link or ""
            else:
                raise InvalidArgument(f"Device {nic.name!r}: {nic.kind} NICs cannot be "
                                      "hot-plugged", device=nic.name)
            idx = _index(ipr, tmp)
            assert idx is not None
            ipr.link("set", index=idx, net_ns_pid=pid)
            return tmp
        except netlink.error() as exc:
            if made is not None:
                ipr.link("del", index=made)
            raise DriverError(f"Device {nic.name!r}: cannot make its interface: "
                              f"{exc.args[-1]}", device=nic.name) from None
        except BaseException:
            if made is not None:
                ipr.link("del", index=made)
            raise


async def hot_unplug(pid: int, nic: NicDevice, name: str | None = None) -> None:
    """Take the NIC out (``name``: its name in the container if not yet renamed)."""
    inside = name or nic.name_in_instance
    if nic.kind == "veth" and nic.host_name and await trio.to_thread.run_sync(
            _delete, nic.host_name):
        return
    if nic.kind == "phys" and nic.link:
        out = await _inside(pid, "link", "set", "dev", inside, "down", "name", nic.link,
                            "netns", str(os.getpid()))
    else:
        out = await _inside(pid, "link", "del", "dev", inside)
    if not out.ok and (await _inside(pid, "link", "show", "dev", inside)).ok:
        raise DriverError(f"Device {nic.name!r}: cannot take it out of the container: "
                          f"{out.tail()}", device=nic.name)


def _delete(ifname: str) -> bool:
    """Delete a host interface; False if there is none."""
    with netlink.route() as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            return False
        ipr.link("del", index=idx)
        return True


LATENCY_US = 50_000  # tbf: how long a packet may wait
INGRESS = 0xFFFF0000  # the ingress qdisc's handle (ffff:)
TC_H_ROOT = 0xFFFFFFFF


def set_limits(nic: NicDevice) -> None:
    """``limits.ingress``/``limits.egress`` on the NIC's host end, as Incus sets them:
    traffic into the instance is shaped (tbf as the host end's root qdisc), traffic out
    of it policed (an ingress qdisc with a u32 police filter that drops the excess).
    Nothing to do without limits or a host end."""
    if not nic.host_name or (nic.limits_ingress is None and nic.limits_egress is None):
        return
    with netlink.route() as ipr:
        idx = _index(ipr, nic.host_name)
        if idx is None:
            raise DriverError(f"Device {nic.name!r}: host interface {nic.host_name!r} not "
                              "found for its limits", device=nic.name)
        if nic.limits_ingress is not None:
            rate = max(nic.limits_ingress // 8, 1)
            _quiet_del(ipr, "tbf", idx, root=True)
            ipr.tc("add", "tbf", index=idx, handle="1:", rate=rate,
                   burst=max(rate // 10, 16 * 1024), latency=LATENCY_US)
        if nic.limits_egress is not None:
            rate = max(nic.limits_egress // 8, 1)
            _quiet_del(ipr, "ingress", idx, root=False)
            ipr.tc("add", "ingress", index=idx, handle=INGRESS)
            try:
                ipr.tc("add-filter", "u32", index=idx, handle=0, parent=INGRESS, prio=1,
                       protocol=0x0300,  # ETH_P_ALL, network order
                       target=0x10020, keys=["0x0/0x0+0"], rate=rate,
                       burst=max(rate // 10, 16 * 1024), action="drop")
            except netlink.error() as exc:
                _quiet_del(ipr, "ingress", idx, root=False)
                raise DriverError(
                    f"Device {nic.name!r}: limits.egress needs tc policing (the u32 "
                    f"classifier and police action), which this kernel lacks: "
                    f"{exc.args[-1]}", device=nic.name) from None


def _quiet_del(ipr: Any, kind: str, idx: int, *, root: bool) -> None:
    """Delete the root (``root``) or ingress qdisc, if there is one."""
    try:
        if root:
            ipr.tc("del", index=idx, handle="1:", parent=TC_H_ROOT)
        else:
            ipr.tc("del", kind, index=idx, handle=INGRESS)
    except netlink.error():
        pass  # none there
