"""Network ACLs on a Linux bridge, for real (nftables through br_netfilter, in the
daemon's own network namespace): an ACL that drops ICMP stops the ping between two
containers while its allow rules let TCP through; removing it restores the ping."""

from __future__ import annotations

from harness import wait_for
from test_network import NetnsDaemon, _dhcp, netns_daemon, root_namespace_unchanged

__all__ = ["netns_daemon", "root_namespace_unchanged"]  # the fixtures, used here too


def _pings(d: NetnsDaemon, src: str, dst: str) -> bool:
    return d.cli("exec", src, "--", "ping", "-c", "1", "-W", "1", dst).returncode == 0


def test_bridge_acl_drops_icmp_and_removing_it_restores(netns_daemon: NetnsDaemon) -> None:
    d = netns_daemon
    d.ok("network", "create", "lxtbra0", "ipv4.address=10.251.70.1/24", "ipv4.nat=false")
    for name, ip in (("c1", "10.251.70.11"), ("c2", "10.251.70.12")):
        d.ok("init", "bb", name)
        d.ok("network", "attach", "lxtbra0", name, "eth0")
        d.ok("config", "device", "set", name, "eth0", f"ipv4.address={ip}")
    d.ok("network", "acl", "create", "lxtnoping")
    d.ok("network", "acl", "rule", "add", "lxtnoping", "ingress", "action=drop",
         "protocol=icmp4")
    d.ok("network", "acl", "rule", "add", "lxtnoping", "ingress", "action=allow")
    d.ok("network", "acl", "rule", "add", "lxtnoping", "egress", "action=allow")
    d.ok("start", "c1", "c2")
    assert _dhcp(d, "c1") == "10.251.70.11" and _dhcp(d, "c2") == "10.251.70.12"
    wait_for(lambda: _pings(d, "c1", "10.251.70.12"), timeout=10)
    d.ok("network", "set", "lxtbra0", "security.acls=lxtnoping")
    assert "lxctl_acl_lxtbra0" in d.sh("nft", "list", "tables").stdout  # in the netns
    assert not _pings(d, "c1", "10.251.70.12") and not _pings(d, "c2", "10.251.70.11")
    d.ok("exec", "c2", "--", "sh", "-c", "nc -l -p 8081 -e echo lxt-allowed >/dev/null 2>&1 &")
    got = d.ok("exec", "c1", "--", "timeout", "10", "sh", "-c", "sleep 1 | nc 10.251.70.12 8081")
    assert "lxt-allowed" in got  # stateful: the reply passes the other side's rules
    assert _dhcp(d, "c1") == "10.251.70.11"  # DHCP to the bridge always passes
    d.ok("network", "acl", "rule", "remove", "lxtnoping", "ingress", "action=drop")
    wait_for(lambda: _pings(d, "c1", "10.251.70.12"), timeout=5)
    d.ok("network", "acl", "rule", "add", "lxtnoping", "ingress", "action=drop",
         "protocol=icmp4")
    assert not _pings(d, "c1", "10.251.70.12")
    d.ok("network", "unset", "lxtbra0", "security.acls")
    assert "lxctl_acl_lxtbra0" not in d.sh("nft", "list", "tables").stdout
    wait_for(lambda: _pings(d, "c1", "10.251.70.12"), timeout=5)
    d.ok("network", "acl", "delete", "lxtnoping")
