"""Projects: the ``default`` project always exists (the schema creates it); objects of
other projects are kept apart by the (project, name) keys of every table.

A project keeps its own images, profiles, storage volumes or networks only where its
``features.<name>`` is true; otherwise it uses the default project's
(:func:`effective_project`). Its ``limits.instances`` (and ``limits.containers``,
``limits.virtual-machines``) are checked in the transaction that reserves a new
instance (:func:`check_instance_limits`), so two creates cannot both pass the last
free place.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from lxctl.config.project import CREATE_DEFAULTS, FEATURES
from lxctl.config.schema import ConfigSchema, Scope
from lxctl.config.units import is_true
from lxctl.errors import InvalidArgument, InvalidState
from lxctl.kernel.events import EventBus, lifecycle
from lxctl.state.records import DEFAULT_PROJECT, ProfileRecord, ProjectRecord
from lxctl.state.store import StateStore, Tables

_FORBIDDEN = {"_": "underscores", "/": "slashes", "'": "quotes", '"': "quotes"}
_LIMITS = (("limits.instances", None, "instances"),
           ("limits.containers", "container", "containers"),
           ("limits.virtual-machines", "virtual-machine", "virtual machines"))
_USAGE_NAMES = {"instances": "instances", "images": "images", "profiles": "profiles",
                "networks": "networks", "volumes": "storage volumes"}


def check_project_name(name: object) -> str:
    """Incus's rules: not empty, no ``_`` (instance keys are ``<project>_<name>``), no
    ``/``, blanks or quotes, not ``.``, ``..`` or ``*``; here also at most 63
    characters and no ``:`` (the remote separator)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument("Invalid project name: no name provided", name=name)
    for char, what in _FORBIDDEN.items():
        if char in name:
            raise InvalidArgument(
                f"Invalid project name {name!r}: project names may not contain {what}",
                name=name)
    if any(c.isspace() for c in name):
        raise InvalidArgument(
            f"Invalid project name {name!r}: project names may not contain spaces", name=name)
    if ":" in name or name in (".", "..", "*") or len(name) > 63:
        raise InvalidArgument(f"Invalid project name {name!r}: must be 1-63 characters, "
                              "not '.', '..' or '*', without ':'", name=name)
    return name


def effective_project(t: Tables, project: str, feature: str) -> str:
    """The project whose ``feature`` objects (images, profiles, storage.volumes,
    networks) ``project`` uses: itself if ``features.<feature>`` is true, else the
    default project. NotFound if the project does not exist."""
    if feature not in FEATURES:
        raise ValueError(f"unknown project feature {feature!r}")
    if project == DEFAULT_PROJECT:
        return project
    config = t.project_get(project).config
    return project if is_true(config.get(f"features.{feature}")) else DEFAULT_PROJECT


def check_instance_limits(t: Tables, project: str, instance_type: str) -> None:
    """Refuse one instance more than the project's limits allow (InvalidState). Call it
    in the transaction that creates the instance's row, before that row."""
    config = t.project_get(project).config
    for key, of_type, what in _LIMITS:
        limit = config.get(key)
        if limit is None or of_type not in (None, instance_type):
            continue
        if t.project_instance_count(project, of_type) >= int(limit):
            raise InvalidState(f"Reached maximum number of {what} in project {project!r} "
                               f"({key}={limit})", project=project, key=key)


def _contents(usage: Mapping[str, list[str]], *, default_profile: bool = False
              ) -> dict[str, list[str]]:
    """What a project holds besides its own ``default`` profile (unless
    ``default_profile``) and its instances' own volumes (named with the instances)."""
    instances = set(usage.get("instances", []))
    rest = {k: v for k, v in usage.items() if k not in ("profiles", "volumes")}
    volumes = [v for v in usage.get("volumes", [])
               if not (v.split("/", 1)[1].partition("/")[0] in ("container", "virtual-machine")
                       and v.rsplit("/", 1)[1] in instances)]
    if volumes:
        rest["volumes"] = volumes
    profiles = [p for p in usage.get("profiles", []) if default_profile or p != "default"]
    return {**rest, "profiles": profiles} if profiles else rest


