"""Argument values every command parser shares (``KEY=VALUE`` pairs, ``[REMOTE:]NAME``),
the usage error they raise, and the hand parser of the hot commands (``launch``,
``list``); apart from :mod:`lxctl.cli.args` so that those take them without importing
argparse."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


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


def quick_parse(args: list[str], flags: Mapping[str, tuple[str, bool]],
                defaults: Mapping[str, Any], appended: frozenset[str] = frozenset(),
                most: int | None = None) -> tuple[dict[str, Any], list[str]] | None:
    """The options (``flags``: flag -> (destination, takes a value), each destination's
    default in ``defaults``; ``appended``: repeatable ones, every value kept) and the
    positional words, as argparse would give them for a parser whose positionals come
    in one run of at most ``most`` words; or None where that is not sure (known flags
    in full only, values not starting with ``-``): then argparse decides, and its
    errors and help are the ones shown."""
    opts = {k: list(v) if isinstance(v, list) else v for k, v in defaults.items()}
    positional: list[str] = []
    run_over = False  # argparse takes the positionals from one run of words
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            if run_over or len(positional) == most:
                return None
            positional.append(arg)
            continue
        if positional:
            run_over = True
        flag, eq, inline = arg.partition("=")
        if eq and flag.startswith("--") and flags.get(flag, ("", False))[1]:
            value: str | bool = inline
            dest = flags[flag][0]
        elif arg in flags:
            dest, takes_value = flags[arg]
            if takes_value:
                if i == len(args) or args[i].startswith("-"):
                    return None
                value = args[i]
                i += 1
            else:
                value = True
        else:
            return None
        opts[dest] = [*(opts[dest] or []), value] if dest in appended else value
    return opts, positional
