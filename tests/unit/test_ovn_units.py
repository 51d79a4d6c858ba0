"""OVN pieces without OVN: ovn-nbctl argv, ACL rules as OVN matches, and a config key
two network drivers both declare."""

from __future__ import annotations

import pytest

from lxctl.config.schema import ConfigKey, ConfigSchema, Scope
from lxctl.errors import InvalidArgument, PluginError
from lxctl.public import AclRule, NetworkAcl
from lxctl_plugins.network.linux import ovn_acl, ovn_nb


def test_nbctl_chains_commands_in_one_transaction() -> None:
    argv = ovn_nb.argv("unix:/x/nb.sock", [["ls-add", "s"], ["lsp-add", "s", "p"]])
    assert argv == ["ovn-nbctl", "--db=unix:/x/nb.sock", "--timeout=10", "--no-wait",
                    "ls-add", "s", "--", "lsp-add", "s", "p"]
    assert ovn_nb.pairs("external_ids", {"k": 'a "b"'}) == ['external_ids:k="a \\"b\\""']


def test_acl_rules_render_per_port_with_precedence_and_defaults() -> None:
    acl = NetworkAcl("web", ingress=(
        AclRule("allow", protocol="tcp", destination_port="80,8000-8080",
                source="10.0.0.0/24,fd00::/64"),
        AclRule("drop", protocol="icmp4", icmp_type="8", state="logged"),
        AclRule("allow", state="disabled")), egress=(AclRule("allow"),))
    out = ovn_acl.render("p1", [acl], "reject", "drop")
    assert out == [
        ("to-lport", 1100, "allow-related",
         'outport == "p1" && tcp && (ip4.src == {10.0.0.0/24} || ip6.src == {fd00::/64})'
         " && (tcp.dst == 80 || (tcp.dst >= 8000 && tcp.dst <= 8080))", ""),
        ("to-lport", 1300, "drop", 'outport == "p1" && icmp4 && icmp4.type == 8', "web"),
        ("to-lport", 1000, "reject", 'outport == "p1" && ip', ""),
        ("from-lport", 1100, "allow-related", 'inport == "p1" && ip', ""),
        ("from-lport", 1000, "drop", 'inport == "p1" && ip', ""),
    ]
    assert ovn_acl.render("p1", []) == []  # no ACL: the port is left open


def test_a_key_two_drivers_of_one_kind_declare_is_checked_per_driver() -> None:
    def small(value: str) -> None:
        if int(value) > 10:
            raise ValueError("too big")

    schema = ConfigSchema()
    schema.add(ConfigKey("k", Scope.NETWORK, owner="network:a"))
    schema.add(ConfigKey("k", Scope.NETWORK, validate=small, owner="network:b"))
    schema.check(Scope.NETWORK, {"k": "99"}, owners=["network:a"])
    with pytest.raises(InvalidArgument, match="too big"):
        schema.check(Scope.NETWORK, {"k": "99"}, owners=["network:b"])
    with pytest.raises(InvalidArgument, match="does not use"):
        schema.check(Scope.NETWORK, {"k": "1"}, owners=["network:c"])
    with pytest.raises(PluginError, match="declared twice"):
        schema.add(ConfigKey("k", Scope.NETWORK, owner="storage:x"))


def test_acl_rules_are_checked_before_anything_is_stored() -> None:
    from lxctl.objects.network_acls import check_rule

    assert check_rule({"action": "drop", "protocol": "icmp4", "source": ""}) == {
        "action": "drop", "protocol": "icmp4", "state": "enabled"}
    for rule, message in (({"action": "accept"}, "action must be"),
                          ({"action": "allow", "colour": "red"}, "Unknown ACL rule key"),
                          ({"action": "allow", "protocol": "sctp"}, "protocol must be"),
                          ({"action": "allow", "destination_port": "80"}, "tcp or udp"),
                          ({"action": "allow", "protocol": "tcp",
                            "destination_port": "80-x"}, "not a port"),
                          ({"action": "allow", "icmp_type": "8"}, "icmp4 or icmp6"),
                          ({"action": "allow", "destination": "fd00::/129"},
                           "not an IP address")):
        with pytest.raises(InvalidArgument, match=message):
            check_rule(rule)


def test_bridge_acls_as_an_nft_table_per_nic_chain() -> None:
    from lxctl_plugins.network.linux import nft_acl

    acl = NetworkAcl("web", ingress=(
        AclRule("allow", protocol="tcp", destination_port="80,8000-8080",
                source="10.0.0.0/24,fd00::/64"),
        AclRule("drop", protocol="icmp4", icmp_type="8")), egress=(AclRule("allow"),))
    text = nft_acl.script("br0", "br0", {"00:16:3e:00:00:01": [acl], "00:16:3e:00:00:02": []},
                          "reject", "drop")
    assert text.startswith("table inet lxctl_acl_br0\ndelete table inet lxctl_acl_br0\n")
    ingress = text.split("chain ingress_0 {\n")[1].split("}\n")[0].splitlines()
    assert [line.strip() for line in ingress if line.strip()] == [
        "meta l4proto icmp icmp type 8 drop",  # drop before allow, whatever the order
        "ip saddr 10.0.0.0/24 meta l4proto tcp tcp dport { 80, 8000-8080 } return",
        "ip6 saddr fd00::/64 meta l4proto tcp tcp dport { 80, 8000-8080 } return",
        "meta nfproto { ipv4, ipv6 } reject"]
    assert "meta nfproto { ipv4, ipv6 } drop" in text.split("chain egress_0 {")[1]
    assert "ether daddr 00:16:3e:00:00:01 jump ingress_0" in text
    assert "00:16:3e:00:00:02" not in text  # a NIC without ACLs is left open
    assert nft_acl.script("br0", "br0", {"00:16:3e:00:00:02": []}).count("\n") == 2
