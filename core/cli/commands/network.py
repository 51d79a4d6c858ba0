"""Networks: ``lxctl network list|show|info|create|delete|rename|set|unset|get|edit``,
``list-leases|list-allocations``, ``attach|detach NETWORK INSTANCE [DEVICE]`` and
``acl ...`` (network ACLs, in ``network_acl``)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values
from lxctl.cli.connection import connect
from lxctl.cli.output import check_format, render_rows, write


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl network", description="Manage networks")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls", "list-allocations"):
        sub.add_parser(verb).add_argument("-f", "--format", default="table")
    leases = sub.add_parser("list-leases")
    leases.add_argument("name")
    leases.add_argument("-f", "--format", default="table")
    for verb in ("show", "info", "edit"):
        sub.add_parser(verb).add_argument("name")
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    create.add_argument("-t", "--type", default="bridge")
    create.add_argument("--description", default="")
    for verb in ("delete", "rm"):
        sub.add_parser(verb).add_argument("names", nargs="+", metavar="NAME")
    for verb in ("rename", "mv"):
        two = sub.add_parser(verb)
        two.add_argument("name")
        two.add_argument("new_name")
    for verb, rest, meta in (("set", "pairs", "KEY=VALUE"), ("unset", "keys", "KEY"),
                             ("get", "keys", "KEY")):
        one = sub.add_parser(verb)
        one.add_argument("name")
        one.add_argument(rest, nargs=1 if verb == "get" else "+", metavar=meta)
    for verb in ("attach", "detach"):
        a = sub.add_parser(verb)
        a.add_argument("network")
        a.add_argument("instance")
        a.add_argument("device", nargs="?")
        if verb == "attach":
            a.add_argument("interface", nargs="?")
    return p


def network(command: str, args: list[str]) -> int:
    if args[:1] == ["acl"]:
        from lxctl.cli.commands.network_acl import network_acl

        return network_acl(args[1:])
    if args[:1] == ["create"]:  # options anywhere: create NAME --type ovn KEY=VALUE
        args = ["create", *_options_first(args[1:])]
    opts = _parser().parse_args(args)
    verb = opts.verb
    pairs = key_values(opts.pairs) if verb in ("create", "set") else {}
    client = connect()
    if verb in ("list", "ls"):
        check_format(opts.format)
        nets = client.call("network.list")
        rows = [[n["name"], n["type"], "YES", n["config"].get("ipv4.address", ""),
                 n["config"].get("ipv6.address", ""), n["description"],
                 str(len(n.get("used_by", []))), n["status"].upper()] for n in nets]
        write(render_rows(opts.format, ["NAME", "TYPE", "MANAGED", "IPV4", "IPV6",
                                        "DESCRIPTION", "USED BY", "STATE"], rows, nets))
    elif verb == "list-leases":
        check_format(opts.format)
        leases = client.call("network.list_leases", {"name": opts.name})
        rows = [[x["hostname"], x["hwaddr"], x["address"], x["type"].upper()]
                for x in leases]
        write(render_rows(opts.format, ["HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"],
                          rows, leases))
    elif verb == "list-allocations":
        check_format(opts.format)
        allocs = client.call("network.list_allocations")
        rows = [[x["used_by"], x["address"], x["type"], x.get("hwaddr", "")]
                for x in allocs]
        write(render_rows(opts.format, ["USED BY", "ADDRESS", "TYPE", "MAC ADDRESS"],
                          rows, allocs))
    elif verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("network.get", {"name": opts.name}),
                             sort_keys=False))
    elif verb == "info":
        info = client.call("network.info", {"name": opts.name})
        write(_info(info))
    elif verb == "create":
        client.call("network.create", {"name": opts.name, "type": opts.type,
                                       "config": pairs, "description": opts.description})
        write(f"Network {opts.name} created\n")
    elif verb in ("delete", "rm"):
        for name in opts.names:
            client.call("network.delete", {"name": name})
            write(f"Network {name} deleted\n")
    elif verb in ("rename", "mv"):
        client.call("network.rename", {"name": opts.name, "new_name": opts.new_name})
        write(f"Network {opts.name} renamed to {opts.new_name}\n")
    elif verb in ("set", "unset"):
        net = client.call("network.get", {"name": opts.name})
        config = dict(net["config"])
        if verb == "set":
            config.update(pairs)
        else:
            for k in opts.keys:
                config.pop(k, None)
        client.call("network.update", {"name": opts.name, "config": config})
    elif verb == "get":
        net = client.call("network.get", {"name": opts.name})
        write(f"{net['config'].get(opts.keys[0], '')}\n")
    elif verb == "edit":
        from lxctl.cli.editor import edit_yaml

        net = client.call("network.get", {"name": opts.name})
        shown = {"name": net["name"], "type": net["type"],
                 "description": net["description"], "config": net["config"]}

        def apply(data: dict[str, Any]) -> None:
            client.call("network.update", {"name": opts.name,
                                           "config": data.get("config") or {},
                                           "description": data.get("description", "")})

        return edit_yaml(f"network {opts.name}", shown, apply)
    elif verb == "attach":
        client.call("network.attach", {"network": opts.network, "instance": opts.instance,
                                       "device": opts.device, "name": opts.interface})
    elif verb == "detach":
        client.call("network.detach", {"network": opts.network, "instance": opts.instance,
                                       "device": opts.device})
    return 0


def _options_first(args: list[str]) -> list[str]:
    """``--type``/``-t``/``--description`` (with their values) before the positionals."""
    options: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("-t", "--type", "--description"):
            options += [arg, next(it, "")]
        elif arg.startswith(("--type=", "--description=")):
            options.append(arg)
        else:
            rest.append(arg)
    return options + rest


def _info(info: dict[str, Any]) -> str:
    lines = [f"Name: {info['name']}", f"Type: {info['type']}",
             f"State: {info['status']}" + (f" ({info['reason']})" if info.get("reason")
                                           else "")]
    if "hwaddr" in info:
        lines += [f"MAC address: {info['hwaddr']}", f"MTU: {info['mtu']}", "",
                  "Addresses:"] + [f"  {a}" for a in info.get("addresses", [])]
        c = info.get("counters", {})
        lines += ["", "Network usage:", f"  Bytes received: {c.get('bytes_received', 0)}",
                  f"  Bytes sent: {c.get('bytes_sent', 0)}",
                  f"  Packets received: {c.get('packets_received', 0)}",
                  f"  Packets sent: {c.get('packets_sent', 0)}"]
    return "\n".join(lines) + "\n"
