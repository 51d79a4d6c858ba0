"""pyroute2 on first use: importing it costs a daemon ~20 MB of RSS, which a host
without managed networks or NICs should not pay. Drivers call :func:`route` and
:func:`ethtool` where they would construct ``IPRoute()``/``Ethtool()``, and catch
``except netlink.error()`` where they would catch ``NetlinkError``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from pyroute2 import IPRoute
    from pyroute2.ethtool import Ethtool
    from pyroute2.netlink.exceptions import NetlinkError


def route() -> IPRoute:
    from pyroute2 import IPRoute

    return IPRoute()


def ethtool() -> Ethtool:
    from pyroute2.ethtool import Ethtool

    return Ethtool()


def error() -> type[NetlinkError]:
    """pyroute2's NetlinkError for ``except`` and ``isinstance``; while pyroute2 is not
    loaded nothing can have raised one, and an empty tuple matches nothing."""
    module = sys.modules.get("pyroute2.netlink.exceptions")
    return cast("type[NetlinkError]", module.NetlinkError if module is not None else ())
