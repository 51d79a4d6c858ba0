"""``lxctl copy SOURCE[/SNAPSHOT] TARGET`` and ``lxctl move NAME [NEW_NAME]
[--storage POOL]`` (alias ``rename``), in Incus's grammar."""

from __future__ import annotations

from typing import Any

from lxctl.cli.args import ArgumentParser, key_values, target
from lxctl.cli.connection import connect


def _device(text: str) -> tuple[str, dict[str, str]]:
    """``-d NAME,KEY=VALUE[,...]`` (Incus's device override)."""
    name, _, rest = text.partition(",")
    if not name or not rest:
        raise ValueError(f"Bad device override {text!r} (NAME,KEY=VALUE[,KEY=VALUE...])")
    return name, key_values(rest.split(","))


def copy(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog=f"lxctl {command}", description="Copy an instance")
    p.add_argument("source", metavar="SOURCE[/SNAPSHOT]")
    p.add_argument("target")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-d", "--device", action="append", default=[],
                   metavar="DEVICE,KEY=VALUE")
    p.add_argument("-p", "--profile", action="append", default=None)
    p.add_argument("--no-profiles", action="store_true")
    p.add_argument("-s", "--storage")
    p.add_argument("-e", "--ephemeral", action="store_true")
    p.add_argument("--instance-only", action="store_true")
    p.add_argument("--stateless", action="store_true")
    p.add_argument("--start", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    opts = p.parse_args(args)
    source, _, snap = target(opts.source).partition("/")
    name = target(opts.target)
    if "/" in name:
        raise ValueError("The target of a copy is an instance name, not a snapshot")
    devices: dict[str, dict[str, str]] = {}
    for text in opts.device:
        dev, conf = _device(text)
        devices[dev] = conf
    params: dict[str, Any] = {"source": source, "name": name, "storage": opts.storage,
                              "instance_only": opts.instance_only,
                              "config": key_values(opts.config), "start": opts.start}
    if snap:
        params["snapshot"] = snap
    if devices:
        params["devices"] = devices
    if opts.no_profiles or opts.profile is not None:
        params["profiles"] = [] if opts.no_profiles else opts.profile
    if opts.ephemeral:
        params["ephemeral"] = True
    client = connect()
    if devices:  # an override merges into the device the source has (Incus's -d)
        src = client.call("instance.get", {"name": source})
        for dev, conf in devices.items():
            devices[dev] = {**src.get("expanded_devices", {}).get(dev, {}), **conf}
    client.wait_operation(client.call("instance.copy", params))
    return 0


def move(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog=f"lxctl {command}",
                       description="Rename an instance or move it to another storage pool")
    p.add_argument("source")
    p.add_argument("target", nargs="?")
    p.add_argument("-s", "--storage")
    p.add_argument("--instance-only", action="store_true")
    p.add_argument("--stateless", action="store_true")
    opts = p.parse_args(args)
    source = target(opts.source)
    new = target(opts.target) if opts.target else None
    if "/" in source or (new and "/" in new):
        raise ValueError("Snapshots are renamed with 'lxctl snapshot rename'")
    if command == "rename" and new is None:
        raise ValueError("Give the new name (lxctl rename NAME NEW_NAME)")
    if new is None and opts.storage is None:
        raise ValueError("Give a new name or --storage POOL")
    params: dict[str, Any] = {"name": source, "instance_only": opts.instance_only}
    if new is not None and new != source:
        params["new_name"] = new
    if opts.storage:
        params["storage"] = opts.storage
    client = connect()
    client.wait_operation(client.call("instance.move", params))
    return 0
