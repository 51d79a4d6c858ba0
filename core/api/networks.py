"""``network.*``: managed networks of a project, with their state, leases and NICs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.errors import InvalidArgument, NotFound
from lxctl.objects.networks import KIND, NetworkAdmin, key
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "network"


def _admin(ctx: CallContext) -> NetworkAdmin:
    app = app_of(ctx)
    return NetworkAdmin(app.networks, app.schema)


async def network_list(ctx: CallContext, *, project: str = "default") -> list[dict[str, Any]]:
    """Networks with ``status`` (Created or Unavailable, with the ``reason``)."""
    app = app_of(ctx)
    p = project_name(project)
    admin = _admin(ctx)
    out = []
    for rec in await app.store.read(lambda t: t.network_list(p)):
        reason = app.availability.reason(KIND, key(rec.project, rec.name))
        out.append(
            {
                **rec.to_api(),
                "status": "Created" if reason is None else "Unavailable",
                "reason": reason or "",
                "used_by": await admin.used_by(rec.project, rec.name),
            }
        )
    return out


async def network_get(ctx: CallContext, name: str, *, project: str = "default"
                      ) -> dict[str, Any]:
    """One network: its config, status (with the reason) and what uses it."""
    return await _admin(ctx).show(project_name(project), name)


async def network_create(ctx: CallContext, name: str, type: str = "bridge",
                         config: dict[str, str] | None = None, description: str = "", *,
                         project: str = "default") -> dict[str, Any]:
    """A new network, brought up at once (refused, with nothing left, if it cannot be)."""
    rec = await _admin(ctx).create(project_name(project), name, type, config or {},
                                   description)
    return rec.to_api()


async def network_update(ctx: CallContext, name: str, config: dict[str, str],
                         description: str | None = None, *, project: str = "default"
                         ) -> dict[str, Any]:
    """Replace the config (as Incus's PUT) and apply it to the network."""
    rec = await _admin(ctx).update(project_name(project), name, config, description)
    return rec.to_api()


async def network_rename(ctx: CallContext, name: str, new_name: str, *,
                         project: str = "default") -> dict[str, Any]:
    """Rename a network nothing uses."""
    return (await _admin(ctx).rename(project_name(project), name, new_name)).to_api()


async def network_delete(ctx: CallContext, name: str, *, project: str = "default") -> None:
    """Tear the network down; refused while an instance or profile uses it."""
    await _admin(ctx).delete(project_name(project), name)


async def network_leases(ctx: CallContext, name: str, *, project: str = "default"
                         ) -> list[dict[str, Any]]:
    """DHCP leases (dynamic and static) and the gateway."""
    return await _admin(ctx).leases(project_name(project), name)


async def network_allocations(ctx: CallContext, *, project: str = "default"
                              ) -> list[dict[str, Any]]:
    """Addresses in use: the networks' own and their instances'."""
    return await _admin(ctx).allocations(project_name(project))


async def network_info(ctx: CallContext, name: str, *, project: str = "default"
                       ) -> dict[str, Any]:
    """Runtime state: status, host interface, MTU, MAC, addresses, counters."""
    return await _admin(ctx).info(project_name(project), name)


async def network_attach(ctx: CallContext, network: str, instance: str,
                         device: str | None = None, name: str | None = None, *,
                         project: str = "default") -> None:
    """Add a NIC on ``network`` to ``instance`` (device named after the network unless
    given; ``name``: the interface inside)."""
    app = app_of(ctx)
    p = project_name(project)
    await app.networks.get(p, network)
    rec = await app.instances.get(p, instance)
    device = device or network
    if device in rec.devices:
        raise InvalidArgument(f"Instance {instance!r} already has a device {device!r}",
                              device=device)
    conf = {"type": "nic", "network": network}
    if name:
        conf["name"] = name
    await app.instances.update(p, instance, devices={**rec.devices, device: conf})


async def network_detach(ctx: CallContext, network: str, instance: str,
                         device: str | None = None, *, project: str = "default") -> None:
    """Remove the NIC(s) on ``network`` from ``instance`` (or only ``device``)."""
    app = app_of(ctx)
    p = project_name(project)
    rec = await app.instances.get(p, instance)
    gone = [d for d, c in rec.devices.items()
            if c.get("type") == "nic" and c.get("network") == network
            and (device is None or d == device)]
    if not gone:
        raise NotFound(f"Instance {instance!r} has no NIC on network {network!r}"
                       + (f" named {device!r}" if device else ""), device=device)
    await app.instances.update(p, instance, devices={
        d: c for d, c in rec.devices.items() if d not in gone})


METHODS: dict[str, Method] = {
    "network.list": network_list,
    "network.get": network_get,
    "network.create": network_create,
    "network.update": network_update,
    "network.rename": network_rename,
    "network.delete": network_delete,
    "network.list_leases": network_leases,
    "network.list_allocations": network_allocations,
    "network.info": network_info,
    "network.attach": network_attach,
    "network.detach": network_detach,
}
