"""The network driver protocol: managed networks, their state, and NICs as data."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from lxctl.drivers.devices import NicDevice

if TYPE_CHECKING:
    from lxctl.config.schema import ConfigKey
    from lxctl.drivers.context import DriverContext
    from lxctl.state.records import InstanceRecord, NetworkRecord


class NetworkStatus(enum.StrEnum):
    CREATED = "Created"  # up and usable
    PENDING = "Pending"  # defined, not brought up yet
    UNAVAILABLE = "Unavailable"  # could not be brought up (see the reason); retried


@dataclass(frozen=True)
class NetworkState:
    status: NetworkStatus
    reason: str = ""


@dataclass(frozen=True)
class NetworkInfo:
    name: str  # the network type: bridge, macvlan, ovn ...
    nic_types: frozenset[str]  # nictypes whose NICs it plugs: bridged, macvlan, ovn
    managed: bool = True
    config_keys: tuple[ConfigKey, ...] = ()


@dataclass(frozen=True)
class AclRule:
    """One rule of a network ACL (Incus's keys); empty fields match anything."""

    action: str  # allow | drop | reject
    state: str = "enabled"  # enabled | disabled | logged
    protocol: str = ""  # icmp4 | icmp6 | tcp | udp
    source: str = ""  # comma-separated addresses or CIDRs
    destination: str = ""
    source_port: str = ""  # comma-separated ports or FIRST-LAST ranges (tcp, udp)
    destination_port: str = ""
    icmp_type: str = ""
    icmp_code: str = ""
    description: str = ""


@dataclass(frozen=True)
class NetworkAcl:
    """A network ACL as drivers render it: rules for traffic into the instance
    (ingress) and out of it (egress)."""

    name: str
    project: str = "default"
    description: str = ""
    ingress: tuple[AclRule, ...] = ()
    egress: tuple[AclRule, ...] = ()


class NetworkDriver(Protocol):
    info: ClassVar[NetworkInfo]

    def __init__(self, ctx: DriverContext) -> None: ...

    @classmethod
    def probe(cls) -> str | None:
        """None if this machine can run the driver, else why not (names the feature)."""

    def depends_on(self, net: NetworkRecord) -> tuple[list[str], list[str]]:
        """(host interfaces, other networks) it needs: start-up goes in tiers."""

    async def create(self, net: NetworkRecord) -> dict[str, str]:
        """Validate and fill in defaults; return config keys to store."""

    async def start(self, net: NetworkRecord) -> None:
        """Bring it up; raise Unavailable (with the reason) when it cannot be."""

    async def stop(self, net: NetworkRecord) -> None: ...

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None: ...

    async def delete(self, net: NetworkRecord) -> None: ...

    async def state(self, net: NetworkRecord) -> NetworkState: ...

    async def plug(
        self, net: NetworkRecord, inst: InstanceRecord, device: str,
        config: Mapping[str, str],
    ) -> NicDevice:
        """Prepare a NIC for ``inst`` (device ``device`` with its config): the host side
        is set up by the driver, the rest is data the hypervisor renders."""

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        """Undo ``plug`` after the instance stopped or the NIC was removed."""

    # Optional: ``async def adopt(net, inst, device, config) -> NicDevice``, the NIC that
    # ``plug`` made for an instance that ran on while the daemon restarted, worked out
    # again without touching the host (its veth, ports and leases are in place). A
    # driver without it leaves such NICs unknown until the instance's next start: no
    # counters in ``info`` and no ``unplug`` at its stop.
