"""The client's argument parser: a usage error is one ``Error: ...`` line and exit 1.

argparse's own ``error()`` prints the usage and exits 2; Incus prints one line and
exits 1, and so does lxctl. ``-h``/``--help`` still print the help and exit 0.

Imported only by the command groups that use argparse: ``exec`` and ``version`` parse
by hand (argparse costs ~5 ms a start).
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import NoReturn


class UsageError(ValueError):
    """Bad command-line usage; ``lxctl.cli.main`` prints it as ``Error: ...``, exit 1.

    A ValueError, as the hand-written parsers raise, so that main needs no import of
    this module (and of argparse) to catch it.
    """


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors raised as :class:`UsageError`.

    Sub-parsers (``add_subparsers``) are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever argparse wrote
        raise UsageError(f"{message} (see '{self.prog} --help')")


def key_values(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments (``-c``, ``config set``) as a map; bad ones are errors."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"Bad key=value pair: {pair!r}")
        out[key] = value
    return out


def target(text: str) -> str:
    """An object named as ``[REMOTE:]NAME``: the name on the local daemon. Remotes
    (Incus's ``remote:name``) come with TLS; until then only ``local:`` is known."""
    remote, sep, name = text.rpartition(":")
    if sep and remote not in ("", "local"):
        raise UsageError(f'The remote "{remote}" doesn\'t exist')
    return name if sep else text
