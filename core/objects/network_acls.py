"""Network ACLs (Incus's ``network acl``): named sets of ingress and egress rules,
per project, applied through ``security.acls`` on networks and on NICs.

Every rule is checked before anything is stored (keys, action, protocol, addresses,
ports); an ACL in use cannot be deleted; after each change every network of the
project whose driver renders ACLs (``apply_acls``) gets the project's ACLs again."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from lxctl.drivers.network import AclRule, NetworkAcl
from lxctl.errors import InvalidArgument, InvalidState, LxctlError, NotFound
from lxctl.kernel.events import lifecycle
from lxctl.objects.networks import KIND, Networks, key
from lxctl.state.records import NetworkAclRecord
from lxctl.state.store import StateStore, Tables

DIRECTIONS = ("ingress", "egress")
ACTIONS = ("allow", "drop", "reject")
PROTOCOLS = ("", "icmp4", "icmp6", "tcp", "udp")
RULE_KEYS = ("action", "state", "protocol", "source", "destination", "source_port",
             "destination_port", "icmp_type", "icmp_code", "description")


def source(rec: NetworkAclRecord) -> str:
    return f"/1.0/network-acls/{rec.name}" + ("" if rec.project == "default"
                                              else f"?project={rec.project}")


def acl_names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def check_rule(rule: Mapping[str, str]) -> dict[str, str]:
    """The rule with its defaults, or InvalidArgument naming what is wrong."""
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise InvalidArgument(f"Unknown ACL rule key {unknown[0]!r} (known: "
                              f"{', '.join(RULE_KEYS)})", key=unknown[0])
    out = {k: str(v) for k, v in rule.items() if str(v) != ""}
    out.setdefault("state", "enabled")
    if out.get("action") not in ACTIONS:
        raise InvalidArgument(f"ACL rule action must be one of {', '.join(ACTIONS)}, not "
                              f"{out.get('action', '')!r}", key="action")
    if out["state"] not in ("enabled", "disabled", "logged"):
        raise InvalidArgument("ACL rule state must be enabled, disabled or logged",
                              key="state")
    protocol = out.get("protocol", "")
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"ACL rule protocol must be one of "
                              f"{', '.join(p for p in PROTOCOLS if p)}, not {protocol!r}",
                              key="protocol")
    for field in ("source", "destination"):
        for item in acl_names(out.get(field)):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise InvalidArgument(f"ACL rule {field}: {item!r} is not an IP address "
                                      "or CIDR subnet", key=field) from None
    for field in ("source_port", "destination_port"):
        if field in out and protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"ACL rule {field} needs protocol=tcp or udp", key=field)
        for item in acl_names(out.get(field)):
            bounds = item.split("-")
            if len(bounds) > 2 or not all(b.isdigit() and 0 <= int(b) <= 65535
                                          for b in bounds):
                raise InvalidArgument(f"ACL rule {field}: {item!r} is not a port or a "
                                      "FIRST-LAST range", key=field)
    for field in ("icmp_type", "icmp_code"):
        if field in out and (protocol not in ("icmp4", "icmp6") or not out[field].isdigit()):
            raise InvalidArgument(f"ACL rule {field} needs protocol=icmp4 or icmp6 and a "
                                  "number", key=field)
    return out


def to_driver(rec: NetworkAclRecord) -> NetworkAcl:
    def rules(raw: list[dict[str, str]]) -> tuple[AclRule, ...]:
        return tuple(AclRule(**r) for r in raw)

    return NetworkAcl(rec.name, rec.project, rec.description, rules(rec.ingress),
                      rules(rec.egress))


async def project_acls(store: StateStore, project: str) -> dict[str, NetworkAcl]:
    """The project's ACLs by name, as drivers take them."""
    return {r.name: to_driver(r) for r in await store.read(
        lambda t: t.network_acl_list(project))}


async def check_names(store: StateStore, project: str, value: str | None) -> None:
    """InvalidArgument naming the first ACL of ``value`` that does not exist."""
    names = acl_names(value)
    if not names:
        return
    have = {r.name for r in await store.read(lambda t: t.network_acl_list(project))}
    for n in names:
        if n not in have:
            raise InvalidArgument(f"security.acls: network ACL {n!r} not found", acl=n)


