"""Assigning profiles to an instance (``profile assign/add/remove``): the new list is
checked as a create would check it, then replaces the old one."""

from __future__ import annotations

from dataclasses import replace

from lxctl.errors import InvalidArgument, NotFound
from lxctl.objects.instances.base import InstanceBase, InstanceRecord
from lxctl.objects.profiles import profile_project
from lxctl.state.store import Tables


class ProfileAssignment(InstanceBase):
    async def set_profiles(self, project: str, name: str, profiles: list[str]
                           ) -> InstanceRecord:
        """Every profile must exist; the expanded devices must keep a root disk and be
        ones the instance's hypervisor renders. Applies at the next start."""
        for dup in {p for p in profiles if profiles.count(p) > 1}:
            raise InvalidArgument(f"Profile {dup!r} is listed twice", profile=dup)
        rec = await self.get(project, name)
        async with self.holding(rec, "update"):
            known = await self.profiles.by_name({project})
            for profile in profiles:
                if (project, profile) not in known:
                    raise NotFound(f"Profile {profile!r} not found", profile=profile)
            self.profiles.check_instance(replace(rec, profiles=list(profiles)), known,
                                         self.hypervisor(rec))

            def write(t: Tables) -> InstanceRecord:
                current = t.instance_get(project, name)
                scope = profile_project(t, project)
                for profile in profiles:  # none deleted since the check
                    t.profile_get(scope, profile)
                current.profiles = list(profiles)
                t.instance_update(current)
                return current

            updated = await self.store.write(write)
        self.event("instance-updated", updated)
        return updated
