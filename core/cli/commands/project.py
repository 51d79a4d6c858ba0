"""``lxctl project create|delete|list|show|edit|get|set|unset|switch|rename``.

The current project (``switch``) is kept in the client config, ``$LXCTL_CONF`` or
``~/.config/lxctl/config.yml``, as ``project: NAME``; the global ``--project`` flag wins
over it for one command (:mod:`lxctl.cli.connection` adds it to every call that takes a
project).
"""

from __future__ import annotations

import os
from typing import Any

from lxctl.cli.args import ArgumentParser, key_values, target
from lxctl.cli.connection import Client, RpcError, config_path, connect, read_config
from lxctl.cli.output import check_format, render_rows, write

COLUMNS = {"n": "NAME", "i": "IMAGES", "p": "PROFILES", "v": "STORAGE VOLUMES",
           "w": "NETWORKS", "d": "DESCRIPTION", "u": "USED BY"}
DEFAULT_COLUMNS = "nipvwdu"
_FEATURES = {"i": "features.images", "p": "features.profiles",
             "v": "features.storage.volumes", "w": "features.networks"}


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl project", description="Manage projects")
    sub = p.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("create", help="Create a project")
    c.add_argument("name")
    c.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--description", default="")
    for verb in ("delete", "rm", "remove"):
        sub.add_parser(verb, help="Delete projects").add_argument("names", nargs="+")
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb, help="List projects")
        ls.add_argument("-f", "--format", default="table")
        ls.add_argument("-c", "--columns", default=DEFAULT_COLUMNS)
    sub.add_parser("show", help="Show a project").add_argument("name")
    sub.add_parser("edit", help="Edit a project as YAML").add_argument("name")
    g = sub.add_parser("get", help="Get a config key (or a property with -p)")
    g.add_argument("name")
    g.add_argument("key")
    s = sub.add_parser("set", help="Set config keys (or the description with -p)")
    s.add_argument("name")
    s.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    u = sub.add_parser("unset", help="Unset config keys")
    u.add_argument("name")
    u.add_argument("keys", nargs="+")
    for parser in (g, s, u):
        parser.add_argument("-p", "--property", action="store_true")
    sub.add_parser("switch", help="Make a project the current one").add_argument("name")
    for verb in ("rename", "mv"):
        r = sub.add_parser(verb, help="Rename an empty project")
        r.add_argument("name")
        r.add_argument("new_name")
    return p


def project(command: str, args: list[str]) -> int:
    opts = _parser().parse_args(args)
    verb = {"ls": "list", "rm": "delete", "remove": "delete", "mv": "rename"}.get(opts.verb,
                                                                                 opts.verb)
    if verb == "list":
        return _list(opts.format, opts.columns)
    if verb == "switch":
        return _switch(target(opts.name))
    client = connect()
    if verb == "create":
        client.call("project.create", {"name": target(opts.name),
                                       "config": key_values(opts.config),
                                       "description": opts.description})
        write(f"Project {target(opts.name)} created\n")
    elif verb == "delete":
        _delete(client, [target(n) for n in opts.names])
    elif verb == "rename":
        client.call("project.rename", {"name": target(opts.name),
                                       "new_name": target(opts.new_name)})
        write(f"Project {target(opts.name)} renamed to {target(opts.new_name)}\n")
    elif verb == "show":
        import yaml

        rec = client.call("project.get", {"name": target(opts.name)})
        write(yaml.safe_dump({k: rec[k] for k in ("name", "description", "config",
                                                   "used_by")}, sort_keys=False))
    elif verb == "edit":
        return _edit(client, target(opts.name))
    elif verb == "get":
        rec = client.call("project.get", {"name": target(opts.name)})
        value = rec.get(opts.key, "") if opts.property else rec["config"].get(opts.key, "")
        write(f"{value}\n")
    else:
        _change(client, target(opts.name), verb, opts)
    return 0


def _change(client: Client, name: str, verb: str, opts: Any) -> None:
    rec = client.call("project.get", {"name": name})
    config = dict(rec["config"])
    if opts.property:
        values = key_values(opts.pairs) if verb == "set" else dict.fromkeys(opts.keys, "")
        unknown = sorted(set(values) - {"description"})
        if unknown:
            raise ValueError(f"Invalid property {unknown[0]!r} (projects have: description)")
        client.call("project.update", {"name": name, "description": values["description"]})
        return
    if verb == "set":
        pairs = opts.pairs
        if len(pairs) == 2 and "=" not in pairs[0]:  # Incus's old "KEY VALUE" form
            pairs = [f"{pairs[0]}={pairs[1]}"]
        config.update(key_values(pairs))
    else:
        for key in opts.keys:
            if key not in config:
                raise ValueError(f"Key {key!r} is not set on project {name!r}")
            del config[key]
    client.call("project.update", {"name": name, "config": config})


def _edit(client: Client, name: str) -> int:
    """YAML in ``$EDITOR`` (or from stdin): the description and the config; name and
    used_by are shown, not changed."""
    from lxctl.cli.editor import edit_yaml

    rec = client.call("project.get", {"name": name})

    def apply(data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - {"name", "description", "config", "used_by"})
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError("config must be a mapping")
        client.call("project.update", {
            "name": name, "description": str(data.get("description") or ""),
            "config": {str(k): _text(v) for k, v in config.items()}})

    shown = {k: rec[k] for k in ("name", "description", "config", "used_by")}
    return edit_yaml(f"project {name}", shown, apply)


def _text(value: object) -> str:
    """A YAML scalar as a config value (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _delete(client: Client, names: list[str]) -> None:
    errors = []
    for name in names:
        try:
            client.call("project.delete", {"name": name})
        except RpcError as exc:  # go on with the others, report all
            errors.append(f"{name}: {exc.message}")
            continue
        write(f"Project {name} deleted\n")
        if read_config().get("project") == name:  # as Incus: back to the default one
            _save_project("default")
    if errors:
        raise RpcError(-32000, errors[0].split(": ", 1)[1] if len(names) == 1
                       else "; ".join(errors))


def _feature(rec: dict[str, Any], key: str) -> str:
    on = rec["name"] == "default" or str(rec["config"].get(key, "")).lower() in (
        "true", "1", "yes", "on")
    return "YES" if on else "NO"


def _list(fmt: str, columns: str) -> int:
    check_format(fmt)
    columns = columns.replace(",", "")
    for col in columns:
        if col not in COLUMNS:
            raise ValueError(f"Unknown column shorthand char '{col}' in '{columns}'")
    client = connect()
    projects = client.call("project.list")
    current = client.project or "default"
    rows = []
    for rec in projects:
        row = []
        for col in columns:
            if col == "n":
                row.append(rec["name"] + (" (current)" if rec["name"] == current else ""))
            elif col == "d":
                row.append(rec.get("description", ""))
            elif col == "u":
                row.append(str(len(rec.get("used_by") or [])))
            else:
                row.append(_feature(rec, _FEATURES[col]))
        rows.append(row)
    write(render_rows(fmt, [COLUMNS[c] for c in columns], rows, projects))
    return 0


def _switch(name: str) -> int:
    connect().call("project.get", {"name": name})  # it must exist
    _save_project(name)
    return 0


def _save_project(name: str) -> None:
    """Write ``project: NAME`` into the client config, keeping its other keys."""
    import yaml

    path = config_path()
    config = read_config(path)
    config["project"] = name
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
    os.replace(tmp, path)