class NetworkAcls:
    def __init__(self, networks: Networks) -> None:
        self.networks = networks
        self.store = networks.store
        self.bus = networks.bus

    async def all(self, project: str) -> list[NetworkAclRecord]:
        return await self.store.read(lambda t: t.network_acl_list(project))

    async def get(self, project: str, name: str) -> NetworkAclRecord:
        return await self.store.read(lambda t: t.network_acl_get(project, name))

    async def show(self, project: str, name: str) -> dict[str, Any]:
        rec = await self.get(project, name)
        return {**rec.to_api(), "used_by": await self.used_by(project, name)}

    async def create(self, project: str, name: str, *, description: str = "",
                     ingress: list[dict[str, str]] | None = None,
                     egress: list[dict[str, str]] | None = None,
                     config: dict[str, str] | None = None) -> NetworkAclRecord:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise InvalidArgument(f"Invalid network ACL name {name!r} (letters, digits, "
                                  "'-', '_', '.')", acl=name)
        rec = NetworkAclRecord(name, [check_rule(r) for r in ingress or []],
                               [check_rule(r) for r in egress or []], dict(config or {}),
                               description, project)
        await self.store.write(lambda t: t.network_acl_create(rec))
        await self.sync(project)  # known to the drivers before a NIC names it
        self.bus.publish(lifecycle("network-acl-created", source(rec), project=project))
        return rec

    async def update(self, project: str, name: str, *, description: str | None = None,
                     ingress: list[dict[str, str]] | None = None,
                     egress: list[dict[str, str]] | None = None,
                     config: dict[str, str] | None = None) -> NetworkAclRecord:
        """Replace the given parts (as ``edit`` does), then apply it where it is used."""
        old = await self.get(project, name)
        rec = NetworkAclRecord(
            name, old.ingress if ingress is None else [check_rule(r) for r in ingress],
            old.egress if egress is None else [check_rule(r) for r in egress],
            old.config if config is None else dict(config),
            old.description if description is None else description, project)
        await self.store.write(lambda t: t.network_acl_update(rec))
        await self.sync(project)
        self.bus.publish(lifecycle("network-acl-updated", source(rec), project=project))
        return rec

    async def rule_add(self, project: str, name: str, direction: str,
                       rule: dict[str, str]) -> NetworkAclRecord:
        rec = await self.get(project, name)
        rules = _rules(rec, direction)
        new = check_rule(rule)
        if new in rules:
            raise InvalidArgument(f"ACL {name!r} already has that {direction} rule",
                                  acl=name)
        return await self._set_rules(project, name, direction, [*rules, new])

    async def rule_remove(self, project: str, name: str, direction: str,
                          match: dict[str, str], force: bool = False) -> NetworkAclRecord:
        """Remove the rules whose keys include ``match``; several only with ``force``."""
        rec = await self.get(project, name)
        rules = _rules(rec, direction)
        gone = [r for r in rules if all(r.get(k, "") == v for k, v in match.items())]
        if not gone:
            raise NotFound(f"No {direction} rule of ACL {name!r} matches", acl=name)
        if len(gone) > 1 and not force:
            raise InvalidArgument(f"{len(gone)} {direction} rules of ACL {name!r} match "
                                  "(give more keys, or --force to remove them all)",
                                  acl=name)
        return await self._set_rules(project, name, direction,
                                     [r for r in rules if r not in gone])

    async def _set_rules(self, project: str, name: str, direction: str,
                         rules: list[dict[str, str]]) -> NetworkAclRecord:
        if direction == "ingress":
            return await self.update(project, name, ingress=rules)
        return await self.update(project, name, egress=rules)

    async def delete(self, project: str, name: str) -> None:
        rec = await self.get(project, name)
        users = await self.used_by(project, name)
        if users:
            raise InvalidState(f"Network ACL {name!r} is in use by {', '.join(users)}",
                               acl=name, used_by=users)
        await self.store.write(lambda t: t.network_acl_delete(project, name))
        self.bus.publish(lifecycle("network-acl-deleted", source(rec), project=project))

    async def used_by(self, project: str, name: str) -> list[str]:
        def scan(t: Tables) -> list[str]:
            out = [f"/1.0/networks/{n.name}" for n in t.network_list(project)
                   if name in acl_names(n.config.get("security.acls"))]
            for kind, objs in (("instances", t.instance_list(project)),
                               ("profiles", t.profile_list(project))):
                out += [f"/1.0/{kind}/{o.name}" for o in objs if any(
                    d.get("type") == "nic" and name in acl_names(d.get("security.acls"))
                    for d in o.devices.values())]
            return out

        return await self.store.read(scan)

    async def sync(self, project: str) -> None:
        """Give every up network of ``project`` that renders ACLs the project's ACLs."""
        acls = await project_acls(self.store, project)
        for net in await self.store.read(lambda t: t.network_list(project)):
            driver = self.networks.drivers.network(net.type)
            apply = getattr(driver, "apply_acls", None)
            if apply is None or not self.networks.availability.is_available(
                    KIND, key(project, net.name)):
                continue
            try:
                await apply(net, acls)
            except LxctlError as exc:
                raise InvalidState(f"Network {net.name!r}: cannot apply its ACLs: {exc}",
                                   network=net.name) from exc


def _rules(rec: NetworkAclRecord, direction: str) -> list[dict[str, str]]:
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"A rule's direction is ingress or egress, not {direction!r}",
                              direction=direction)
    return list(getattr(rec, direction))
