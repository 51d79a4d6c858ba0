"""``bridge.driver=openvswitch``: the bridge network's switch is an Open vSwitch bridge
(``ovs``: ovs-vsctl against ``network.ovs.connection``, or the system's DB), on the
kernel datapath where the kernel has it, else on OVS's userspace one (``netdev``). The
bridge's own port carries the address, dnsmasq and NAT exactly as on a Linux bridge
(``bridge``). NICs are veth pairs made here: the host end is an OVS port (``tag=`` its
``vlan``), the peer goes into the instance, its TX checksum offload off on the
userspace datapath (which never fills TCP checksums in)."""

from __future__ import annotations

from pathlib import Path

import trio

from lxctl.public import DriverError, Unavailable, netlink

from . import links, ovs, veth

WAIT = 5.0  # seconds for ovs-vswitchd to make the bridge's own interface


def datapath_type() -> str:
    """``system`` where the kernel has the OVS datapath module, else ``netdev``."""
    return "system" if Path("/sys/module/openvswitch").is_dir() else "netdev"


async def start(db: str, name: str, mtu: int | None, hwaddr: str | None,
                addresses: list[str], externals: list[str]) -> None:
    why = await ovs.reachable(db)
    if why is not None:
        raise Unavailable(f"Open vSwitch DB unreachable ({db or 'system'}): {why}")
    await ovs.ensure_bridge(db, name, datapath_type())
    with trio.move_on_after(WAIT):
        while True:
            try:
                if await links.call(links.configure, name, mtu, hwaddr, addresses):
                    break
            except netlink.error() as exc:
                raise Unavailable(f"cannot set up bridge {name}: {exc.args[-1]}") from None
            await trio.sleep(0.05)
    if not await links.call(links.exists, name):
        raise Unavailable(f"Open vSwitch made no interface {name} for its bridge")
    for port in externals:
        if not await links.call(links.exists, port):
            raise Unavailable(f"external interface {port!r} not found")
        await ovs.add_port(db, name, port)


async def stop(db: str, name: str) -> None:
    if await ovs.reachable(db) is None:
        await ovs.delete_bridge(db, name)


async def plug(db: str, bridge: str, host: str, peer: str, mtu: int | None, hwaddr: str,
               vlan: int | None, instance: str) -> None:
    """The veth pair ``host``/``peer`` with ``host`` a port of ``bridge``; nothing left
    behind if a step fails."""
    why = await ovs.reachable(db)
    if why is not None:
        raise Unavailable(f"Open vSwitch DB unreachable: {why}")
    try:
        await links.call(veth.create_pair, host, peer, mtu, hwaddr,
                         datapath_type() != "netdev")
        await ovs.add_port(db, bridge, host, {"lxctl-instance": instance}, tag=vlan)
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await unplug(db, host)
        if isinstance(exc, netlink.error()):
            raise DriverError(f"cannot make the veth pair {host}: {exc.args[-1]}") from None
        raise


async def unplug(db: str, host: str) -> None:
    if await ovs.reachable(db) is None:
        await ovs.delete_port(db, host)
    await links.call(links.delete, host)


def peer_name(host: str) -> str:
    """The instance end of a NIC's pair until the hypervisor renames it."""
    return ("vp" + host[4:] if host.startswith("veth") else "vp" + host)[:15]
