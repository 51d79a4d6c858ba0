"""Managed networks as the core sees them: records, their drivers, start-up in tiers,
and NICs plugged through the network driver.

At start, networks come up in dependency tiers (standalone ones, then those with a host
parent, then those on another network); one that fails is Unavailable with the reason
(degraded start, ``kernel/availability``) and retried at once when a netlink watcher
sees a link appear. ``NetworkAdmin`` holds the CRUD.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
import trio

from lxctl.config.schema import ConfigSchema, Scope
from lxctl.drivers.devices import NicDevice
from lxctl.drivers.registry import Drivers
from lxctl.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidState,
    LxctlError,
    NotFound,
    Unavailable,
)
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.state.records import InstanceRecord, NetworkRecord
from lxctl.state.store import StateStore, Tables

KIND = "network"

log = structlog.get_logger("lxctl.networks")


def source(rec: NetworkRecord) -> str:
    return f"/1.0/networks/{rec.name}" + ("" if rec.project == "default"
                                          else f"?project={rec.project}")


def key(project: str, name: str) -> str:
    return f"{project}/{name}"


class Networks:
    def __init__(self, store: StateStore, drivers: Drivers, bus: EventBus,
                 availability: Availability) -> None:
        self.store = store
        self.drivers = drivers
        self.bus = bus
        self.availability = availability
        self._plugged: dict[tuple[str, str], list[tuple[NetworkRecord, NicDevice]]] = {}

    def tier(self, rec: NetworkRecord) -> int:
        interfaces, networks = self.drivers.network(rec.type).depends_on(rec)
        return 2 if networks else 1 if interfaces else 0

    async def bring_up_all(self) -> None:
        recs = await self.store.read(lambda t: t.network_list(None))
        for rec in sorted(recs, key=self._safe_tier):
            await self.availability.add(KIND, key(rec.project, rec.name), self._starter(rec),
                                        source(rec))

    def _safe_tier(self, rec: NetworkRecord) -> int:
        try:
            return self.tier(rec)
        except Exception:
            return 0  # its driver is missing: it fails on its own, in the first tier

    def _starter(self, rec: NetworkRecord) -> Callable[[], Awaitable[None]]:
        async def start() -> None:
            driver = self.drivers.network(rec.type)
            for parent in driver.depends_on(rec)[1]:
                reason = self.availability.reason(KIND, key(rec.project, parent))
                if reason is not None:
                    raise Unavailable(f"network {parent!r} it depends on is unavailable")
            await driver.start(rec)
            await self.apply_acls(rec)

        return start

    async def apply_acls(self, rec: NetworkRecord) -> None:
        """Give a driver that renders network ACLs the project's (after it came up)."""
        apply = getattr(self.drivers.network(rec.type), "apply_acls", None)
        if apply is not None:
            from lxctl.objects.network_acls import project_acls

            await apply(rec, await project_acls(self.store, rec.project))

    async def check_acls(self, rec: NetworkRecord, value: str | None, what: str) -> None:
        """``security.acls`` (of the network or of a NIC on it): ACLs that exist, on a
        network whose driver renders them."""
        if not value:
            return
        if getattr(self.drivers.network(rec.type), "apply_acls", None) is None:
            raise InvalidArgument(f"{what}: security.acls: network {rec.name!r} "
                                  f"({rec.type}) does not apply network ACLs",
                                  network=rec.name)
        from lxctl.objects.network_acls import check_names

        await check_names(self.store, rec.project, value)

    async def get(self, project: str, name: str) -> NetworkRecord:
        return await self.store.read(lambda t: t.network_get(project, name))

    async def plug(self, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        rec = await self.get(inst.project, config["network"])
        self.availability.require(KIND, key(rec.project, rec.name), f"Network {rec.name!r}")
        driver = self.drivers.network(rec.type)
        nictype = config.get("nictype")
        if nictype is not None and nictype not in driver.info.nic_types:
            raise InvalidArgument(
                f"Device {device!r}: network {rec.name!r} ({rec.type}) takes no {nictype} "
                f"NICs (it takes: {', '.join(sorted(driver.info.nic_types))})", device=device)
        await self.check_acls(rec, config.get("security.acls"), f"Device {device!r}")
        nic = await driver.plug(rec, inst, device, config)
        self._plugged.setdefault(inst.key, []).append((rec, nic))
        return nic

    async def adopt(self, inst: InstanceRecord, devices: Mapping[str, Mapping[str, str]]
                    ) -> None:
        """After a daemon restart, for an instance that ran on: the NICs ``plug`` made
        for it, worked out again by drivers that can (``adopt``), so that ``info`` shows
        them and its stop unplugs them. One that cannot be is logged and left."""
        for device, conf in sorted(devices.items()):
            if conf.get("type") != "nic" or "network" not in conf:
                continue
            try:
                rec = await self.get(inst.project, conf["network"])
                adopt = getattr(self.drivers.network(rec.type), "adopt", None)
                if adopt is None:
                    continue
                nic = await adopt(rec, inst, device, conf)
            except Exception as exc:  # a start goes on without it
                log.warning("cannot re-adopt a NIC", instance=inst.name, device=device,
                            error=str(exc))
                continue
            self._plugged.setdefault(inst.key, []).append((rec, nic))

    def plugged(self, inst: InstanceRecord, device: str) -> NicDevice | None:
        """The NIC ``plug`` made for the instance's device (the latest), if any."""
        found = [nic for _, nic in self._plugged.get(inst.key, []) if nic.name == device]
        return found[-1] if found else None

    async def unplug(self, inst: InstanceRecord, nic: NicDevice) -> None:
        """Undo the ``plug`` that made ``nic`` (a NIC hot-unplugged, or one whose
        hot-plug failed)."""
        entries = self._plugged.get(inst.key, [])
        for i, (rec, known) in enumerate(entries):
            if known is nic:
                del entries[i]
                await self.drivers.network(rec.type).unplug(rec, inst, nic)
                return

    async def unplug_all(self, inst: InstanceRecord) -> None:
        """After the instance stopped: undo every ``plug`` done for it."""
        for rec, nic in self._plugged.pop(inst.key, []):
            await self.drivers.network(rec.type).unplug(rec, inst, nic)

    def nic_state(self, inst: InstanceRecord) -> dict[str, dict[str, Any]]:
        """Per interface in the instance: its host end, MAC, MTU and counters (seen from
        the host side, so sent and received are swapped back to the instance's view).
        Read from sysfs: a list shows it for every NIC of every running instance."""
        out: dict[str, dict[str, Any]] = {}
        for rec, nic in self._plugged.get(inst.key, []):
            if not nic.host_name:
                continue
            link = host_link(nic.host_name)
            if link is None:
                continue
            out[nic.name_in_instance] = {
                "host_name": nic.host_name, "hwaddr": nic.hwaddr or "", "mtu": link["mtu"],
                "network": rec.name,
                "counters": {"bytes_received": link["tx_bytes"],
                             "bytes_sent": link["rx_bytes"],
                             "packets_received": link["tx_packets"],
                             "packets_sent": link["rx_packets"]}}
        return out

    def needs(self, inst: InstanceRecord, devices: Mapping[str, Mapping[str, str]]
              ) -> list[tuple[str, str]]:
        """The availability keys of the networks the instance's NICs use."""
        return [(KIND, key(inst.project, conf["network"])) for conf in devices.values()
                if conf.get("type") == "nic" and "network" in conf]


# ---------------------------------------------------------------------- CRUD
class NetworkAdmin:
    """Create, change, rename and delete managed networks; what uses them; leases.

    Every change is checked before anything is made (keys against the schema, the
    subnet against the other networks'), and undone if a later step fails: a refused
    network leaves no bridge, dnsmasq or nft table behind."""

    def __init__(self, networks: Networks, schema: ConfigSchema) -> None:
        self.networks = networks
        self.schema = schema
        self.store = networks.store
        self.drivers = networks.drivers
        self.bus = networks.bus
        self.availability = networks.availability

    def _check(self, rec: NetworkRecord) -> None:
        if not rec.name or "/" in rec.name or rec.name in (".", ".."):
            raise InvalidArgument(f"Invalid network name {rec.name!r}", network=rec.name)
        self.schema.check(Scope.NETWORK, rec.config, owners=[f"network:{rec.type}"],
                          what=f"a {rec.type} network")

    async def _check_overlap(self, rec: NetworkRecord) -> None:
        mine = _subnet(rec.config.get("ipv4.address"))
        if mine is None:
            return
        for other in await self.store.read(lambda t: t.network_list(None)):
            theirs = _subnet(other.config.get("ipv4.address"))
            if other.name != rec.name and theirs is not None and theirs.overlaps(mine):
                raise InvalidArgument(
                    f"ipv4.address {rec.config['ipv4.address']}: the subnet overlaps "
                    f"network {other.name!r} ({theirs})", network=rec.name)

    async def create(self, project: str, name: str, type: str, config: dict[str, str],
                     description: str = "") -> NetworkRecord:
        if type not in self.drivers.all("network"):
            known = ", ".join(sorted(self.drivers.all("network")))
            raise InvalidArgument(f"Unknown network type {type!r} (known: {known})",
                                  network=name)
        rec = NetworkRecord(name, type, dict(config), description, project)
        self._check(rec)
        if await self.store.read(lambda t: _exists(t, project, name)):
            raise AlreadyExists(f"Network {name!r} already exists", network=name)
        await self._check_overlap(rec)
        driver = self.drivers.network(type)
        await self.networks.check_acls(rec, rec.config.get("security.acls"), name)
        rec.config.update(await driver.create(rec))
        await self._check_overlap(rec)
        try:
            await driver.start(rec)
            await self.networks.apply_acls(rec)
            await self.store.write(lambda t: t.network_create(rec))
        except BaseException:
            with trio.CancelScope(shield=True):
                await driver.delete(rec)
            raise
        await self.availability.add(KIND, key(project, name), self.networks._starter(rec),
                                    source(rec))
        self.bus.publish(lifecycle("network-created", source(rec)))
        return rec

    async def used_by(self, project: str, name: str) -> list[str]:
        def scan(t: Tables) -> list[str]:
            out = []
            for inst in t.instance_list(project):
                if any(d.get("type") == "nic" and d.get("network") == name
                       for d in inst.devices.values()):
                    out.append(f"/1.0/instances/{inst.name}")
            for prof in t.profile_list(project):
                if any(d.get("type") == "nic" and d.get("network") == name
                       for d in prof.devices.values()):
                    out.append(f"/1.0/profiles/{prof.name}")
            return out

        return await self.store.read(scan)

    async def delete(self, project: str, name: str) -> None:
        rec = await self.networks.get(project, name)
        users = await self.used_by(project, name)
        if users:
            raise InvalidState(f"Network {name!r} is in use by {', '.join(users)}",
                               network=name, used_by=users)
        await self.drivers.network(rec.type).delete(rec)
        await self.store.write(lambda t: t.network_delete(project, name))
        self.availability.remove(KIND, key(project, name))
        self.bus.publish(lifecycle("network-deleted", source(rec)))

    async def update(self, project: str, name: str, config: dict[str, str],
                     description: str | None = None) -> NetworkRecord:
        old = await self.networks.get(project, name)
        rec = NetworkRecord(old.name, old.type, dict(config),
                            old.description if description is None else description,
                            old.project, old.location)
        self._check(rec)
        await self._check_overlap(rec)
        await self.networks.check_acls(rec, rec.config.get("security.acls"), name)
        driver = self.drivers.network(rec.type)
        if self.availability.is_available(KIND, key(project, name)):
            try:
                await driver.update(rec, old.config)
                await self.networks.apply_acls(rec)
            except BaseException:
                with trio.CancelScope(shield=True):
                    try:
                        await driver.update(old, rec.config)
                    except LxctlError:
                        pass
                raise
        await self.store.write(lambda t: t.network_update(rec))
        await self.availability.add(KIND, key(project, name), self.networks._starter(rec),
                                    source(rec))
        self.bus.publish(lifecycle("network-updated", source(rec)))
        return rec

    async def rename(self, project: str, name: str, new_name: str) -> NetworkRecord:
        rec = await self.networks.get(project, name)
        users = await self.used_by(project, name)
        if users:
            raise InvalidState(f"Network {name!r} is in use by {', '.join(users)}; "
                               "it cannot be renamed", network=name, used_by=users)
        new = NetworkRecord(new_name, rec.type, dict(rec.config), rec.description,
                            rec.project, rec.location)
        self._check(new)
        if await self.store.read(lambda t: _exists(t, project, new_name)):
            raise AlreadyExists(f"Network {new_name!r} already exists", network=new_name)
        driver = self.drivers.network(rec.type)
        await driver.stop(rec)
        try:
            await driver.start(new)
        except BaseException:
            with trio.CancelScope(shield=True):
                await driver.stop(new)
                await driver.start(rec)
            raise
        def swap(t: Tables) -> None:
            t.network_delete(project, name)
            t.network_create(new)

        await self.store.write(swap)
        self.availability.remove(KIND, key(project, name))
        await self.availability.add(KIND, key(project, new_name),
                                    self.networks._starter(new), source(new))
        self.bus.publish(lifecycle("network-renamed", source(new), old_name=name))
        return new

    async def show(self, project: str, name: str) -> dict[str, Any]:
        rec = await self.networks.get(project, name)
        reason = self.availability.reason(KIND, key(project, name))
        return {**rec.to_api(), "status": "Created" if reason is None else "Unavailable",
                "reason": reason or "", "used_by": await self.used_by(project, name)}

    async def leases(self, project: str, name: str) -> list[dict[str, Any]]:
        rec = await self.networks.get(project, name)
        driver = self.drivers.network(rec.type)
        leases = getattr(driver, "leases", None)  # optional: drivers without DHCP lack it
        out: list[dict[str, Any]] = [] if leases is None else await leases(rec)
        return [{**lease, "project": project} for lease in out]

    async def allocations(self, project: str) -> list[dict[str, Any]]:
        out = []
        for rec in await self.store.read(lambda t: t.network_list(project)):
            for field in ("ipv4.address", "ipv6.address"):
                value = rec.config.get(field, "none")
                if value not in ("none", "", "auto"):
                    out.append({"address": value, "used_by": source(rec), "type": "network",
                                "nat": rec.config.get("ipv4.nat", "false") == "true"})
            for lease in await self.leases(project, rec.name):
                if lease["type"] in ("dynamic", "static"):
                    out.append({"address": lease["address"], "hwaddr": lease["hwaddr"],
                                "used_by": lease["hostname"], "type": "instance",
                                "network": rec.name})
        return out

    async def info(self, project: str, name: str) -> dict[str, Any]:
        rec = await self.networks.get(project, name)
        driver = self.drivers.network(rec.type)
        state = await driver.state(rec)
        interface = getattr(driver, "interface", None)
        link = None if interface is None else await interface(rec.name)
        return {"name": rec.name, "type": rec.type, "status": state.status.value,
                "reason": state.reason or self.availability.reason(
                    KIND, key(project, name)) or "", **(link or {})}

    async def interface(self, rec: NetworkRecord, ifname: str) -> dict[str, Any] | None:
        interface = getattr(self.drivers.network(rec.type), "interface", None)
        return None if interface is None else await interface(ifname)


_LINK_NUMBERS = ("mtu", "statistics/rx_bytes", "statistics/tx_bytes",
                 "statistics/rx_packets", "statistics/tx_packets")


def host_link(ifname: str) -> dict[str, int] | None:
    """MTU and counters of a host interface from /sys/class/net (None: it is gone)."""
    base = f"/sys/class/net/{ifname}/"
    out: dict[str, int] = {}
    try:
        for name in _LINK_NUMBERS:
            with open(base + name) as f:
                out[name.rpartition("/")[2]] = int(f.read())
    except (OSError, ValueError):
        return None
    return out


def _exists(t: Tables, project: str, name: str) -> bool:
    try:
        t.network_get(project, name)
    except NotFound:
        return False
    return True


def _subnet(value: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not value or value in ("auto", "none"):
        return None
    try:
        return ipaddress.ip_interface(value).network
    except ValueError:
        return None


# ---------------------------------------------------------------------- link watcher
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100
RTM_NEWLINK, RTM_NEWADDR = 16, 20
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port


def _new_link_or_address(data: bytes) -> bool:
    """Whether a netlink datagram holds an RTM_NEWLINK or RTM_NEWADDR message."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if kind in (RTM_NEWLINK, RTM_NEWADDR):
            return True
        if length < _NLMSGHDR.size:
            break
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return False


async def watch_links(availability: Availability, *,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Hint the retry loop whenever a link or address appears in the daemon's network
    namespace (netlink RTM_NEWLINK/RTM_NEWADDR), so that a network waiting for its
    parent comes up within milliseconds, not at the next retry.

    A bare rtnetlink socket of the standard library, read on the event loop: only the
    message types matter, and the daemon stays free of pyroute2 (~20 MB) until a
    network driver needs it."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                         socket.NETLINK_ROUTE)
    with sock:
        sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        task_status.started()
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:  # ENOBUFS: messages were lost; something changed
                data = b""
            if (not data or _new_link_or_address(data)) and availability.unavailable(KIND):
                availability.hint()
