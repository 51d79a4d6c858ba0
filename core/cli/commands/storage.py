"""Storage pools: ``lxctl storage create|delete|list|show|info|set|unset|get|edit`` and
``volume ...`` (custom volumes, in ``storage_volume``).

``storage volume snapshot create POOL VOLUME SNAPSHOT`` (plain words) takes a short way
that imports only the connection (argparse and ``typing`` cost ~25 ms a start)."""

from __future__ import annotations

from lxctl.cli.connection import Client, connect
from lxctl.cli.output import check_format, render_rows, write
from lxctl.cli.values import key_values

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import Any

    from lxctl.cli.args import ArgumentParser


def quick_volume_snapshot(args: list[str]) -> dict[str, str] | None:
    """``volume snapshot create POOL [custom/]VOLUME SNAPSHOT`` as the parser reads it,
    or None (then the parser decides)."""
    if len(args) != 6 or args[:3] != ["volume", "snapshot", "create"] or \
            any(a.startswith("-") or not a for a in args[3:]):
        return None
    pool, volume, snapshot = args[3:]
    volume = volume.removeprefix("custom/")
    if "/" in volume or "/" in pool:
        return None
    return {"pool": pool, "name": volume, "action": "create", "snapshot": snapshot}


def _parser() -> ArgumentParser:
    from lxctl.cli.args import ArgumentParser

    p = ArgumentParser(prog="lxctl storage", description="Manage storage pools")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("list", "ls"):
        sub.add_parser(verb).add_argument("-f", "--format", default="table")
    for verb in ("show", "info", "edit"):
        sub.add_parser(verb).add_argument("name")
    for verb in ("create", "add"):
        create = sub.add_parser(verb)
        create.add_argument("name")
        create.add_argument("driver")
        create.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
        create.add_argument("--description", default="")
    for verb in ("delete", "rm", "remove"):
        sub.add_parser(verb).add_argument("names", nargs="+", metavar="POOL")
    for verb, rest, meta in (("set", "pairs", "KEY=VALUE"), ("unset", "keys", "KEY"),
                             ("get", "keys", "KEY")):
        one = sub.add_parser(verb)
        one.add_argument("name")
        one.add_argument(rest, nargs=1 if verb == "get" else "+", metavar=meta)
    return p


def storage(command: str, args: list[str]) -> int:
    quick = quick_volume_snapshot(args)
    if quick is not None:
        connect().call("storage_volume.snapshot", quick)
        return 0
    if args[:1] == ["volume"]:
        from lxctl.cli.commands.storage_volume import storage_volume

        return storage_volume(args[1:])
    opts = _parser().parse_args(args)
    verb = opts.verb
    client = connect()
    if verb in ("list", "ls"):
        check_format(opts.format)
        pools = client.call("storage.list")
        rows = [[x["name"], x["driver"], x["description"], str(len(x.get("used_by", []))),
                 x["status"].upper()] for x in pools]
        write(render_rows(opts.format, ["NAME", "DRIVER", "DESCRIPTION", "USED BY", "STATE"],
                          rows, pools))
    elif verb == "show":
        import yaml

        write(yaml.safe_dump(client.call("storage.get", {"name": opts.name}),
                             sort_keys=False))
    elif verb == "info":
        write(_info(client.call("storage.info", {"name": opts.name})))
    elif verb in ("create", "add"):
        client.call("storage.create", {"name": opts.name, "driver": opts.driver,
                                       "config": key_values(opts.pairs),
                                       "description": opts.description})
        write(f"Storage pool {opts.name} created\n")
    elif verb in ("delete", "rm", "remove"):
        for name in opts.names:
            client.call("storage.delete", {"name": name})
            write(f"Storage pool {name} deleted\n")
    elif verb in ("set", "unset"):
        change_config(client, "storage", {"name": opts.name},
                      key_values(opts.pairs) if verb == "set" else {},
                      opts.keys if verb == "unset" else [])
    elif verb == "get":
        pool = client.call("storage.get", {"name": opts.name})
        write(f"{pool['config'].get(opts.keys[0], '')}\n")
    elif verb == "edit":
        from lxctl.cli.editor import edit_yaml

        pool = client.call("storage.get", {"name": opts.name})
        shown = {"name": pool["name"], "driver": pool["driver"],
                 "description": pool["description"], "config": pool["config"]}

        def apply(data: dict[str, Any]) -> None:
            client.call("storage.update", {"name": opts.name,
                                           "config": strings(data.get("config")),
                                           "description": data.get("description", "")})

        return edit_yaml(f"storage pool {opts.name}", shown, apply)
    return 0


def strings(config: Any) -> dict[str, str]:
    """A config read from YAML, its values as the daemon takes them (``true``, ``10``)."""
    if not isinstance(config, dict):
        return {}
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in config.items()}


def change_config(client: Client, noun: str, key: dict[str, Any], pairs: dict[str, str],
                  unset: list[str]) -> None:
    """``set``/``unset``: the object's config read, changed and written back whole."""
    config = dict(client.call(f"{noun}.get", key)["config"])
    config.update(pairs)
    for k in unset:
        config.pop(k, None)
    client.call(f"{noun}.update", {**key, "config": config})


def _info(info: dict[str, Any]) -> str:
    lines = ["info:", f"  description: {info['description']}", f"  driver: {info['driver']}",
             f"  name: {info['name']}", f"  status: {info['status']}"
             + (f" ({info['reason']})" if info.get("reason") else "")]
    space = info.get("space")
    if space:
        lines += [f"  space used: {_size(space['used'])}",
                  f"  total space: {_size(space['total'])}"]
    lines += ["used by:"] + [f"  {u}" for u in info.get("used_by", [])]
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.2f}{unit}" if unit != "B" else f"{n}B"
        n = n / 1024  # type: ignore[assignment]
    return str(n)
