"""Profiles: the ``default`` profile, and expanding an instance's config and devices
(its profiles in order, then its own keys)."""

from __future__ import annotations

from typing import Any

from lxctl.errors import NotFound
from lxctl.objects.projects import effective_project
from lxctl.state.records import InstanceRecord, ProfileRecord
from lxctl.state.store import StateStore


class Profiles:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def ensure_default(self, project: str = "default", pool: str = "default") -> None:
        try:
            await self.store.read(lambda t: t.profile_get(project, "default"))
        except NotFound:
            await self.store.write(lambda t: t.profile_create(ProfileRecord(
                "default", {}, {"root": {"type": "disk", "path": "/", "pool": pool}},
                "Default lxctl profile", project)))

    async def by_name(self, projects: set[str]) -> dict[tuple[str, str], ProfileRecord]:
        """Every profile of these projects, in one read."""
        def read(t: Any) -> dict[tuple[str, str], ProfileRecord]:
            return {(project, p.name): p for project in sorted(projects)  # features.profiles
                    for p in t.profile_list(effective_project(t, project, "profiles"))}

        return await self.store.read(read)

    async def expand(self, rec: InstanceRecord) -> tuple[dict[str, str], dict[str, Any]]:
        return expand(rec, await self.by_name({rec.project}))

    async def check_exist(self, project: str, names: list[str]) -> None:
        known = await self.by_name({project})
        for name in names:
            if (project, name) not in known:
                raise NotFound(f"Profile {name!r} not found", profile=name)


def expand(rec: InstanceRecord, profiles: dict[tuple[str, str], ProfileRecord]
           ) -> tuple[dict[str, str], dict[str, Any]]:
    config: dict[str, str] = {}
    devices: dict[str, Any] = {}
    for name in rec.profiles:
        profile = profiles.get((rec.project, name))
        if profile is not None:
            config.update(profile.config)
            devices.update(profile.devices)
    config.update(rec.config)
    devices.update(rec.devices)
    return config, devices
