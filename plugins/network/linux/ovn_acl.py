"""Network ACLs as OVN ACLs (pure: no I/O, unit-tested): per logical port, ingress
rules become ``to-lport`` ACLs matching ``outport``, egress rules ``from-lport`` ACLs
matching ``inport``. As in Incus, drop wins over reject, reject over allow, whatever
the order of the rules; IP traffic of a port with ACLs that no rule matches gets the
default action (``security.acls.default.{ingress,egress}.action``). ``allow`` is
stateful (replies pass), ARP and other non-IP traffic is never filtered; rules with
``state=logged`` are logged by ovn-controller under the ACL's name."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lxctl.public import AclRule, ConfigKey, NetworkAcl, Scope

ACTIONS = ("allow", "drop", "reject")


def _check_action(value: str) -> None:
    if value not in ACTIONS:
        raise ValueError(f"{value!r}: the action is one of {', '.join(ACTIONS)}")


ACL_KEYS: tuple[ConfigKey, ...] = (  # the networks' keys (ovn, bridge) for their ACLs
    ConfigKey("security.acls", Scope.NETWORK, live=True,
              doc="Network ACLs applied to every NIC of the network (comma separated)"),
    ConfigKey("security.acls.default.ingress.action", Scope.NETWORK, default="reject",
              validate=_check_action, live=True,
              doc="Action for ingress traffic no ACL rule matches (where ACLs apply)"),
    ConfigKey("security.acls.default.egress.action", Scope.NETWORK, default="reject",
              validate=_check_action, live=True,
              doc="Action for egress traffic no ACL rule matches (where ACLs apply)"),
)
OVN_ACTION = {"allow": "allow-related", "drop": "drop", "reject": "reject"}
PRIORITY = {"drop": 1300, "reject": 1200, "allow": 1100}
DEFAULT_PRIORITY = 1000


def _addresses(field: str, value: str) -> str:
    """``ip4.src == {...}`` (and/or ip6) for comma-separated addresses or CIDRs."""
    v4: list[str] = []
    v6: list[str] = []
    for item in (x.strip() for x in value.split(",") if x.strip()):
        net = ipaddress.ip_network(item, strict=False)
        (v4 if net.version == 4 else v6).append(str(net))
    parts = [f"ip{ver}.{field} == {{{', '.join(nets)}}}"
             for ver, nets in ((4, v4), (6, v6)) if nets]
    return parts[0] if len(parts) == 1 else f"({' || '.join(parts)})"


def _ports(proto: str, field: str, value: str) -> str:
    parts = []
    for item in (x.strip() for x in value.split(",") if x.strip()):
        first, _, last = item.partition("-")
        if last:
            parts.append(f"({proto}.{field} >= {int(first)} && {proto}.{field} <= "
                         f"{int(last)})")
        else:
            parts.append(f"{proto}.{field} == {int(first)}")
    return parts[0] if len(parts) == 1 else f"({' || '.join(parts)})"


def rule_match(rule: AclRule) -> str:
    """The OVN match of a rule, without the port."""
    terms = []
    if rule.protocol:
        terms.append(rule.protocol)
    if rule.source:
        terms.append(_addresses("src", rule.source))
    if rule.destination:
        terms.append(_addresses("dst", rule.destination))
    if rule.protocol in ("tcp", "udp"):
        if rule.source_port:
            terms.append(_ports(rule.protocol, "src", rule.source_port))
        if rule.destination_port:
            terms.append(_ports(rule.protocol, "dst", rule.destination_port))
    if rule.protocol in ("icmp4", "icmp6"):
        if rule.icmp_type:
            terms.append(f"{rule.protocol}.type == {int(rule.icmp_type)}")
        if rule.icmp_code:
            terms.append(f"{rule.protocol}.code == {int(rule.icmp_code)}")
    if not rule.protocol and not rule.source and not rule.destination:
        terms.append("ip")
    return " && ".join(terms)


def render(port: str, acls: Sequence[NetworkAcl], default_ingress: str = "reject",
           default_egress: str = "reject") -> list[tuple[str, int, str, str, str]]:
    """(direction, priority, OVN action, match, log name) for ``port`` under ``acls``;
    the log name (the ACL's, for rules with state=logged) is "" when not logged."""
    if not acls:
        return []
    out: list[tuple[str, int, str, str, str]] = []
    sides = (("to-lport", "outport", "ingress", default_ingress),
             ("from-lport", "inport", "egress", default_egress))
    for direction, field, kind, default in sides:
        where = f'{field} == "{port}"'
        for acl in acls:
            for rule in getattr(acl, kind):
                if rule.state == "disabled":
                    continue
                out.append((direction, PRIORITY[rule.action], OVN_ACTION[rule.action],
                            f"{where} && {rule_match(rule)}",
                            acl.name if rule.state == "logged" else ""))
        out.append((direction, DEFAULT_PRIORITY, OVN_ACTION[default], f"{where} && ip", ""))
    return list(dict.fromkeys(out))
