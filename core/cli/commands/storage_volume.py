"""Custom volumes: ``lxctl storage volume create|delete|list|show|info|get|set|unset|edit|
rename|copy|move|attach|detach`` and ``snapshot create|restore|delete|list``, in Incus's
grammar (a volume may be written ``custom/NAME``; copy and move take ``POOL/VOLUME``)."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values
from lxctl.cli.connection import Client, connect
from lxctl.cli.output import check_format, render_rows, write


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lxctl storage volume", description="Manage storage volumes")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        ls = sub.add_parser(verb)
        ls.add_argument("pool", nargs="?")
        ls.add_argument("-f", "--format", default="table")
    for verb in ("show", "info", "edit", "delete", "rm", "remove"):
        one = sub.add_parser(verb)
        one.add_argument("pool")
        one.add_argument("volume")
    for verb in ("create", "add"):
        create = sub.add_parser(verb)
        create.add_argument("pool")
        create.add_argument("volume")
        create.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
        create.add_argument("--type", default="filesystem", choices=["filesystem", "block"])
        create.add_argument("--description", default="")
    for verb, rest, meta in (("set", "pairs", "KEY=VALUE"), ("unset", "keys", "KEY"),
                             ("get", "keys", "KEY")):
        one = sub.add_parser(verb)
        one.add_argument("pool")
        one.add_argument("volume")
        one.add_argument(rest, nargs=1 if verb == "get" else "+", metavar=meta)
    for verb in ("rename", "mv-name"):
        r = sub.add_parser(verb)
        r.add_argument("pool")
        r.add_argument("volume")
        r.add_argument("new_name")
    for verb in ("copy", "cp", "move", "mv"):
        c = sub.add_parser(verb)
        c.add_argument("source", metavar="POOL/VOLUME")
        c.add_argument("target", metavar="POOL/VOLUME")
        c.add_argument("--volume-only", action="store_true",
                       help="without the volume's snapshots")
    attach = sub.add_parser("attach")
    for arg in ("pool", "volume", "instance"):
        attach.add_argument(arg)
    attach.add_argument("rest", nargs="+", metavar="[DEVICE] PATH")
    detach = sub.add_parser("detach")
    for arg in ("pool", "volume", "instance"):
        detach.add_argument(arg)
    detach.add_argument("device", nargs="?")
    snap = sub.add_parser("snapshot")
    snap.add_argument("action", choices=["create", "restore", "delete", "rm", "list", "ls"])
    snap.add_argument("pool")
    snap.add_argument("volume")
    snap.add_argument("snapshot", nargs="?")
    snap.add_argument("-f", "--format", default="table")
    return p


def _name(volume: str) -> str:
    """``custom/NAME`` or ``NAME``."""
    kind, _, name = volume.rpartition("/")
    if kind not in ("", "custom"):
        raise SystemExit(f"Error: Only custom volumes can be managed, not {kind!r}")
    return name


def _pool_volume(text: str) -> tuple[str, str]:
    pool, _, volume = text.partition("/")
    if not pool or not volume:
        raise SystemExit(f"Error: {text!r} must be POOL/VOLUME")
    return pool, _name(volume)


def storage_volume(args: list[str]) -> int:
    opts = _parser().parse_args(args)
    verb = opts.verb
    client = connect()
    key: dict[str, Any] = {}
    if hasattr(opts, "volume"):
        key = {"pool": opts.pool, "name": _name(opts.volume)}
    if verb in ("list", "ls"):
        check_format(opts.format)
        vols = client.call("storage_volume.list", {"pool": opts.pool})
        rows = [[v["pool"], v["type"], v["name"], v["description"], v["content_type"],
                 str(len(v.get("used_by", [])))] for v in vols]
        write(render_rows(opts.format, ["POOL", "TYPE", "NAME", "DESCRIPTION",
                                        "CONTENT-TYPE", "USED BY"], rows, vols))
    elif verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("storage_volume.get", key), sort_keys=False))
    elif verb == "info":
        vol = client.call("storage_volume.get", key)
        snaps = client.call("storage_volume.snapshot", {**key, "action": "list"})
        lines = [f"Name: {vol['name']}", f"Type: {vol['type']}",
                 f"Content type: {vol['content_type']}", f"Created: {vol['created_at']}",
                 f"Description: {vol['description']}"]
        if vol["config"].get("size"):
            lines.append(f"Size: {vol['config']['size']}")
        lines += ["Used by:"] + [f"  {u}" for u in vol.get("used_by", [])]
        if snaps:
            lines += ["Snapshots:"] + [f"  {s}" for s in snaps]
        write("\n".join(lines) + "\n")
    elif verb in ("create", "add"):
        client.call("storage_volume.create", {**key, "config": key_values(opts.pairs),
                                              "content_type": opts.type,
                                              "description": opts.description})
        write(f"Storage volume {key['name']} created\n")
    elif verb in ("delete", "rm", "remove"):
        client.call("storage_volume.delete", key)
        write(f"Storage volume {key['name']} deleted\n")
    elif verb in ("set", "unset"):
        from lxctl.cli.commands.storage import change_config

        change_config(client, "storage_volume", key,
                      key_values(opts.pairs) if verb == "set" else {},
                      opts.keys if verb == "unset" else [])
    elif verb == "get":
        vol = client.call("storage_volume.get", key)
        write(f"{vol['config'].get(opts.keys[0], '')}\n")
    elif verb == "edit":
        return _edit(client, key)
    elif verb in ("rename", "mv-name"):
        client.call("storage_volume.rename", {**key, "new_name": _name(opts.new_name)})
        write(f"Renamed storage volume from \"{key['name']}\" to \"{opts.new_name}\"\n")
    elif verb in ("copy", "cp", "move", "mv"):
        (pool, name), (target_pool, target_name) = (_pool_volume(opts.source),
                                                     _pool_volume(opts.target))
        client.call("storage_volume.copy", {"pool": pool, "name": name,
                                            "target_pool": target_pool,
                                            "target_name": target_name,
                                            "move": verb in ("move", "mv"),
                                            "volume_only": opts.volume_only})
        write(f"Storage volume {'moved' if verb in ('move', 'mv') else 'copied'} "
              "successfully!\n")
    elif verb == "attach":
        if len(opts.rest) > 2:
            raise SystemExit("Error: attach POOL VOLUME INSTANCE [DEVICE] PATH")
        device, path = (None, opts.rest[0]) if len(opts.rest) == 1 else opts.rest
        client.call("storage_volume.attach", {**key, "instance": opts.instance,
                                              "device": device, "path": path})
    elif verb == "detach":
        client.call("storage_volume.detach", {**key, "instance": opts.instance,
                                              "device": opts.device})
    elif verb == "snapshot":
        return _snapshot(client, key, opts.action, opts.snapshot, opts.format)
    return 0


def _snapshot(client: Client, key: dict[str, Any], action: str, snapshot: str | None,
              fmt: str) -> int:
    action = {"rm": "delete", "ls": "list"}.get(action, action)
    if action == "list":
        check_format(fmt)
        snaps = client.call("storage_volume.snapshot", {**key, "action": "list"})
        write(render_rows(fmt, ["NAME"], [[s] for s in snaps], snaps))
        return 0
    if not snapshot:
        raise SystemExit(f"Error: snapshot {action} needs a snapshot name")
    client.call("storage_volume.snapshot", {**key, "action": action, "snapshot": snapshot})
    return 0


def _edit(client: Client, key: dict[str, Any]) -> int:
    from lxctl.cli.commands.storage import strings
    from lxctl.cli.editor import edit_yaml

    vol = client.call("storage_volume.get", key)
    shown = {"name": vol["name"], "type": vol["type"], "description": vol["description"],
             "config": vol["config"]}

    def apply(data: dict[str, Any]) -> None:
        client.call("storage_volume.update", {**key, "config": strings(data.get("config")),
                                              "description": data.get("description", "")})

    return edit_yaml(f"storage volume {key['name']}", shown, apply)
