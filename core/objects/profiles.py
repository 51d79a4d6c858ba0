"""Profiles: the ``default`` profile, creating, changing, renaming, copying and deleting
profiles, and expanding an instance's config and devices (its profiles in order, then
its own keys).

A profile's config keys are checked against the instance schema with the keys of every
driver allowed (any instance may use it), its devices with the device rules. A change
to a profile in use must leave every instance that uses it valid (a root disk, devices
its hypervisor renders); renaming one renames it in those instances, in the same
transaction. The ``default`` profile can be neither deleted nor renamed.

A project without ``features.profiles`` uses the default project's profiles (as in
Incus): ``profile.*`` calls in it act on those, and their ``used_by`` and the in-use
check count the instances of every project that shares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lxctl.config.schema import ConfigSchema, Scope
from lxctl.drivers.hypervisor import HypervisorDriver
from lxctl.drivers.registry import Drivers
from lxctl.errors import InvalidArgument, InvalidState, NotFound, PluginError
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.objects import devices as device_rules
from lxctl.objects.names import check_profile_name
from lxctl.objects.projects import effective_project
from lxctl.state.records import InstanceRecord, ProfileRecord
from lxctl.state.store import StateStore, Tables

DEFAULT = "default"
Known = dict[tuple[str, str], ProfileRecord]
Users = tuple[ProfileRecord, list[InstanceRecord], dict[str, ProfileRecord]]


def source(project: str, name: str) -> str:
    path = f"/1.0/profiles/{name}"
    return path if project == "default" else f"{path}?project={project}"


def instance_url(rec: InstanceRecord) -> str:
    path = f"/1.0/instances/{rec.name}"
    return path if rec.project == "default" else f"{path}?project={rec.project}"


def profile_project(t: Tables, project: str) -> str:
    """The project whose profiles ``project`` uses (``features.profiles``); a project
    that does not exist is itself (it has no profiles, and creating one is refused)."""
    try:
        return effective_project(t, project, "profiles")
    except NotFound:
        return project


def _users(t: Tables, scope: str, name: str) -> list[InstanceRecord]:
    """The instances, in every project whose profiles are ``scope``'s, that use it."""
    projects = [p.name for p in t.project_list() if profile_project(t, p.name) == scope]
    return [i for project in projects for i in t.profile_used_by(project, name)]


