"""Deleting an instance, step by step: the hypervisor's part, then the root volume,
then the records (instance and volume, in one transaction). A step that fails stops
there and keeps the rest, so nothing leaks and ``delete`` can be run again."""

from __future__ import annotations

from lxctl.config.units import is_true
from lxctl.errors import InvalidState
from lxctl.kernel.lifecycle import check_transition
from lxctl.kernel.operations import Operation
from lxctl.kernel.shield import shielded
from lxctl.objects.instances.base import InstanceBase, InstanceRecord
from lxctl.state.store import Tables


class Delete(InstanceBase):
    async def do_delete(self, rec: InstanceRecord) -> None:
        with shielded(f"Deleting instance {rec.name}"):
            await self.hypervisor(rec).delete(rec)
            pool, storage, volume = await self.root(rec)
            await storage.delete_volume(pool, volume)

            def forget(t: Tables) -> None:
                t.instance_delete(rec.project, rec.name)
                t.volume_delete(rec.project, pool.name, str(volume.type), volume.name)

            await self.store.write(forget)
        self.event("instance-deleted", rec)

    async def delete(self, project: str, name: str, *, force: bool) -> Operation:
        rec = await self.get(project, name)
        config, devices = await self.profiles.expand(rec)
        if is_true(config.get("security.protection.delete")):
            raise InvalidState("The instance is protected from being deleted "
                               "(security.protection.delete)", instance=name)
        if not force:
            check_transition("delete", name, await self.status(rec))
        await self.root(rec, devices)  # Unavailable now, not mid-way, if its pool is down

        async def work(rec: InstanceRecord, op: Operation) -> None:
            current = (await self.states([rec], full=False))[rec.key].status
            if current != "Stopped":
                await self.do_stop(rec, 0, True)
            await self.do_delete(rec)

        return await self.locked_op(rec, "delete", f"Deleting instance {name}", work,
                                    check=False)
