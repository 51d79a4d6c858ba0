"""Linux network drivers: ``bridge`` (Linux bridge, dnsmasq, nftables), ``macvlan``,
built on netlink (pyroute2), and ``ovn`` (OVN logical switches, ports on the local
Open vSwitch)."""

from __future__ import annotations

from lxctl.public import DriverRegistry, impl

from .bridge import BridgeDriver
from .macvlan import MacvlanDriver
from .ovn import OvnDriver


@impl
def lxctl_register_drivers(registry: DriverRegistry) -> None:
    registry.add_network(BridgeDriver)
    registry.add_network(MacvlanDriver)
    registry.add_network(OvnDriver)
