"""What ``list`` and ``info`` show: records, expanded config, live state."""

from __future__ import annotations

from typing import Any

from lxctl.objects.instances.base import STATUS_CODES, InstanceBase, InstanceRecord
from lxctl.objects.profiles import expand
from lxctl.state.records import SnapshotRecord
from lxctl.state.store import Tables


class View(InstanceBase):
    async def describe(self, recs: list[InstanceRecord], *, full: bool) -> list[dict[str, Any]]:
        states = await self.states(recs, full=full)
        projects = {rec.project for rec in recs}
        profiles = await self.profiles.by_name(projects)
        snapshots = await self._snapshots(projects) if recs else {}
        out = []
        for rec in recs:
            state = states[rec.key]
            status = self.transient.shown(rec.key, state.status)
            config, devices = expand(rec, profiles)
            item = rec.to_api()
            code = STATUS_CODES.get(status, 112)
            item.update(status=status, status_code=code, expanded_config=config,
                        expanded_devices=devices)
            item["state"] = {
                "status": status, "status_code": code, "pid": state.pid,
                "processes": state.processes, "memory": state.memory, "cpu": state.cpu,
                "network": state.network,
            }
            if full and state.network is not None:  # NICs on managed networks
                for iface, nic in self.networks.nic_state(rec).items():
                    item["state"]["network"].setdefault(iface, {"addresses": []}).update(nic)
            item["snapshots"] = [s.summary() for s in snapshots.get(rec.key, ())]
            out.append(item)
        return out

    async def _snapshots(self, projects: set[str]
                         ) -> dict[tuple[str, str], list[SnapshotRecord]]:
        """Every snapshot of these projects' instances, in one read."""
        def read(t: Tables) -> list[SnapshotRecord]:
            if len(projects) == 1:
                return t.snapshot_list(next(iter(projects)))
            return [s for s in t.snapshot_list(None) if s.project in projects]

        out: dict[tuple[str, str], list[SnapshotRecord]] = {}
        for snap in await self.store.read(read):
            out.setdefault((snap.project, snap.instance), []).append(snap)
        return out
