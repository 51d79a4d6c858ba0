"""OVN networks for real (issue 8, acceptance 3): a private OVN (NB and SB
ovsdb-servers, ovn-northd, ovn-controller on a userspace ovsdb-server+ovs-vswitchd,
every run, DB and log file under one directory of the test) and the daemon, both inside
a network namespace the test creates (``lxto`` prefix); all of it stopped and removed
even when the test fails, and the root namespace compared before and after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import wait_for
from test_network import UDHCPC, NetnsDaemon, root_namespace_unchanged

sys.path.insert(0, str(Path(__file__).parents[1] / "conformance"))
from ovn_private import BRIDGE, TOOLS, PrivateOvn

__all__ = ["root_namespace_unchanged"]  # the session fixture, used here too

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="OVN / Open vSwitch not installed (ovn-central, ovn-host, openvswitch-switch)")


@pytest.fixture
def ovn_daemon(workdir: Path, request: pytest.FixtureRequest,
               root_namespace_unchanged: None) -> Iterator[tuple[NetnsDaemon, PrivateOvn]]:
    ns = f"lxto-{os.getpid()}-{request.node.name[-16:].strip('[]_')}"[:40]
    run = Path(tempfile.mkdtemp(prefix="lxto-"))  # short: unix socket paths
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    ovn = PrivateOvn(run, ns)
    d = NetnsDaemon(workdir / f"o-{request.node.name[:30]}", ns)
    try:
        ovn.start()
        d.dir.mkdir(parents=True, exist_ok=True)
        (d.dir / "lxctld.toml").write_text(
            f'[network.ovn]\nnorthbound_connection = "{ovn.nb}"\n'
            f'integration_bridge = "{BRIDGE}"\n[network.ovs]\nconnection = "{ovn.ovs}"\n')
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        yield d, ovn
    finally:
        try:
            if d.proc is not None and d.proc.poll() is None:
                names = d.cli("list", "--format", "csv", "-c", "n").stdout.split()
                if names:
                    d.cli("delete", "--force", *names, timeout=120)
                for net in json.loads(d.cli("network", "list", "-f", "json").stdout or "[]"):
                    d.cli("network", "delete", net["name"])
        finally:
            d.cleanup()
            ovn.stop()
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                      text=True).stdout.split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns])
            shutil.rmtree(run, ignore_errors=True)


def _dhcp(d: NetnsDaemon, name: str) -> str:
    d.ok("file", "push", "-", f"{name}/udhcpc.sh", "--mode", "0755", input=UDHCPC)
    d.ok("exec", name, "--", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T",
         "1", "-s", "/udhcpc.sh")
    out = d.ok("exec", name, "--", "ip", "-4", "-o", "addr", "show", "eth0")
    return out.split("inet ")[1].split("/")[0]


def _pings(d: NetnsDaemon, src: str, dst: str) -> bool:
    return d.cli("exec", src, "--", "ping", "-c", "1", "-W", "1", dst).returncode == 0


def test_ovn_network_dhcp_ping(ovn_daemon: tuple[NetnsDaemon, PrivateOvn]) -> None:
    d, ovn = ovn_daemon
    d.ok("network", "create", "lxtovn0", "--type", "ovn", "ipv4.address=10.251.60.1/24")
    switches = ovn.sh("ovn-nbctl", f"--db={ovn.nb}", "ls-list")
    assert "lxtovn0" in switches
    for name in ("c1", "c2"):
        d.ok("init", "bb", name)
        d.ok("network", "attach", "lxtovn0", name, "eth0")
    d.ok("config", "device", "set", "c2", "eth0", "ipv4.address=10.251.60.77")
    d.ok("start", "c1", "c2")
    inside = d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth0")
    assert "mtu 1442" in inside
    ports = ovn.sh("ovs-vsctl", f"--db={ovn.ovs}", "list-ports", BRIDGE).split()
    assert len(ports) == 2
    ids = ovn.sh("ovs-vsctl", f"--db={ovn.ovs}", "get", "interface", ports[0], "external_ids")
    assert "iface-id" in ids and "lxtovn0" in ids
    ip1, ip2 = _dhcp(d, "c1"), _dhcp(d, "c2")  # OVN's native DHCP
    assert ip2 == "10.251.60.77" and ip1.startswith("10.251.60.") and ip1 != ip2
    wait_for(lambda: _pings(d, "c1", ip2), timeout=10)
    assert _pings(d, "c2", "10.251.60.1")  # the logical router's gateway address
    # TCP needs the TX checksum offload off on the container's end (userspace datapath)
    d.ok("exec", "c2", "--", "sh", "-c",
         "head -c 200000 /dev/zero | nc -l -p 8080 >/dev/null 2>&1 &")
    got = d.ok("exec", "c1", "--", "timeout", "10", "sh", "-c",
               f"sleep 2 | nc {ip2} 8080 | wc -c")
    assert got.strip() == "200000"
    leases = {x["hostname"]: x["address"] for x in json.loads(
        d.ok("network", "list-leases", "lxtovn0", "-f", "json"))}
    assert leases.get("c1") == ip1 and leases.get("c2") == ip2
    d.ok("network", "attach", "lxtovn0", "c1", "eth1")  # hot-plugged while it runs
    assert "mtu 1442" in d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth1")
    assert len(ovn.sh("ovs-vsctl", f"--db={ovn.ovs}", "list-ports", BRIDGE).split()) == 3
    d.ok("network", "detach", "lxtovn0", "c1", "eth1")
    assert len(ovn.sh("ovs-vsctl", f"--db={ovn.ovs}", "list-ports", BRIDGE).split()) == 2
    # a daemon restart: the NICs of the instances that ran on are adopted, so that their
    # stop takes the ports away (they were left behind, with their logical ports)
    d.terminate()
    d.start()
    hosts = {line.split(": ")[1] for name in ("c1", "c2")
             for line in d.ok("info", name).splitlines() if "Host interface: " in line}
    assert hosts == set(ports)
    assert _pings(d, "c1", ip2)
    d.ok("stop", "c1", "c2", "--force")
    assert ovn.sh("ovs-vsctl", f"--db={ovn.ovs}", "list-ports", BRIDGE).split() == []
    left = ovn.sh("ovn-nbctl", f"--db={ovn.nb}", "lsp-list", _switch(ovn, "lxtovn0"))
    assert [line.endswith("-router)") for line in left.splitlines()] == [True]


def test_ovn_acl_drops_icmp_and_removing_it_restores(
        ovn_daemon: tuple[NetnsDaemon, PrivateOvn]) -> None:
    d, ovn = ovn_daemon
    d.ok("network", "create", "lxtovn1", "--type", "ovn", "ipv4.address=10.251.61.1/24")
    for name, ip in (("c1", "10.251.61.11"), ("c2", "10.251.61.12")):
        d.ok("init", "bb", name)
        d.ok("network", "attach", "lxtovn1", name, "eth0")
        d.ok("config", "device", "set", name, "eth0", f"ipv4.address={ip}")
    d.ok("start", "c1", "c2")
    for name in ("c1", "c2"):
        _dhcp(d, name)
    wait_for(lambda: _pings(d, "c1", "10.251.61.12"), timeout=10)

    d.ok("network", "acl", "create", "lxtnoicmp", "--description", "no ping")
    d.ok("network", "acl", "rule", "add", "lxtnoicmp", "ingress", "action=drop",
         "protocol=icmp4")
    d.ok("network", "acl", "rule", "add", "lxtnoicmp", "ingress", "action=allow")
    d.ok("network", "acl", "rule", "add", "lxtnoicmp", "egress", "action=allow")
    for args, message in (
            (("rule", "add", "lxtnoicmp", "ingress", "action=bogus"), "action must be"),
            (("rule", "add", "lxtnoicmp", "egress", "action=allow", "protocol=icmp4",
              "destination_port=80"), "needs protocol=tcp or udp"),
            (("rule", "add", "lxtnoicmp", "egress", "action=allow", "source=10.0.0.300"),
             "not an IP address")):
        r = d.cli("network", "acl", *args)
        assert r.returncode == 1 and r.stderr.startswith("Error: ") and message in r.stderr
    shown = json.loads(d.ok("query", "network_acl.get", '{"name": "lxtnoicmp"}'))
    assert len(shown["ingress"]) == 2 and len(shown["egress"]) == 1  # the bad ones: none
    r = d.cli("network", "set", "lxtovn1", "security.acls=lxtnope")
    assert r.returncode == 1 and "network ACL 'lxtnope' not found" in r.stderr

    d.ok("network", "set", "lxtovn1", "security.acls=lxtnoicmp")
    acls = ovn.sh("ovn-nbctl", f"--db={ovn.nb}", "acl-list", _switch(ovn, "lxtovn1"))
    assert "icmp4" in acls and "drop" in acls
    wait_for(lambda: not _pings(d, "c1", "10.251.61.12"), timeout=10)
    assert not _pings(d, "c2", "10.251.61.11")
    got = d.ok("exec", "c2", "--", "sh", "-c",  # the allow rules: TCP still passes
               "nc -l -p 8081 -e echo lxto-allowed >/dev/null 2>&1 &")
    got = d.ok("exec", "c1", "--", "timeout", "10", "sh", "-c",
               "sleep 1 | nc 10.251.61.12 8081")
    assert "lxto-allowed" in got
    r = d.cli("network", "acl", "delete", "lxtnoicmp")
    assert r.returncode == 1 and "in use by /1.0/networks/lxtovn1" in r.stderr

    d.ok("network", "acl", "rule", "remove", "lxtnoicmp", "ingress", "action=drop")
    wait_for(lambda: _pings(d, "c1", "10.251.61.12"), timeout=10)  # the rule removed
    d.ok("network", "acl", "rule", "add", "lxtnoicmp", "ingress", "action=drop",
         "protocol=icmp4", "state=logged")
    wait_for(lambda: not _pings(d, "c1", "10.251.61.12"), timeout=10)
    log = ovn.run / "controller.log"  # a logged rule: ovn-controller logs its drops
    wait_for(lambda: 'name="lxtnoicmp", verdict=drop' in log.read_text(), timeout=5)
    d.ok("network", "unset", "lxtovn1", "security.acls")
    wait_for(lambda: _pings(d, "c1", "10.251.61.12"), timeout=10)  # the ACL removed
    d.ok("stop", "c2", "--force")
    d.ok("network", "acl", "create", "lxtnoicmp2")  # named by one NIC only
    d.ok("network", "acl", "rule", "add", "lxtnoicmp2", "ingress", "action=drop",
         "protocol=icmp4")
    d.ok("network", "acl", "rule", "add", "lxtnoicmp2", "egress", "action=allow")
    d.ok("config", "device", "set", "c2", "eth0", "security.acls=lxtnoicmp2")
    r = d.cli("network", "acl", "delete", "lxtnoicmp2")
    assert r.returncode == 1 and "in use by /1.0/instances/c2" in r.stderr
    d.ok("start", "c2")
    _dhcp(d, "c2")
    wait_for(lambda: _pings(d, "c2", "10.251.61.1"), timeout=10)  # its egress is allowed
    assert not _pings(d, "c1", "10.251.61.12")
    d.ok("stop", "c2", "--force")
    d.ok("config", "device", "unset", "c2", "eth0", "security.acls")
    d.ok("start", "c2")
    _dhcp(d, "c2")
    wait_for(lambda: _pings(d, "c1", "10.251.61.12"), timeout=10)
    assert "lxtnoicmp2" in d.ok("network", "acl", "list")
    d.ok("network", "acl", "delete", "lxtnoicmp", "lxtnoicmp2")
    assert ovn.sh("ovn-nbctl", f"--db={ovn.nb}", "acl-list",
                  _switch(ovn, "lxtovn1")).strip() == ""


def _switch(ovn: PrivateOvn, network: str) -> str:
    """The logical switch the daemon made for ``network``."""
    names = [line.split("(")[1].rstrip(")") for line in ovn.sh(
        "ovn-nbctl", f"--db={ovn.nb}", "ls-list").splitlines() if "(" in line]
    return next(n for n in names if n.endswith(f"-{network}"))


def test_unreachable_northbound_db_at_start_is_unavailable_then_retried(
        ovn_daemon: tuple[NetnsDaemon, PrivateOvn]) -> None:
    """Degraded start: the NB DB down at a restart makes the OVN network Unavailable
    with the reason (the daemon is ready, the instance on it waits); the retry loop
    brings both up once the DB answers again, without a restart."""
    d, ovn = ovn_daemon
    d.ok("network", "create", "lxtovn2", "--type", "ovn", "ipv4.address=10.251.62.1/24")
    d.ok("init", "bb", "c1", "-c", "boot.autostart=true")
    d.ok("init", "bb", "c2", "-c", "boot.autostart=true")
    d.ok("network", "attach", "lxtovn2", "c1", "eth0")
    d.ok("start", "c1", "c2")
    d.ok("admin", "shutdown")
    assert d.proc is not None and d.proc.wait(30) == 0
    ovn.stop_server("nb")
    with open(d.dir / "lxctld.toml", "a") as f:
        f.write("[retry]\nmax_interval = 1.0\n")
    d.start()
    wait_for(lambda: d.states().get("c2") == "RUNNING", timeout=30)
    nets = {n["name"]: n for n in json.loads(d.ok("network", "list", "-f", "json"))}
    assert nets["lxtovn2"]["status"] == "Unavailable"
    assert f"OVN northbound DB {ovn.nb} unreachable" in nets["lxtovn2"]["reason"]
    assert d.states()["c1"] == "STOPPED"
    ovn.start_server("nb")
    d.ok("admin", "waitready", "--network", "--timeout", "15")
    wait_for(lambda: d.states().get("c1") == "RUNNING", timeout=20)


def test_ovn_network_reaches_its_uplink_bridge_through_the_router(
        ovn_daemon: tuple[NetnsDaemon, PrivateOvn]) -> None:
    d, ovn = ovn_daemon
    r = d.cli("network", "create", "lxtovn4", "--type", "ovn", "network=lxtnope0")
    assert r.returncode == 1 and "uplink interface 'lxtnope0' not found" in r.stderr
    d.ok("network", "create", "lxtup0", "ipv4.address=10.251.63.1/24", "ipv4.nat=false")
    d.ok("network", "create", "lxtovn3", "--type", "ovn", "network=lxtup0",
         "ipv4.address=10.251.64.1/24")
    up = json.loads(d.ok("query", "network.get", '{"name": "lxtovn3"}'))["config"]
    assert up["ipv4.nat"] == "true" and up["uplink.ipv4.address"].startswith("10.251.63.")
    nat = ovn.sh("ovn-nbctl", f"--db={ovn.nb}", "lr-nat-list", _switch(ovn, "lxtovn3") + "-lr")
    assert up["uplink.ipv4.address"] in nat and "10.251.64.0/24" in nat
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtovn3", "c1", "eth0")
    d.ok("start", "c1")
    assert _dhcp(d, "c1").startswith("10.251.64.")
    d.ok("exec", "c1", "--", "ip", "route", "add", "default", "via", "10.251.64.1")
    wait_for(lambda: _pings(d, "c1", "10.251.63.1"), timeout=15)  # the uplink's address
    d.ok("delete", "--force", "c1")
    d.ok("network", "delete", "lxtovn3")  # the last user of the uplink: its plumbing goes
    vsctl = ("ovs-vsctl", f"--db={ovn.ovs}")
    assert ovn.sh(*vsctl, "list-br").split() == [BRIDGE]
    assert "ovn-bridge-mappings" not in ovn.sh(*vsctl, "get", "open_vswitch", ".",
                                                "external_ids")
    assert "lxu" not in d.sh("ip", "-o", "link").stdout