def _describe(usage: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{_USAGE_NAMES[k]}: {', '.join(v)}" for k, v in usage.items())


def used_by(name: str, usage: Mapping[str, list[str]]) -> list[str]:
    """Incus's ``used_by``: the API paths of what the project holds (its instances'
    own volumes come with the instances)."""
    suffix = "" if name == DEFAULT_PROJECT else f"?project={name}"
    paths = {"instances": "/1.0/instances/{}", "images": "/1.0/images/{}",
             "profiles": "/1.0/profiles/{}", "networks": "/1.0/networks/{}",
             "volumes": "/1.0/storage-pools/{}"}
    out = []
    for kind, names in _contents(usage, default_profile=True).items():
        for item in names:
            if kind == "volumes":
                pool, _, rest = item.partition("/")
                out.append(f"/1.0/storage-pools/{pool}/volumes/{rest}{suffix}")
            else:
                out.append(paths[kind].format(item) + suffix)
    return out


class Projects:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def get(self, name: str) -> ProjectRecord:
        return await self.store.read(lambda t: t.project_get(name))

    async def list(self) -> list[ProjectRecord]:
        return await self.store.read(lambda t: t.project_list())

    async def describe(self, recs: builtins.list[ProjectRecord]
                       ) -> builtins.list[dict[str, Any]]:
        """The API objects, with ``used_by``, in one read."""
        usage = await self.store.read(lambda t: [t.project_usage(r.name) for r in recs])
        return [{**r.to_api(), "used_by": used_by(r.name, u)}
                for r, u in zip(recs, usage, strict=True)]

    async def create(self, name: str, config: dict[str, str], description: str, *,
                     schema: ConfigSchema, bus: EventBus) -> ProjectRecord:
        """A new project, with its own (device-less) ``default`` profile unless
        ``features.profiles`` is false. The features Incus pre-sets are true unless
        given."""
        check_project_name(name)
        schema.check(Scope.PROJECT, config, what=f"project {name!r}")
        rec = ProjectRecord(name, {**CREATE_DEFAULTS, **config}, description)

        def create(t: Tables) -> None:
            t.project_create(rec)
            if is_true(rec.config.get("features.profiles")):
                t.profile_create(_default_profile(name))

        await self.store.write(create)
        bus.publish(lifecycle("project-created", f"/1.0/projects/{name}"))
        return rec

    async def update(self, name: str, config: dict[str, str] | None,
                     description: str | None, *, schema: ConfigSchema,
                     bus: EventBus) -> ProjectRecord:
        """Replace the config (when given) and the description (when given). A
        ``features.*`` key changes only on an empty project other than ``default``;
        turning ``features.profiles`` on gives the project its ``default`` profile, off
        leaves it unused. A limit below what the project holds now is refused."""
        if config is not None:
            schema.check(Scope.PROJECT, config, what=f"project {name!r}")

        def update(t: Tables) -> ProjectRecord:
            old = t.project_get(name)
            new = ProjectRecord(name, old.config if config is None else dict(config),
                                old.description if description is None else description)
            on = name == DEFAULT_PROJECT  # the default project has every feature
            changed = sorted(k for k in {*old.config, *new.config} if k.startswith("features.")
                             and (on or is_true(old.config.get(k)))
                             != ((on and k not in new.config) or is_true(new.config.get(k))))
            if changed:
                if name == DEFAULT_PROJECT:
                    raise InvalidArgument("The features of the default project cannot be "
                                          f"changed ({', '.join(changed)})", project=name)
                contents = _contents(t.project_usage(name))
                if contents:
                    raise InvalidState(
                        f"Features can only be changed on empty projects ({', '.join(changed)}"
                        f"): project {name!r} holds {_describe(contents)}", project=name)
            for key, of_type, what in _LIMITS:
                limit = new.config.get(key)
                if limit is not None and t.project_instance_count(name, of_type) > int(limit):
                    raise InvalidState(f"Cannot set {key}={limit}: project {name!r} has more "
                                       f"{what} than that", project=name, key=key)
            t.project_update(new)
            if is_true(new.config.get("features.profiles")) and not any(
                    p.name == "default" for p in t.profile_list(name)):
                t.profile_create(_default_profile(name))
            # turned off, the project's own default profile stays, unused, until the
            # project is deleted (profiles are then looked up in the default project)
            return new

        rec = await self.store.write(update)
        bus.publish(lifecycle("project-updated", f"/1.0/projects/{name}"))
        return rec

    async def delete(self, name: str, *, bus: EventBus) -> None:
        """Delete an empty project (its own ``default`` profile goes with it); the
        ``default`` project cannot be deleted."""
        if name == DEFAULT_PROJECT:
            raise InvalidArgument("The 'default' project cannot be deleted", project=name)

        def delete(t: Tables) -> None:
            t.project_get(name)
            contents = _contents(t.project_usage(name))
            if contents:
                raise InvalidState(f"Project {name!r} is not empty: it holds "
                                   f"{_describe(contents)}", project=name)
            t.project_delete(name)

        await self.store.write(delete)
        bus.publish(lifecycle("project-deleted", f"/1.0/projects/{name}"))


    async def rename(self, name: str, new_name: str, *, bus: EventBus) -> None:
        """Rename an empty project (its own ``default`` profile moves with it), as
        Incus allows; never the ``default`` project."""
        if name == DEFAULT_PROJECT:
            raise InvalidArgument("The 'default' project cannot be renamed", project=name)
        check_project_name(new_name)

        def rename(t: Tables) -> None:
            t.project_get(name)
            contents = _contents(t.project_usage(name))
            if contents:
                raise InvalidState(f"Only empty projects can be renamed: project {name!r} "
                                   f"holds {_describe(contents)}", project=name)
            t.project_rename(name, new_name)  # AlreadyExists

        await self.store.write(rename)
        bus.publish(lifecycle("project-renamed", f"/1.0/projects/{new_name}",
                              old_name=name))


def _default_profile(project: str) -> ProfileRecord:
    return ProfileRecord("default", {}, {}, f"Default lxctl profile for project {project}",
                         project)
