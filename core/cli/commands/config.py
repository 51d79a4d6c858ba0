"""Instance configuration: ``lxctl config get|set|unset|show|edit`` and
``lxctl config device add|remove|set|unset|get|list|show|override``."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values, target
from lxctl.cli.connection import Client, connect
from lxctl.cli.output import write

PROPERTIES = ("description", "ephemeral")


def _instance(client: Client, name: str) -> dict[str, Any]:
    inst: dict[str, Any] = client.call("instance.get", {"name": name})
    return inst


def _update(client: Client, name: str, **changes: Any) -> None:
    client.call("instance.update", {"name": name, **changes})


def _show(inst: dict[str, Any], expanded: bool) -> dict[str, Any]:
    return {
        "architecture": inst.get("architecture", ""),
        "config": inst["expanded_config" if expanded else "config"],
        "devices": inst["expanded_devices" if expanded else "devices"],
        "ephemeral": inst.get("ephemeral", False),
        "profiles": inst.get("profiles", []),
        "stateful": False,
        "description": inst.get("description", ""),
    }


def _set_pairs(args: list[str]) -> dict[str, str]:
    """``KEY=VALUE...``, or Incus's older ``KEY VALUE`` form."""
    if len(args) == 2 and "=" not in args[0]:
        return {args[0]: args[1]}
    return key_values(args)


def config(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog="lxctl config", description="Manage instance configuration")
    sub = p.add_subparsers(dest="verb", required=True)
    get = sub.add_parser("get")
    get.add_argument("name")
    get.add_argument("key")
    get.add_argument("-e", "--expanded", action="store_true")
    get.add_argument("-p", "--property", action="store_true")
    set_ = sub.add_parser("set")
    set_.add_argument("name")
    set_.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    set_.add_argument("-p", "--property", action="store_true")
    unset = sub.add_parser("unset")
    unset.add_argument("name")
    unset.add_argument("keys", nargs="+")
    unset.add_argument("-p", "--property", action="store_true")
    show = sub.add_parser("show")
    show.add_argument("name")
    show.add_argument("-e", "--expanded", action="store_true")
    edit = sub.add_parser("edit")
    edit.add_argument("name")
    device = sub.add_parser("device")
    device.add_argument("action", choices=("add", "create", "remove", "rm", "delete", "set",
                                           "unset", "get", "list", "ls", "show",
                                           "override"))
    device.add_argument("name")
    device.add_argument("rest", nargs="*")
    opts = p.parse_args(args)
    client = connect()
    name = target(opts.name)
    if opts.verb == "device":
        return _device(client, name, opts.action, opts.rest)
    inst = _instance(client, name)
    if opts.verb == "get":
        if opts.property:
            _check_property(opts.key)
            value = inst.get(opts.key, "")
            write(f"{str(value).lower() if isinstance(value, bool) else value}\n")
        else:
            values = inst["expanded_config" if opts.expanded else "config"]
            write(f"{values.get(opts.key, '')}\n")
    elif opts.verb == "set":
        pairs = _set_pairs(opts.pairs)
        if opts.property:
            _update(client, name, **{k: _property(k, v) for k, v in pairs.items()})
        else:
            _update(client, name, config={**inst["config"], **pairs})
    elif opts.verb == "unset":
        if opts.property:
            _update(client, name, **{key: _property(key, "") for key in opts.keys})
        else:
            missing = [k for k in opts.keys if k not in inst["config"]]
            if missing:
                raise ValueError(f"Can't unset key {missing[0]!r}, it's not currently set")
            _update(client, name, config={k: v for k, v in inst["config"].items()
                                          if k not in opts.keys})
    elif opts.verb == "show":
        import yaml

        write(yaml.safe_dump(_show(inst, opts.expanded), sort_keys=False))
    else:
        from lxctl.cli.editor import edit_yaml

        def apply(data: dict[str, Any]) -> None:
            unknown = set(data) - {"architecture", "config", "devices", "ephemeral",
                                   "profiles", "stateful", "description"}
            if unknown:
                raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
            config = {str(k): str(v) for k, v in (data.get("config") or {}).items()}
            devices = {str(d): {str(k): str(v) for k, v in (c or {}).items()}
                       for d, c in (data.get("devices") or {}).items()}
            _update(client, name, config=config, devices=devices,
                    description=str(data.get("description") or ""))

        return edit_yaml(f"configuration of instance {name}", _show(inst, False), apply)
    return 0


