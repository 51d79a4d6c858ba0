"""``network_acl.*``: network ACLs of a project and their rules (Incus's
``network acl``); applied through ``security.acls`` on networks and NICs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxctl.api.context import app_of, project_name
from lxctl.objects.network_acls import NetworkAcls
from lxctl.rpc import Method

if TYPE_CHECKING:
    from lxctl.server import CallContext

NOUN = "network_acl"


def _acls(ctx: CallContext) -> NetworkAcls:
    return NetworkAcls(app_of(ctx).networks)


async def network_acl_list(ctx: CallContext, *, project: str = "default"
                           ) -> list[dict[str, Any]]:
    """The project's network ACLs, with their rules and what uses them."""
    acls = _acls(ctx)
    p = project_name(project)
    return [await acls.show(p, rec.name) for rec in await acls.all(p)]


async def network_acl_get(ctx: CallContext, name: str, *, project: str = "default"
                          ) -> dict[str, Any]:
    """One network ACL: description, ingress and egress rules, config, used_by."""
    return await _acls(ctx).show(project_name(project), name)


async def network_acl_create(ctx: CallContext, name: str, description: str = "",
                             ingress: list[dict[str, str]] | None = None,
                             egress: list[dict[str, str]] | None = None,
                             config: dict[str, str] | None = None, *,
                             project: str = "default") -> dict[str, Any]:
    """A new network ACL (its rules checked first: nothing is stored if one is bad)."""
    rec = await _acls(ctx).create(project_name(project), name, description=description,
                                  ingress=ingress, egress=egress, config=config)
    return rec.to_api()


async def network_acl_update(ctx: CallContext, name: str, description: str | None = None,
                             ingress: list[dict[str, str]] | None = None,
                             egress: list[dict[str, str]] | None = None,
                             config: dict[str, str] | None = None, *,
                             project: str = "default") -> dict[str, Any]:
    """Replace the parts given (as ``edit``), applied at once where the ACL is used."""
    rec = await _acls(ctx).update(project_name(project), name, description=description,
                                  ingress=ingress, egress=egress, config=config)
    return rec.to_api()


async def network_acl_rule_add(ctx: CallContext, name: str, direction: str,
                               rule: dict[str, str], *, project: str = "default"
                               ) -> dict[str, Any]:
    """Add an ingress or egress rule (action, protocol, source, destination, ports)."""
    rec = await _acls(ctx).rule_add(project_name(project), name, direction, rule)
    return rec.to_api()


async def network_acl_rule_remove(ctx: CallContext, name: str, direction: str,
                                  rule: dict[str, str] | None = None, force: bool = False,
                                  *, project: str = "default") -> dict[str, Any]:
    """Remove the rule matching the keys given (several only with ``force``)."""
    rec = await _acls(ctx).rule_remove(project_name(project), name, direction,
                                       rule or {}, force)
    return rec.to_api()


async def network_acl_delete(ctx: CallContext, name: str, *, project: str = "default"
                             ) -> None:
    """Delete a network ACL; refused while a network, instance or profile uses it."""
    await _acls(ctx).delete(project_name(project), name)


METHODS: dict[str, Method] = {
    "network_acl.list": network_acl_list,
    "network_acl.get": network_acl_get,
    "network_acl.create": network_acl_create,
    "network_acl.update": network_acl_update,
    "network_acl.rule_add": network_acl_rule_add,
    "network_acl.rule_remove": network_acl_rule_remove,
    "network_acl.delete": network_acl_delete,
}
