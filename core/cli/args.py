"""The client's argument parser: a usage error is one ``Error: ...`` line and exit 1.

argparse's own ``error()`` prints the usage and exits 2; Incus prints one line and
exits 1, and so does lxctl. ``-h``/``--help`` still print the help and exit 0.

Imported only by the command groups that use argparse: ``exec``, ``version``, ``launch``
and ``init`` parse by hand (argparse costs ~5 ms a start). The value helpers and
:class:`UsageError` live in :mod:`lxctl.cli.values` and are re-exported here.
"""

from __future__ import annotations

import argparse

from lxctl.cli.values import UsageError, key_values, target

__all__ = ["ArgumentParser", "UsageError", "key_values", "target"]

TYPE_CHECKING = False  # typing costs ~2 ms per client start; checkers see True
if TYPE_CHECKING:
    from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors raised as :class:`UsageError`.

    Sub-parsers (``add_subparsers``) are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever argparse wrote
        raise UsageError(f"{message} (see '{self.prog} --help')")
