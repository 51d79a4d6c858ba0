"""Network ACLs: ``lxctl network acl list|show|create|delete|edit`` and
``lxctl network acl rule add|remove NAME ingress|egress KEY=VALUE...`` (Incus's
grammar: action=allow|drop|reject, protocol, source, destination, source_port,
destination_port, icmp_type, icmp_code, state, description)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl network acl", description="Manage network ACLs")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        sub.add_parser(verb).add_argument("-f", "--format", default="table")
    for verb in ("show", "edit"):
        sub.add_parser(verb).add_argument("name")
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    create.add_argument("--description", default="")
    for verb in ("delete", "rm"):
        sub.add_parser(verb).add_argument("names", nargs="+", metavar="NAME")
    rule = sub.add_parser("rule").add_subparsers(dest="rule_verb", required=True)
    for verb in ("add", "remove"):
        r = rule.add_parser(verb)
        r.add_argument("name")
        r.add_argument("direction", choices=("ingress", "egress"))
        r.add_argument("pairs", nargs="+" if verb == "add" else "*", metavar="KEY=VALUE")
        if verb == "remove":
            r.add_argument("-f", "--force", action="store_true")
    return p


def _rule_text(rule: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in rule.items() if k != "state" or v != "enabled")


def network_acl(args: list[str]) -> int:
    opts = _parser().parse_args(args)
    verb = opts.verb
    client = connect()
    if verb in ("list", "ls"):
        check_format(opts.format)
        acls = client.call("network_acl.list")
        rows = [[a["name"], a["description"], str(len(a["ingress"])),
                 str(len(a["egress"])), str(len(a["used_by"]))] for a in acls]
        write(render_rows(opts.format, ["NAME", "DESCRIPTION", "INGRESS", "EGRESS",
                                        "USED BY"], rows, acls))
    elif verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("network_acl.get", {"name": opts.name}),
                             sort_keys=False))
    elif verb == "create":
        client.call("network_acl.create", {"name": opts.name, "description": opts.description,
                                           "config": key_values(opts.pairs)})
        write(f"Network ACL {opts.name} created\n")
    elif verb in ("delete", "rm"):
        for name in opts.names:
            client.call("network_acl.delete", {"name": name})
            write(f"Network ACL {name} deleted\n")
    elif verb == "edit":
        from lxctl.cli.editor import edit_yaml

        acl = client.call("network_acl.get", {"name": opts.name})
        shown = {k: acl[k] for k in ("name", "description", "ingress", "egress", "config")}

        def apply(data: dict[str, Any]) -> None:
            client.call("network_acl.update", {
                "name": opts.name, "description": data.get("description", ""),
                "ingress": data.get("ingress") or [], "egress": data.get("egress") or [],
                "config": data.get("config") or {}})

        return edit_yaml(f"network ACL {opts.name}", shown, apply)
    elif verb == "rule":
        rule = key_values(opts.pairs)
        if opts.rule_verb == "add":
            client.call("network_acl.rule_add", {"name": opts.name,
                                                 "direction": opts.direction, "rule": rule})
        else:
            client.call("network_acl.rule_remove", {
                "name": opts.name, "direction": opts.direction, "rule": rule,
                "force": opts.force})
    return 0
