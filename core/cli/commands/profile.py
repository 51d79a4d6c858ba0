"""Profiles: ``lxctl profile list|show|create|delete|copy|rename|set|unset|get|edit``,
``lxctl profile device add|remove|set|unset|get|list|show`` and the profiles of an
instance, ``lxctl profile assign|add|remove``."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values, target
from lxctl.cli.connection import Client, connect
from lxctl.cli.output import check_format, render_rows, write

PROPERTIES = ("description",)
EDITABLE = ("config", "description", "devices")
SHOWN_ONLY = ("name", "used_by", "project")  # shown in edit, ignored when read back


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl profile", description="Manage profiles")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("-f", "--format", default="table")
        ls.add_argument("--all-projects", action="store_true")
    for verb in ("show", "edit"):
        sub.add_parser(verb).add_argument("name")
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("--description", default=None)
    for verb in ("delete", "rm"):
        sub.add_parser(verb).add_argument("names", nargs="+", metavar="NAME")
    for verb in ("copy", "cp", "rename", "mv"):
        two = sub.add_parser(verb)
        two.add_argument("name")
        two.add_argument("new_name")
    for verb, rest, meta in (("set", "pairs", "KEY=VALUE"), ("unset", "keys", "KEY"),
                             ("get", "keys", "KEY")):
        one = sub.add_parser(verb)
        one.add_argument("name")
        one.add_argument(rest, nargs=1 if verb == "get" else "+", metavar=meta)
        one.add_argument("-p", "--property", action="store_true")
    for verb in ("assign", "apply"):
        assign = sub.add_parser(verb)
        assign.add_argument("instance")
        assign.add_argument("profiles", nargs="?", default=None, metavar="PROFILE,...")
        assign.add_argument("--no-profiles", action="store_true")
    for verb in ("add", "remove"):
        one = sub.add_parser(verb)
        one.add_argument("instance")
        one.add_argument("profile")
    device = sub.add_parser("device")
    dsub = device.add_subparsers(dest="action", required=True)
    for actions, spec in ((("add", "create"), ("device", "type", "pairs*")),
                          (("remove", "rm", "delete"), ("devices+",)),
                          (("set",), ("device", "pairs+")), (("unset",), ("device", "keys+")),
                          (("get",), ("device", "key")), (("list", "ls"), ()),
                          (("show",), ())):
        for action in actions:
            dp = dsub.add_parser(action)
            dp.add_argument("name")
            for arg in spec:
                dp.add_argument(arg.rstrip("*+"), nargs=arg[-1] if arg[-1] in "*+" else None)
    return p


def profile(command: str, args: list[str]) -> int:
    opts = _parser().parse_args(args)
    verb = opts.verb
    if verb in ("assign", "apply"):  # a usage error, before connecting
        opts.profiles = _profile_list(opts.profiles, opts.no_profiles)
    client = connect()
    if verb in ("list", "ls"):
        check_format(opts.format)
        profiles = client.call("profile.list", {"all_projects": True} if opts.all_projects
                               else None)
        header = ["NAME", "DESCRIPTION", "USED BY"]
        rows = [[x["name"], x["description"], str(len(x.get("used_by", [])))]
                for x in profiles]
        if opts.all_projects:
            header = ["PROJECT", *header]
            rows = [[x.get("project", "default"), *row] for x, row in zip(profiles, rows,
                                                                         strict=True)]
        write(render_rows(opts.format, header, rows, profiles))
        return 0
    if verb in ("assign", "apply", "add", "remove"):
        return _assign(client, verb, opts)
    if verb in ("delete", "rm"):
        for name in opts.names:
            client.call("profile.delete", {"name": target(name)})
            write(f"Profile {target(name)} deleted\n")
        return 0
    name = target(opts.name)
    if verb == "create":
        return _create(client, name, opts.description)
    if verb in ("copy", "cp"):
        client.call("profile.copy", {"name": name, "new_name": target(opts.new_name)})
        return 0
    if verb in ("rename", "mv"):
        client.call("profile.rename", {"name": name, "new_name": target(opts.new_name)})
        write(f"Profile {name} renamed to {target(opts.new_name)}\n")
        return 0
    if verb == "device":
        return _device(client, name, opts)
    prof: dict[str, Any] = client.call("profile.get", {"name": name})
    if verb == "show":
        import yaml

        write(yaml.safe_dump(_shown(prof), sort_keys=False))
    elif verb == "edit":
        from lxctl.cli.editor import edit_yaml

        def apply(data: dict[str, Any]) -> None:
            client.call("profile.update", {"name": name, **_editable(data)})

        return edit_yaml(f"profile {name}", _shown(prof), apply)
    elif verb == "get":
        key = opts.keys[0]
        if opts.property:
            _check_property(key)
            write(f"{prof.get(key, '')}\n")
        else:
            write(f"{prof['config'].get(key, '')}\n")
    elif verb == "set":
        pairs = _set_pairs(opts.pairs)
        if opts.property:
            for key in pairs:
                _check_property(key)
            client.call("profile.update", {"name": name, **pairs})
        else:
            client.call("profile.update", {"name": name,
                                           "config": {**prof["config"], **pairs}})
    else:  # unset
        if opts.property:
            for key in opts.keys:
                _check_property(key)
            client.call("profile.update", {"name": name, **{k: "" for k in opts.keys}})
            return 0
        missing = [k for k in opts.keys if k not in prof["config"]]
        if missing:
            raise ValueError(f"Can't unset key {missing[0]!r}, it's not currently set")
        client.call("profile.update", {"name": name, "config": {
            k: v for k, v in prof["config"].items() if k not in opts.keys}})
    return 0


def _shown(prof: dict[str, Any]) -> dict[str, Any]:
    return {"name": prof["name"], "description": prof.get("description", ""),
            "config": prof.get("config", {}), "devices": prof.get("devices", {}),
            "used_by": prof.get("used_by", [])}


def _scalar(value: Any) -> str:
    """A YAML scalar as the daemon's string value (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise ValueError(f"a config value must be a scalar, not {value!r}")
    return str(value)


