"""``lxctl launch`` and ``lxctl init``: create (and start) an instance from an image.

Kept apart from the other instance commands so that a launch imports nothing but the
connection: its flags are parsed by hand, as ``exec``'s are (argparse, ``re`` and
``typing`` cost ~25 ms a start). Only what the hand parser reads exactly as argparse
would (known flags spelled in full, values that do not start with ``-``, the image and
name in one run) takes the short way; anything else (``--help``, an abbreviated or
combined flag, a usage error) goes to the argparse parser, so that help, abbreviations
and errors stay argparse's own.
"""

from __future__ import annotations

import sys

from lxctl.cli import values
from lxctl.cli.connection import connect
from lxctl.cli.values import key_values, target

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import Any

    from lxctl.cli.args import ArgumentParser

# flag -> (destination, takes a value); each destination's default is in DEFAULTS
FLAGS: dict[str, tuple[str, bool]] = {
    "-c": ("config", True), "--config": ("config", True),
    "-p": ("profile", True), "--profile": ("profile", True),
    "--no-profiles": ("no_profiles", False),
    "-s": ("storage", True), "--storage": ("storage", True),
    "-e": ("ephemeral", False), "--ephemeral": ("ephemeral", False),
    "--description": ("description", True),
    "-q": ("quiet", False), "--quiet": ("quiet", False),
    "--vm": ("vm", False),
    "-t": ("instance_type", True), "--type": ("instance_type", True),
}
APPENDED = frozenset({"config", "profile"})  # repeatable: every value is kept
DEFAULTS: dict[str, Any] = {
    "image": None, "name": None, "config": [], "profile": None, "no_profiles": False,
    "storage": None, "ephemeral": False, "description": "", "quiet": False, "vm": False,
    "instance_type": None,
}


def parser(command: str, start: bool) -> ArgumentParser:
    """The argparse parser: for help and for whatever :func:`quick_parse` leaves."""
    from lxctl.cli.args import ArgumentParser

    p = ArgumentParser(prog=f"lxctl {command}",
                       description="Create and start an instance" if start
                       else "Create an instance")
    p.add_argument("image")
    p.add_argument("name", nargs="?")
    p.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-p", "--profile", action="append", default=None)
    p.add_argument("--no-profiles", action="store_true")
    p.add_argument("-s", "--storage")
    p.add_argument("-e", "--ephemeral", action="store_true")
    p.add_argument("--description", default="")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--vm", action="store_true")
    p.add_argument("-t", "--type", dest="instance_type", metavar="TYPE")
    return p


def quick_parse(args: list[str]) -> dict[str, Any] | None:
    """The options as argparse would give them, or None where that is not sure (then
    the argparse parser decides, and errors are its own)."""
    parsed = values.quick_parse(args, FLAGS, DEFAULTS, APPENDED, most=2)
    if parsed is None or not parsed[1]:
        return None
    opts, positional = parsed
    opts["image"] = positional[0]
    opts["name"] = positional[1] if len(positional) == 2 else None
    return opts


def _create(command: str, args: list[str], start: bool) -> int:
    opts = quick_parse(args)
    if opts is None:
        opts = vars(parser(command, start).parse_args(args))
    if opts["vm"]:
        raise ValueError("virtual machines are not supported yet")
    image = opts["image"]
    image = image.split(":", 1)[1] if image.startswith("local:") else image
    profiles = [] if opts["no_profiles"] else opts["profile"]
    client = connect()
    op = client.call("instance.create", {
        "image": image, "name": None if opts["name"] is None else target(opts["name"]),
        "config": key_values(opts["config"]),
        "profiles": profiles, "storage": opts["storage"], "ephemeral": opts["ephemeral"],
        "start": start, "description": opts["description"],
        **({"instance_type": opts["instance_type"]} if opts["instance_type"] else {}),
    })
    name = op["resources"]["instances"][0].rsplit("/", 1)[1].partition("?")[0]
    if not opts["quiet"]:
        _write(f"{'Launching' if start else 'Creating'} {name}\n")
        if opts["name"] is None:
            _write(f"Instance name is: {name}\n")
    client.wait_operation(op)
    return 0


def _write(text: str) -> None:  # as lxctl.cli.output.write, without its imports
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def launch(command: str, args: list[str]) -> int:
    return _create(command, args, start=True)


def init(command: str, args: list[str]) -> int:
    return _create(command, args, start=False)
