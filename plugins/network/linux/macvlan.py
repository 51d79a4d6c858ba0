"""The ``macvlan`` network driver: NICs are macvlan children of a host interface
(``parent``), in bridge mode unless told. Nothing is created on the host until a NIC
is plugged (the hypervisor makes the child); the network is Unavailable while its
parent is absent, and comes up as soon as the parent appears (degraded start).

``vlan=VID`` puts the NICs on the 802.1Q VLAN ``PARENT.VID`` instead, made at start
(pyroute2, ``type vlan``) unless it exists and removed at stop if made here; a kernel
without 802.1Q (the 8021q module) leaves the network Unavailable, saying so."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any, ClassVar

from lxctl.public import (
    ConfigKey,
    DriverContext,
    InstanceRecord,
    InvalidArgument,
    NetworkInfo,
    NetworkRecord,
    NetworkState,
    NetworkStatus,
    NicDevice,
    Scope,
    Unavailable,
    netlink,
)

from . import links
from .bridge import stable_mac

_N = Scope.NETWORK
MODES = ("bridge", "vepa", "private", "passthru")


def _check_vlan(value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 4094:
        raise ValueError(f"{value!r} is not a VLAN id (1-4094)")


def _check_mode(value: str) -> None:
    if value not in MODES:
        raise ValueError(f"{value!r}: the macvlan mode is one of {', '.join(MODES)}")


class MacvlanDriver:
    info: ClassVar[NetworkInfo] = NetworkInfo(
        name="macvlan", nic_types=frozenset({"macvlan"}), config_keys=(
            ConfigKey("parent", _N, doc="The host interface the NICs hang off"),
            ConfigKey("mtu", _N, doc="MTU of the NICs"),
            ConfigKey("macvlan.mode", _N, default="bridge", validate=_check_mode,
                      doc="bridge, vepa, private or passthru"),
            ConfigKey("vlan", _N, validate=_check_vlan,
                      doc="802.1Q VLAN id: the NICs hang off PARENT.VID (made if missing)"),
        ))

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @classmethod
    def probe(cls) -> str | None:
        return None

    def depends_on(self, net: NetworkRecord) -> tuple[list[str], list[str]]:
        return [net.config["parent"]] if net.config.get("parent") else [], []

    async def create(self, net: NetworkRecord) -> dict[str, str]:
        parent = net.config.get("parent")
        if not parent:
            raise InvalidArgument("A macvlan network needs parent=INTERFACE",
                                  network=net.name)
        if not await links.call(links.exists, parent):
            raise InvalidArgument(f"Parent interface {parent!r} not found",
                                  network=net.name, parent=parent)
        return {}

    async def start(self, net: NetworkRecord) -> None:
        parent = net.config.get("parent", "")
        if not await links.call(links.exists, parent):
            raise Unavailable(f"parent interface {parent!r} not found")
        vlan = net.config.get("vlan")
        if vlan:
            try:
                await links.call(links.ensure_vlan, parent, int(vlan), self.link(net))
            except netlink.error() as exc:
                if exc.code == errno.EOPNOTSUPP:
                    raise Unavailable(f"vlan={vlan}: 802.1Q VLAN (8021q) not in this "
                                      f"kernel, cannot make {self.link(net)}") from None
                raise Unavailable(f"vlan={vlan}: cannot make {self.link(net)}: "
                                  f"{exc.args[-1]}") from None

    def link(self, net: NetworkRecord) -> str:
        """The interface the NICs hang off: the parent, or its VLAN."""
        parent, vlan = net.config.get("parent", ""), net.config.get("vlan")
        return f"{parent[:15 - len(vlan) - 1]}.{vlan}" if vlan else parent

    async def stop(self, net: NetworkRecord) -> None:
        if net.config.get("vlan"):
            await links.call(links.drop_vlan, self.link(net))

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None:
        if old_config.get("vlan") != net.config.get("vlan") or old_config.get(
                "parent") != net.config.get("parent"):
            await self.stop(NetworkRecord(net.name, net.type, dict(old_config),
                                          project=net.project))
        await self.start(net)

    async def delete(self, net: NetworkRecord) -> None:
        await self.stop(net)

    async def state(self, net: NetworkRecord) -> NetworkState:
        parent = net.config.get("parent", "")
        if not await links.call(links.exists, parent):
            return NetworkState(NetworkStatus.UNAVAILABLE,
                                f"parent interface {parent!r} not found")
        if not await links.call(links.exists, self.link(net)):
            return NetworkState(NetworkStatus.UNAVAILABLE,
                                f"VLAN interface {self.link(net)!r} not found")
        return NetworkState(NetworkStatus.CREATED)

    async def plug(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        mtu = config.get("mtu") or net.config.get("mtu")
        return NicDevice(
            name=device, kind="macvlan", link=self.link(net),
            hwaddr=config.get("hwaddr") or stable_mac(inst.project, inst.name, device),
            mtu=int(mtu) if mtu else None, name_in_instance=config.get("name", device),
            mode=config.get("mode") or net.config.get("macvlan.mode", "bridge"))

    async def adopt(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                    config: Mapping[str, str]) -> NicDevice:
        """The NIC of a running instance after a daemon restart: ``plug`` makes nothing."""
        return await self.plug(net, inst, device, config)

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        ...

    async def leases(self, net: NetworkRecord) -> list[dict[str, Any]]:
        return []

