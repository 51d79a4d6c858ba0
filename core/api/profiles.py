"""``profile.*``: profiles of a project."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "profile"


async def profile_list(ctx: CallContext, *, project: str = "default",
                       all_projects: bool = False) -> list[dict[str, Any]]:
    """Every profile of the project (``all_projects``: of every project that has its
    own), each with ``used_by`` (instance URLs)."""
    return await app_of(ctx).profiles.list(None if all_projects else project_name(project))


async def profile_get(ctx: CallContext, name: str, *, project: str = "default") -> dict[str, Any]:
    """One profile, with the instances that use it."""
    return await app_of(ctx).profiles.get(project_name(project), name)


async def profile_create(
    ctx: CallContext, name: str, config: dict[str, str] | None = None,
    devices: dict[str, dict[str, str]] | None = None, description: str = "", *,
    project: str = "default",
) -> dict[str, Any]:
    """A new profile; its keys and devices are checked as any instance's."""
    rec = await app_of(ctx).profiles.create(project_name(project), name, config or {},
                                            devices or {}, description)
    return rec.to_api()


async def profile_update(
    ctx: CallContext, name: str, config: dict[str, str] | None = None,
    devices: dict[str, dict[str, str]] | None = None, description: str | None = None, *,
    project: str = "default",
) -> dict[str, Any]:
    """Replace what is given (``config``, ``devices``, ``description``), as Incus's PUT;
    refused if an instance using the profile would become invalid, or if a running one
    would need a device change its driver cannot make live. Live keys apply at once."""
    rec = await app_of(ctx).instances.update_profile(
        project_name(project), name, config=config, devices=devices, description=description)
    return rec.to_api()


async def profile_rename(ctx: CallContext, name: str, new_name: str, *,
                         project: str = "default") -> None:
    """Rename, and rename it in the instances that use it (not ``default``)."""
    await app_of(ctx).profiles.rename(project_name(project), name, new_name)


async def profile_copy(ctx: CallContext, name: str, new_name: str, *,
                       project: str = "default") -> dict[str, Any]:
    """A new profile with the config, devices and description of ``name``."""
    return (await app_of(ctx).profiles.copy(project_name(project), name, new_name)).to_api()


async def profile_delete(ctx: CallContext, name: str, *, project: str = "default") -> None:
    """Refused for ``default`` and for a profile an instance uses (naming them)."""
    await app_of(ctx).profiles.delete(project_name(project), name)


METHODS: dict[str, Method] = {
    "profile.list": profile_list,
    "profile.get": profile_get,
    "profile.create": profile_create,
    "profile.update": profile_update,
    "profile.rename": profile_rename,
    "profile.copy": profile_copy,
    "profile.delete": profile_delete,
}
