"""``lxctl rebuild IMAGE NAME`` (or ``NAME --empty``): a stopped instance's root volume
anew, keeping its config, devices, profiles and identity."""

from __future__ import annotations

from lxctl.cli.args import ArgumentParser, target
from lxctl.cli.connection import connect


def rebuild(command: str, args: list[str]) -> int:
    p = ArgumentParser(prog=f"lxctl {command}",
                       description="Rebuild a stopped instance from an image (or empty)")
    p.add_argument("names", nargs="+", metavar="[IMAGE] NAME")
    p.add_argument("--empty", action="store_true", help="an empty root, no image")
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
    params = {"name": target(name), **({"empty": True} if image is None else {"image": image})}
    client.wait_operation(client.call("instance.rebuild", params))
    return 0