def _editable(data: dict[str, Any]) -> dict[str, Any]:
    """The YAML of ``edit`` (or ``create`` from stdin) as profile.update's params: all
    of config, devices and description, replaced (absent ones empty)."""
    unknown = sorted(str(k) for k in data if k not in (*EDITABLE, *SHOWN_ONLY))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (known: {', '.join(EDITABLE)})")
    config, devices = data.get("config") or {}, data.get("devices") or {}
    if not isinstance(config, dict) or not isinstance(devices, dict):
        raise ValueError("config and devices must be mappings")
    for dev, conf in devices.items():
        if not isinstance(conf, dict):
            raise ValueError(f"device {dev!r} must be a mapping of keys to values")
    return {"config": {str(k): _scalar(v) for k, v in config.items()},
            "devices": {str(d): {str(k): _scalar(v) for k, v in (c or {}).items()}
                        for d, c in devices.items()},
            "description": _scalar(data.get("description"))}


def _create(client: Client, name: str, description: str | None) -> int:
    """``profile create NAME``, with its YAML from stdin when that is not a terminal
    (``lxctl profile create p < p.yaml``), as Incus does."""
    import sys

    params: dict[str, Any] = {"name": name}
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        if text.strip():
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"invalid YAML: {' '.join(str(exc).split())}") from None
            if not isinstance(data, dict):
                raise ValueError("the YAML must be a mapping")
            params.update(_editable(data))
    if description is not None:
        params["description"] = description
    client.call("profile.create", params)
    write(f"Profile {name} created\n")
    return 0


def _set_pairs(args: list[str]) -> dict[str, str]:
    """``KEY=VALUE...``, or Incus's older ``KEY VALUE`` form."""
    if len(args) == 2 and "=" not in args[0]:
        return {args[0]: args[1]}
    return key_values(args)


def _check_property(key: str) -> None:
    if key not in PROPERTIES:
        raise ValueError(f"Unknown property {key!r} (known: {', '.join(PROPERTIES)})")


def _profile_list(text: str | None, none: bool) -> list[str]:
    """``assign``'s ``P1,P2`` (or ``--no-profiles``)."""
    if none:
        if text is not None:
            raise ValueError("--no-profiles takes no profile list")
        return []
    if text is None:
        raise ValueError("Missing the profiles: lxctl profile assign INSTANCE "
                         "PROFILE[,PROFILE...] (or --no-profiles)")
    return [p for p in text.split(",") if p]


def _assign(client: Client, verb: str, opts: Any) -> int:
    instance = target(opts.instance)
    if verb in ("assign", "apply"):
        profiles: list[str] = opts.profiles
        client.call("instance.set_profiles", {"name": instance, "profiles": profiles})
        write(f"Profiles {','.join(profiles)} applied to {instance}\n" if profiles else
              f"Profiles removed from {instance}\n")
        return 0
    current: list[str] = client.call("instance.get", {"name": instance})["profiles"]
    if verb == "add":
        if opts.profile in current:
            raise ValueError(f"Profile {opts.profile} is already applied to {instance}")
        client.call("instance.set_profiles", {"name": instance,
                                              "profiles": [*current, opts.profile]})
        write(f"Profile {opts.profile} added to {instance}\n")
    else:
        if opts.profile not in current:
            raise ValueError(f"Profile {opts.profile} isn't currently applied to {instance}")
        client.call("instance.set_profiles", {"name": instance, "profiles": [
            p for p in current if p != opts.profile]})
        write(f"Profile {opts.profile} removed from {instance}\n")
    return 0


def _device(client: Client, name: str, opts: Any) -> int:
    action = opts.action
    prof: dict[str, Any] = client.call("profile.get", {"name": name})
    devices: dict[str, dict[str, str]] = {d: dict(c) for d, c in prof["devices"].items()}
    if action in ("list", "ls"):
        write("".join(f"{dev}\n" for dev in sorted(devices)))
        return 0
    if action == "show":
        import yaml

        write(yaml.safe_dump(devices, sort_keys=True))
        return 0
    if action in ("remove", "rm", "delete"):
        for dev in opts.devices:
            if dev not in devices:
                raise ValueError(f"Device {dev!r} doesn't exist in profile {name}")
            devices.pop(dev)
        client.call("profile.update", {"name": name, "devices": devices})
        write(f"Device {', '.join(opts.devices)} removed from {name}\n")
        return 0
    dev = opts.device
    if action in ("add", "create"):
        if dev in devices:
            raise ValueError(f"The device already exists: {dev}")
        devices[dev] = {"type": opts.type, **key_values(opts.pairs)}
        client.call("profile.update", {"name": name, "devices": devices})
        write(f"Device {dev} added to {name}\n")
        return 0
    if dev not in devices:
        raise ValueError(f"Device {dev!r} doesn't exist in profile {name}")
    if action == "get":
        write(f"{devices[dev].get(opts.key, '')}\n")
        return 0
    if action == "set":
        devices[dev].update(_set_pairs(opts.pairs))
    else:  # unset
        for key in opts.keys:
            devices[dev].pop(key, None)
    client.call("profile.update", {"name": name, "devices": devices})
    return 0