class Profiles:
    def __init__(self, store: StateStore, schema: ConfigSchema, bus: EventBus,
                 drivers: Drivers) -> None:
        self.store = store
        self.schema = schema
        self.bus = bus
        self.drivers = drivers

    async def ensure_default(self, project: str = "default", pool: str = "default") -> None:
        try:
            await self.store.read(lambda t: t.profile_get(project, DEFAULT))
        except NotFound:
            await self.store.write(lambda t: t.profile_create(ProfileRecord(
                DEFAULT, {}, {"root": {"type": "disk", "path": "/", "pool": pool}},
                "Default lxctl profile", project)))

    # ------------------------------------------------------------------ queries
    async def by_name(self, projects: set[str]) -> Known:
        """Every profile of these projects, in one read."""
        def read(t: Tables) -> Known:
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

    async def list(self, project: str | None) -> list[dict[str, Any]]:
        """Every profile of the project (None: of every project that has its own) with
        ``used_by`` (instance URLs), in one read."""
        def read(t: Tables) -> tuple[list[ProfileRecord], list[tuple[str, InstanceRecord]]]:
            scopes = {p.name: profile_project(t, p.name) for p in t.project_list()}
            wanted = set(scopes.values()) if project is None else {profile_project(t, project)}
            return ([r for scope in sorted(wanted) for r in t.profile_list(scope)],
                    [(scope, i) for p, scope in scopes.items() if scope in wanted
                     for i in t.instance_list(p)])

        profiles, instances = await self.store.read(read)
        return [{**p.to_api(), "used_by": [instance_url(i) for scope, i in instances
                                           if scope == p.project and p.name in i.profiles]}
                for p in profiles]

    async def get(self, project: str, name: str) -> dict[str, Any]:
        def read(t: Tables) -> tuple[ProfileRecord, list[InstanceRecord]]:
            scope = profile_project(t, project)
            return t.profile_get(scope, name), _users(t, scope, name)

        rec, users = await self.store.read(read)
        return {**rec.to_api(), "used_by": [instance_url(i) for i in users]}

    async def users(self, project: str, name: str) -> Users:
        """The profile, the instances that use it, and every profile they may name."""
        def read(t: Tables) -> Users:
            scope = profile_project(t, project)
            return (t.profile_get(scope, name), _users(t, scope, name),
                    {p.name: p for p in t.profile_list(scope)})

        return await self.store.read(read)

    # ------------------------------------------------------------------ checks
    def check_content(self, config: Mapping[str, Any], devices: Mapping[str, Any]) -> None:
        """A profile's own keys and devices, without I/O."""
        self.schema.check(Scope.INSTANCE, config, owners=None, what="a profile")
        device_rules.check(devices)

    def check_instance(self, rec: InstanceRecord, known: Known,
                       hypervisor: HypervisorDriver | None) -> None:
        """``rec`` with the profiles as ``known`` has them: a root disk, valid devices,
        only devices and driver keys its hypervisor (when given) supports."""
        from lxctl.objects.instances.create import check_device_support  # imports us

        _, devices = expand(rec, known)
        if device_rules.root_disk(devices) is None:
            raise InvalidArgument(f"Instance {rec.name!r} would have no root disk device",
                                  instance=rec.name)
        device_rules.check(devices)
        if hypervisor is not None:
            check_device_support(hypervisor, devices)
            from_profiles = expand(replace(rec, config={}, devices={}), known)[0]
            self.schema.check(Scope.INSTANCE, from_profiles,
                              owners=[f"hypervisor:{hypervisor.info.name}"],
                              what=f"instance {rec.name!r} ({rec.type})")

    def _hypervisor(self, rec: InstanceRecord) -> HypervisorDriver | None:
        try:
            return self.drivers.hypervisor_for(rec.type)
        except PluginError:  # its driver is not loaded: nothing to check against
            return None

    @staticmethod
    def _check_pools(t: Tables, devices: Mapping[str, Any]) -> None:
        for conf in devices.values():
            if conf.get("type") == "disk" and "pool" in conf:
                t.pool_get(conf["pool"])  # NotFound naming the pool

    def _publish(self, action: str, project: str, name: str, **context: Any) -> None:
        self.bus.publish(lifecycle(action, source(project, name), project=project,
                                   **context))

    # ------------------------------------------------------------------ changes
    async def create(self, project: str, name: str, config: dict[str, str],
                     devices: dict[str, dict[str, str]], description: str = ""
                     ) -> ProfileRecord:
        check_profile_name(name)
        self.check_content(config, devices)

        def write(t: Tables) -> ProfileRecord:
            rec = ProfileRecord(name, dict(config), dict(devices), description,
                                profile_project(t, project))
            self._check_pools(t, rec.devices)
            t.profile_create(rec)  # AlreadyExists if the name is taken
            return rec

        rec = await self.store.write(write)
        self._publish("profile-created", rec.project, name)
        return rec

    async def update(self, project: str, name: str, *, config: dict[str, str] | None = None,
                     devices: dict[str, dict[str, str]] | None = None,
                     description: str | None = None) -> ProfileRecord:
        """Replace what is given (Incus's PUT); every instance using the profile must
        stay valid with the new content, else nothing changes."""
        self.check_content(config or {}, devices or {})

        def write(t: Tables) -> ProfileRecord:
            old = t.profile_get(profile_project(t, project), name)
            new = replace(old, config=old.config if config is None else dict(config),
                          devices=old.devices if devices is None else dict(devices),
                          description=old.description if description is None
                          else description)
            self._check_pools(t, new.devices)
            users = _users(t, old.project, name)
            if users:
                profiles = {p.name: p for p in t.profile_list(old.project)}
                profiles[name] = new
                known = {(i.project, p.name): p for i in users for p in profiles.values()}
                for inst in users:
                    self.check_instance(inst, known, self._hypervisor(inst))
            t.profile_update(new)
            return new

        rec = await self.store.write(write)
        self._publish("profile-updated", rec.project, name)
        return rec

    async def rename(self, project: str, name: str, new_name: str) -> None:
        """Rename the profile and, in the same transaction, every instance's mention."""
        if name == DEFAULT:
            raise InvalidArgument("The 'default' profile cannot be renamed", profile=name)
        check_profile_name(new_name)

        def write(t: Tables) -> str:
            scope = profile_project(t, project)
            users = _users(t, scope, name)
            t.profile_rename(scope, name, new_name)  # NotFound, AlreadyExists
            for inst in users:
                inst.profiles = [new_name if p == name else p for p in inst.profiles]
                t.instance_update(inst)
            return scope

        scope = await self.store.write(write)
        self._publish("profile-renamed", scope, new_name, old_name=name)

    async def copy(self, project: str, name: str, new_name: str) -> ProfileRecord:
        check_profile_name(new_name)

        def write(t: Tables) -> ProfileRecord:
            rec = replace(t.profile_get(profile_project(t, project), name), name=new_name)
            t.profile_create(rec)
            return rec

        rec = await self.store.write(write)
        self._publish("profile-created", rec.project, new_name)
        return rec

    async def delete(self, project: str, name: str) -> None:
        if name == DEFAULT:
            raise InvalidArgument("The 'default' profile cannot be deleted", profile=name)

        def write(t: Tables) -> str:
            scope = profile_project(t, project)
            t.profile_get(scope, name)  # NotFound
            users = _users(t, scope, name)
            if users:
                names = ", ".join(i.name if i.project == scope else f"{i.name} (project "
                                  f"{i.project})" for i in users)
                raise InvalidState(f"Profile {name!r} is currently in use by instance(s) "
                                   f"{names}", profile=name, used_by=[i.name for i in users])
            t.profile_delete(scope, name)
            return scope

        scope = await self.store.write(write)
        self._publish("profile-deleted", scope, name)


def expand(rec: InstanceRecord, profiles: Known) -> tuple[dict[str, str], dict[str, Any]]:
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
