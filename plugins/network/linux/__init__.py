"""Linux network drivers: ``bridge`` (Linux bridge, dnsmasq, nftables) and ``macvlan``,
built on netlink (pyroute2)."""

from __future__ import annotations

from lxctl.public import DriverRegistry, impl

from .bridge import BridgeDriver
from .macvlan import MacvlanDriver


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_network(BridgeDriver)
    registry.add_network(MacvlanDriver)
