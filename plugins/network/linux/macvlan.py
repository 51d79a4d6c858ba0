"""The ``macvlan`` network driver: NICs are macvlan children of a host interface
(``parent``), in bridge mode unless told. Nothing is created on the host until a NIC
is plugged (the hypervisor makes the child); the network is Unavailable while its
parent is absent, and comes up as soon as the parent appears (degraded start)."""

from __future__ import annotations

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
)

from . import links
from .bridge import stable_mac

_N = Scope.NETWORK
MODES = ("bridge", "vepa", "private", "passthru")


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

    async def stop(self, net: NetworkRecord) -> None: ...

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None:
        await self.start(net)

    async def delete(self, net: NetworkRecord) -> None: ...

    async def state(self, net: NetworkRecord) -> NetworkState:
        if await links.call(links.exists, net.config.get("parent", "")):
            return NetworkState(NetworkStatus.CREATED)
        return NetworkState(NetworkStatus.UNAVAILABLE, "parent interface not found")

    async def plug(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        mtu = config.get("mtu") or net.config.get("mtu")
        return NicDevice(
            name=device, kind="macvlan", link=net.config["parent"],
            hwaddr=config.get("hwaddr") or stable_mac(inst.project, inst.name, device),
            mtu=int(mtu) if mtu else None, name_in_instance=config.get("name", device),
            mode=config.get("mode") or net.config.get("macvlan.mode", "bridge"))

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        ...

    async def leases(self, net: NetworkRecord) -> list[dict[str, Any]]:
        return []

