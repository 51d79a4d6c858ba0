"""``lxctl rebuild IMAGE NAME`` (or ``NAME --empty``): a stopped instance's root volume
anew, keeping its config, devices, profiles and identity; ``--force`` stops a running
one first."""

from __future__ import annotations

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect


def rebuild(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog=f"lxctl {command}",
                       description="Rebuild a stopped instance from an image (or empty)")
    p.add_argument("names", nargs="+", metavar="[IMAGE] NAME")
    p.add_argument("--empty", action="store_true", help="an empty root, no image")
    p.add_argument("-f", "--force", action="store_true",
                   help="stop the instance first if it runs")
    opts = p.parse_args(args)
    if opts.empty:
        if len(opts.names) != 1:
            raise ValueError("With --empty, give only the instance (lxctl rebuild NAME --empty)")
        image, name = None, opts.names[0]
    else:
        if len(opts.names) != 2:
            raise ValueError("Give an image and an instance (lxctl rebuild IMAGE NAME)")
        image, name = opts.names
        image = image.split(":", 1)[1] if image.startswith("local:") else image
    client = connect()
    name = target(name)
    if opts.force and client.call("instance.get", {"name": name})["status"] != "Stopped":
        client.wait_operation(client.call("instance.stop", {"name": name, "force": True}))
    params = {"name": name, **({"empty": True} if image is None else {"image": image})}
    client.wait_operation(client.call("instance.rebuild", params))
    return 0
