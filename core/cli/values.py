"""Argument values every command parser shares (``KEY=VALUE`` pairs, ``[REMOTE:]NAME``)
and the usage error they raise; apart from :mod:`lxctl.cli.args` so that the
hand-written parsers (``launch``, ``init``) take them without importing argparse."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad command-line usage; ``lxctl.cli.main`` prints it as ``Error: ...``, exit 1.

    A ValueError, as the hand-written parsers raise, so that main needs no import of
    this module to catch it.
    """


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