def _check_property(key: str) -> None:
    if key not in PROPERTIES:
        raise ValueError(f"Unknown property {key!r} (known: {', '.join(PROPERTIES)})")


def _property(key: str, value: str) -> str | bool:
    """A property's value as the API takes it: ``ephemeral`` is a boolean."""
    _check_property(key)
    if key != "ephemeral":
        return value
    if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        raise ValueError(f"Invalid value {value!r} for ephemeral: true or false")
    return value.lower() in ("true", "1", "yes", "on")


def _device(client: Client, name: str, action: str, rest: list[str]) -> int:
    inst = _instance(client, name)
    local: dict[str, dict[str, str]] = inst["devices"]
    expanded: dict[str, dict[str, str]] = inst["expanded_devices"]

    def need(count: int, usage: str) -> None:
        if len(rest) < count:
            raise ValueError(f"Missing arguments: lxctl config device {action} {name} {usage}")

    if action in ("list", "ls"):
        write("".join(f"{dev}\n" for dev in sorted(expanded)))
        return 0
    if action == "show":
        import yaml

        write(yaml.safe_dump(local, sort_keys=True))
        return 0
    need(1, "DEVICE ...")
    dev = rest[0]
    if action == "get":
        need(2, "DEVICE KEY")
        if dev not in expanded:
            raise ValueError(f"Device {dev!r} doesn't exist")
        write(f"{expanded[dev].get(rest[1], '')}\n")
        return 0
    devices = {d: dict(c) for d, c in local.items()}
    if action in ("add", "create"):
        need(2, "DEVICE TYPE [KEY=VALUE...]")
        if dev in local:
            raise ValueError(f"The device already exists: {dev}")
        devices[dev] = {"type": rest[1], **key_values(rest[2:])}
        _update(client, name, devices=devices)
        write(f"Device {dev} added to {name}\n")
    elif action == "override":  # a local copy of a profile's device, with changes
        if dev in local:
            raise ValueError(f"The device already exists: {dev}")
        if dev not in expanded:
            raise ValueError(f"Device {dev!r} doesn't exist")
        devices[dev] = {**expanded[dev], **_set_pairs(rest[1:])}
        _update(client, name, devices=devices)
        write(f"Device {dev} overridden for {name}\n")
    elif action in ("remove", "rm", "delete"):
        for d in rest:
            if d not in local:
                what = "comes from a profile" if d in expanded else "doesn't exist"
                raise ValueError(f"Device {d!r} {what}")
            devices.pop(d)
        _update(client, name, devices=devices)
        write(f"Device {', '.join(rest)} removed from {name}\n")
    elif action == "set":
        need(2, "DEVICE KEY=VALUE...")
        if dev not in local:
            raise ValueError(f"Device {dev!r} doesn't exist" if dev not in expanded else
                             f"Device {dev!r} comes from a profile: 'lxctl config device "
                             f"override {name} {dev} KEY=VALUE...' makes a local copy")
        devices[dev].update(_set_pairs(rest[1:]))
        _update(client, name, devices=devices)
    else:  # unset
        need(2, "DEVICE KEY...")
        if dev not in local:
            raise ValueError(f"Device {dev!r} doesn't exist")
        for key in rest[1:]:
            devices[dev].pop(key, None)
        _update(client, name, devices=devices)
    return 0
