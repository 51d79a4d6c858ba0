"""veth pairs made by a driver itself (pyroute2; call through ``links.call``): the host
end stays here as a switch port, the peer is handed to the hypervisor as a physical
NIC. For Open vSwitch's userspace datapath the peer's TX checksum offload is turned off
(else the kernel leaves TCP checksums to a datapath that never fills them in)."""

from __future__ import annotations

from lxctl.public import netlink

TX_CHECKSUMS = ("tx-checksum-ipv4", "tx-checksum-ip-generic", "tx-checksum-ipv6",
                "tx-checksum-sctp", "tx-checksum-fcoe-crc")


def create_pair(host: str, peer: str, mtu: int | None, peer_hwaddr: str | None,
                tx_offload: bool = True) -> None:
    """Make (again) the pair ``host``/``peer``, the host end up."""
    with netlink.route() as ipr:
        for name in (host, peer):
            for idx in ipr.link_lookup(ifname=name):
                ipr.link("del", index=idx)
        ipr.link("add", ifname=host, kind="veth", peer=peer)
        try:
            for name in (host, peer):
                idx = ipr.link_lookup(ifname=name)[0]
                attrs: dict[str, object] = {"mtu": mtu} if mtu else {}
                if name == peer and peer_hwaddr:
                    attrs["address"] = peer_hwaddr
                if attrs:
                    ipr.link("set", index=idx, **attrs)
            if not tx_offload:
                tx_checksums_off(peer)
            ipr.link("set", index=ipr.link_lookup(ifname=host)[0], state="up")
        except Exception:
            for idx in ipr.link_lookup(ifname=host):
                ipr.link("del", index=idx)
            raise


def tx_checksums_off(ifname: str) -> None:
    """``ethtool -K IFNAME tx off``."""
    eth = netlink.ethtool()
    try:
        features = eth.get_features(ifname)
        for name in TX_CHECKSUMS:
            feature = features.features.get(name)
            if feature is not None and feature.available:
                feature.enable = False
        eth.set_features(ifname, features)
    finally:
        eth.close()


def tx_checksums(ifname: str) -> bool:
    """Whether any TX checksum offload is on."""
    eth = netlink.ethtool()
    try:
        features = eth.get_features(ifname).features
        return any(features[n].enable for n in TX_CHECKSUMS if n in features)
    finally:
        eth.close()
