"""Instance commands: start, stop, restart, pause, resume, delete, info (launch and init
are in :mod:`lxctl.cli.commands.launch`, list in :mod:`lxctl.cli.commands.listing`)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import Client, RpcError, connect
from lxctl.cli.output import size, write

WANTED_FROM = {"start": ("Stopped", "Frozen"), "stop": ("Running", "Frozen"),
               "restart": ("Running", "Frozen"), "freeze": ("Running",),
               "unfreeze": ("Frozen",)}


def _parser(command: str, description: str) -> ArgumentParser:
    return ArgumentParser(prog=f"lxctl {command}", description=description)


# ---------------------------------------------------------------------------- power
def _targets(client: Client, names: list[str], all_: bool, command: str) -> list[str]:
    if all_ and names:
        raise ValueError("Both --all and instance names given")
    names = [target(n) for n in names]
    if not names and not all_:
        raise ValueError(f"Missing instance name (lxctl {command} NAME... or --all)")
    if all_:
        return [i["name"] for i in client.call("instance.list", {"full": False})]
    return names


def _power(command: str, args: list[str], action: str) -> int:
    p = _parser(command, f"{command.capitalize()} instances")
    p.add_argument("names", nargs="*")
    p.add_argument("-a", "--all", action="store_true")
    if action in ("stop", "restart"):
        p.add_argument("-f", "--force", action="store_true")
        p.add_argument("--timeout", type=float, default=-1)
    p.add_argument("-q", "--quiet", action="store_true")
    opts = p.parse_args(args)
    client = connect()
    names = _targets(client, opts.names, opts.all, command)
    states = {}
    if opts.all or action == "start":
        states = {i["name"]: i["status"] for i in client.call("instance.list", {"full": False})}
    ops, errors = [], []
    for name in names:
        method = action
        status = states.get(name)
        if opts.all and status not in WANTED_FROM[action]:
            continue  # --all skips instances already in the wanted state, as Incus does
        if action == "start" and status == "Frozen":
            method = "unfreeze"
        params: dict[str, Any] = {"name": name}
        if action in ("stop", "restart"):
            params.update(force=opts.force, timeout=opts.timeout)
        try:
            ops.append((name, client.call(f"instance.{method}", params)))
        except RpcError as exc:
            errors.append(f"{name}: {exc.message}")
    for name, op in ops:
        try:
            client.wait_operation(op)
        except RpcError as exc:
            errors.append(f"{name}: {exc.message}")
    if errors:
        if len(names) == 1:
            raise RpcError(-32000, errors[0].split(": ", 1)[1])
        raise RpcError(-32000, "; ".join(errors))
    return 0


def start(command: str, args: list[str]) -> int:
    return _power(command, args, "start")


def stop(command: str, args: list[str]) -> int:
    return _power(command, args, "stop")


def restart(command: str, args: list[str]) -> int:
    return _power(command, args, "restart")


def pause(command: str, args: list[str]) -> int:
    return _power(command, args, "freeze")


def resume(command: str, args: list[str]) -> int:
    return _power(command, args, "unfreeze")


def delete(command: str, args: list[str]) -> int:
    p = _parser(command, "Delete instances")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    opts = p.parse_args(args)
    client = connect()
    ops, errors = [], []
    for name in [target(n) for n in opts.names]:
        try:
            ops.append((name, client.call("instance.delete", {"name": name,
                                                               "force": opts.force})))
        except RpcError as exc:
            errors.append((name, exc.message))
    for name, op in ops:
        try:
            client.wait_operation(op)
        except RpcError as exc:
            errors.append((name, exc.message))
    if errors:
        if len(opts.names) == 1:
            raise RpcError(-32000, errors[0][1])
        raise RpcError(-32000, "; ".join(f"{n}: {m}" for n, m in errors))
    return 0


# ---------------------------------------------------------------------------- info
def info(command: str, args: list[str]) -> int:
    p = _parser(command, "Show instance or server information")
    p.add_argument("name", nargs="?")
    p.add_argument("--resources", action="store_true")
    opts = p.parse_args(args)
    from lxctl.cli.commands.listing import date

    client = connect()
    if opts.name is None:
        import yaml

        write(yaml.safe_dump(client.call("server.info"), sort_keys=False))
        return 0
    inst = client.call("instance.get", {"name": target(opts.name)})
    state = inst.get("state") or {}
    lines = [
        f"Name: {inst['name']}",
        f"Description: {inst.get('description', '')}",
        f"Status: {inst['status'].upper()}",
        f"Type: {inst['type']}" + (" (ephemeral)" if inst.get("ephemeral") else ""),
        f"Architecture: {inst.get('architecture', '')}",
    ]
    if state.get("pid", -1) > 0:
        lines.append(f"PID: {state['pid']}")
    lines += [f"Created: {date(inst.get('created_at', ''))}",
              f"Last Used: {date(inst.get('last_used_at', ''))}"]
    if inst["status"] in ("Running", "Frozen"):
        lines += ["", "Resources:", f"  Processes: {state.get('processes', -1)}"]
        cpu = (state.get("cpu") or {}).get("usage", 0)
        lines += ["  CPU usage:", f"    CPU usage (in seconds): {cpu // 10**9}"]
        memory = state.get("memory") or {}
        lines += ["  Memory usage:", f"    Memory (current): {size(memory.get('usage', 0))}"]
        if memory.get("usage_peak"):
            lines.append(f"    Memory (peak): {size(memory['usage_peak'])}")
        network = state.get("network") or {}
        if network:
            lines.append("  Network usage:")
            for iface, net in sorted(network.items()):
                lines += [f"    {iface}:", "      IP addresses:"]
                for addr in net.get("addresses", []):
                    lines.append(f"        {addr['family']}:  {addr['address']}/"
                                 f"{addr['netmask']} ({addr['scope']})")
                if net.get("host_name"):
                    c = net.get("counters", {})
                    lines += [f"      Host interface: {net['host_name']}",
                              f"      MAC address: {net.get('hwaddr', '')}",
                              f"      MTU: {net.get('mtu', '')}",
                              f"      Bytes received: {size(c.get('bytes_received', 0))}",
                              f"      Bytes sent: {size(c.get('bytes_sent', 0))}",
                              f"      Packets received: {c.get('packets_received', 0)}",
                              f"      Packets sent: {c.get('packets_sent', 0)}"]
    snapshots = inst.get("snapshots") or []
    if snapshots:
        from lxctl.cli.commands.snapshot import HEADER, rows
        from lxctl.cli.output import table

        lines += ["", "Snapshots:", table(HEADER, rows(snapshots)).rstrip("\n")]
    write("\n".join(lines) + "\n")
    return 0
