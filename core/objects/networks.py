"""Managed networks as the core sees them: records, their drivers, start-up in tiers,
and NICs plugged through the network driver.

At start, networks come up in dependency tiers (standalone ones, then those with a host
parent, then those on another network); one that fails is Unavailable with the reason
(degraded start, ``kernel/availability``) and retried. No network driver ships yet
(see the networking issue): this is the seam they plug into.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from lxctl.drivers.devices import NicDevice
from lxctl.drivers.registry import Drivers
from lxctl.errors import InvalidArgument, Unavailable
from lxctl.kernel.availability import Availability
from lxctl.kernel.events import EventBus
from lxctl.state.records import InstanceRecord, NetworkRecord
from lxctl.state.store import StateStore

KIND = "network"


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

        return start

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
        nic = await driver.plug(rec, inst, device, config)
        self._plugged.setdefault(inst.key, []).append((rec, nic))
        return nic

    async def unplug_all(self, inst: InstanceRecord) -> None:
        """After the instance stopped: undo every ``plug`` done for it."""
        for rec, nic in self._plugged.pop(inst.key, []):
            await self.drivers.network(rec.type).unplug(rec, inst, nic)

    def needs(self, inst: InstanceRecord, devices: Mapping[str, Mapping[str, str]]
              ) -> list[tuple[str, str]]:
        """The availability keys of the networks the instance's NICs use."""
        return [(KIND, key(inst.project, conf["network"])) for conf in devices.values()
                if conf.get("type") == "nic" and "network" in conf]
