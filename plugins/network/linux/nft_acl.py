"""Network ACLs on a Linux bridge as an nftables table of the network's own (pure: the
script is built here, unit-tested; the bridge driver loads it with ``nft -f``).

Bridged IPv4/IPv6 traffic passes the ``inet`` hooks (br_netfilter), with conntrack,
so rules are stateful as in OVN; NICs are told apart by their MAC addresses (ingress:
``ether daddr``, egress: ``ether saddr``), each direction of each NIC in a chain of its
own so that an allowed egress still meets the peer's ingress rules. Drop rules come
first, then reject, then allow, then the default action; DHCP and DNS to the bridge
itself are always allowed. Traffic from the host to an instance is not filtered."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from lxctl.public import AclRule, DriverError, NetworkAcl, NetworkRecord, run

ORDER = ("drop", "reject", "allow")
VERDICT = {"drop": "drop", "reject": "reject", "allow": "return"}
L4 = {"icmp4": "icmp", "icmp6": "ipv6-icmp", "tcp": "tcp", "udp": "udp"}


def table(network: str) -> str:
    return "lxctl_acl_" + re.sub(r"[^A-Za-z0-9_]", "_", network)


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _families(rule: AclRule) -> list[tuple[str, list[str], list[str]]]:
    """(ip|ip6, sources, destinations) for each family the rule's addresses need."""
    out = []
    nets = {f: [ipaddress.ip_network(x.strip(), strict=False)
                for x in getattr(rule, f).split(",") if x.strip()]
            for f in ("source", "destination")}
    for version, family in ((4, "ip"), (6, "ip6")):
        src = [str(n) for n in nets["source"] if n.version == version]
        dst = [str(n) for n in nets["destination"] if n.version == version]
        if (nets["source"] and not src) or (nets["destination"] and not dst):
            continue  # the rule names addresses of the other family only
        out.append((family, src, dst))
    if not nets["source"] and not nets["destination"]:
        return [("", [], [])]
    return out


def rule_matches(rule: AclRule) -> list[str]:
    """The nft match of a rule (one per address family it names)."""
    out = []
    for family, src, dst in _families(rule):
        terms = []
        if src:
            terms.append(f"{family} saddr {_set(src)}")
        if dst:
            terms.append(f"{family} daddr {_set(dst)}")
        if rule.protocol:
            terms.append(f"meta l4proto {L4[rule.protocol]}")
        if rule.protocol in ("tcp", "udp"):
            for field, value in (("sport", rule.source_port), ("dport", rule.destination_port)):
                ports = [p.strip() for p in value.split(",") if p.strip()]
                if ports:
                    terms.append(f"{rule.protocol} {field} {_set(ports)}")
        if rule.protocol in ("icmp4", "icmp6"):
            kind = "icmp" if rule.protocol == "icmp4" else "icmpv6"
            if rule.icmp_type:
                terms.append(f"{kind} type {int(rule.icmp_type)}")
            if rule.icmp_code:
                terms.append(f"{kind} code {int(rule.icmp_code)}")
        if not terms:
            terms.append("meta nfproto { ipv4, ipv6 }")
        out.append(" ".join(terms))
    return out


def script(network: str, bridge: str, nics: Mapping[str, Sequence[NetworkAcl]],
           default_ingress: str = "reject", default_egress: str = "reject") -> str:
    """The whole table (deleted and made again in one ``nft -f``) for ``nics``: MAC
    address -> the ACLs that apply to it. No NIC with ACLs: only the delete."""
    name = table(network)
    head = f"table inet {name}\ndelete table inet {name}\n"
    nics = {mac: acls for mac, acls in nics.items() if acls}
    if not nics:
        return head
    chains: list[str] = []
    forward = ["ct state established,related accept"]
    inputs = ["ct state established,related accept",
              f'iifname "{bridge}" meta l4proto udp udp dport {{ 67, 53 }} accept',
              f'iifname "{bridge}" meta l4proto tcp tcp dport 53 accept']
    for i, (mac, acls) in enumerate(sorted(nics.items())):
        for kind, field, default in (("egress", "saddr", default_egress),
                                     ("ingress", "daddr", default_ingress)):
            chain = f"{kind}_{i}"
            rules = [r for acl in acls for r in getattr(acl, kind) if r.state != "disabled"]
            body = [f"{m} {VERDICT[action]}" for action in ORDER
                    for r in rules if r.action == action for m in rule_matches(r)]
            body.append(f"meta nfproto {{ ipv4, ipv6 }} {VERDICT[default]}")
            chains.append(f"  chain {chain} {{\n" + "".join(f"    {b}\n" for b in body)
                          + "  }\n")
            forward.append(f"ether {field} {mac} jump {chain}")
            if kind == "egress":
                inputs.append(f'iifname "{bridge}" ether saddr {mac} jump {chain}')
    hooks = ("  chain forward {\n    type filter hook forward priority 0; policy accept;\n"
             + "".join(f"    {r}\n" for r in forward) + "  }\n"
             "  chain input {\n    type filter hook input priority 0; policy accept;\n"
             + "".join(f"    {r}\n" for r in inputs) + "  }\n")
    return head + f"table inet {name} {{\n" + "".join(chains) + hooks + "}\n"


# ---------------------------------------------------------------------- the bridge's side
def _nic_file(directory: Path, project: str, instance: str, device: str) -> Path:
    return directory / "acl-nics" / f"{project}_{instance}_{device}"


def remember(directory: Path, project: str, instance: str, device: str, mac: str,
             names: str) -> None:
    """A plugged NIC's MAC and its own ACL names (kept across a daemon restart)."""
    path = _nic_file(directory, project, instance, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{mac} {names}\n")


def forget(directory: Path, project: str, instance: str, device: str) -> None:
    _nic_file(directory, project, instance, device).unlink(missing_ok=True)


def nics(directory: Path) -> dict[str, list[str]]:
    out = {}
    for path in sorted((directory / "acl-nics").glob("*")):
        mac, _, names = path.read_text().strip().partition(" ")
        out[mac] = [n for n in names.split(",") if n]
    return out


async def apply(directory: Path, net: NetworkRecord,
                known: Mapping[str, NetworkAcl]) -> None:
    """Load the network's ACL table (or drop it when no NIC has ACLs)."""
    shared = [n.strip() for n in net.config.get("security.acls", "").split(",") if n.strip()]
    per_mac = {mac: [known[n] for n in dict.fromkeys(shared + own) if n in known]
               for mac, own in (await trio.to_thread.run_sync(nics, directory)).items()}
    text = script(net.name, net.name, per_mac,
                  net.config.get("security.acls.default.ingress.action", "reject"),
                  net.config.get("security.acls.default.egress.action", "reject"))
    out = await run(["nft", "-f", "-"], stdin=text.encode(), check=False)
    if not out.ok:
        raise DriverError(f"network {net.name}: cannot load its ACLs: {out.tail()}")
