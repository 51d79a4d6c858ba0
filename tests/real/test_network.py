"""Managed networks for real: each daemon runs inside a network namespace the test
creates (``ip netns exec``), with the ``lxtn`` prefix; the root namespace is compared
before and after every network test of the session (acceptance 7)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import LXCTL, LXCTLD, Daemon, OutputLines, wait_for

UDHCPC = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew) ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
"""


def _root_view() -> dict[str, str]:
    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    links = "\n".join(sorted(line.split(":")[1].strip() for line in out(
        "ip", "-o", "link").splitlines()))
    return {"links": links, "routes": out("ip", "route"), "nft": out("nft", "list", "ruleset"),
            "ip_forward": out("sysctl", "-n", "net.ipv4.ip_forward")}


@pytest.fixture(scope="session")
def root_namespace_unchanged() -> Iterator[None]:
    """Acceptance 7: ip link, ip route, nft ruleset and ip_forward of the root namespace
    are the same after the network tests as before (checked at the session's end)."""
    before = _root_view()
    yield
    after = _root_view()
    for key in before:
        assert after[key] == before[key], f"root namespace {key} changed"


class NetnsDaemon(Daemon):
    """A daemon started inside network namespace ``netns``."""

    def __init__(self, directory: Path, netns: str) -> None:
        super().__init__(directory)
        self.netns = netns

    def start(self, timeout: float = 30) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, LXCTLD],
                                         env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        r = self.cli("admin", "waitready", "--timeout", str(timeout), timeout=timeout + 5)
        assert r.returncode == 0, f"not ready: {r.stderr}\n{self.log.read_text()[-3000:]}"

    def sh(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv],
                              capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns_daemon(workdir: Path, request: pytest.FixtureRequest,
                 root_namespace_unchanged: None) -> Iterator[NetnsDaemon]:
    ns = f"lxtn-{os.getpid()}-{request.node.name[-20:].strip('[]_')}"[:40]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    d = NetnsDaemon(workdir / f"n-{request.node.name[:30]}", ns)
    try:
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        yield d
    finally:
        try:
            remove_objects(d)
        finally:
            d.cleanup()
            drop_netns(ns)


def remove_objects(d: NetnsDaemon) -> None:
    """Every instance and network of a running daemon (a test's teardown)."""
    if d.proc is not None and d.proc.poll() is None:
        names = d.cli("list", "--format", "csv", "-c", "n").stdout.split()
        if names:
            d.cli("delete", "--force", *names, timeout=120)
        for net in json.loads(d.cli("network", "list", "-f", "json").stdout or "[]"):
            d.cli("network", "delete", net["name"])


def drop_netns(ns: str) -> None:
    """Kill anything left in the namespace (a dnsmasq), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns])


def _dhcp(d: NetnsDaemon, name: str) -> str:
    d.ok("file", "push", "-", f"{name}/udhcpc.sh", "--mode", "0755", input=UDHCPC)
    d.ok("exec", name, "--", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
         "-s", "/udhcpc.sh")
    out = d.ok("exec", name, "--", "ip", "-4", "-o", "addr", "show", "eth0")
    return out.split("inet ")[1].split("/")[0]


def test_bridge_leases_dns_ping_and_static_address(netns_daemon: NetnsDaemon) -> None:
    d = netns_daemon
    d.ok("network", "create", "lxtbr0", "ipv4.address=10.251.40.1/24", "ipv4.nat=true",
         "dns.domain=lxt.test")
    assert "lxtbr0" in d.sh("ip", "-o", "link", "show", "lxtbr0").stdout
    assert "lxctl_lxtbr0" in d.sh("nft", "list", "tables").stdout  # NAT: in the netns only
    for name in ("c1", "c2"):
        d.ok("init", "bb", name)
        d.ok("network", "attach", "lxtbr0", name, "eth0")
    d.ok("config", "device", "set", "c2", "eth0", "ipv4.address=10.251.40.77")
    d.ok("config", "device", "set", "c1", "eth0", "host_name=lxtvh1", "mtu=1400",
         "hwaddr=02:00:0a:fb:28:0b")
    d.ok("start", "c1", "c2")
    host = d.sh("ip", "-o", "link", "show", "lxtvh1").stdout
    assert "mtu 1400" in host and "master lxtbr0" in host
    inside = d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth0")
    assert "mtu 1400" in inside and "02:00:0a:fb:28:0b" in inside
    ip1, ip2 = _dhcp(d, "c1"), _dhcp(d, "c2")
    assert ip2 == "10.251.40.77" and ip1.startswith("10.251.40.")
    leases = json.loads(d.ok("network", "list-leases", "lxtbr0", "-f", "json"))
    by_name = {x["hostname"]: x["address"] for x in leases}
    assert by_name.get("c1") == ip1 and by_name.get("c2") == ip2
    found = d.ok("exec", "c1", "--", "nslookup", "c2.lxt.test", "10.251.40.1")
    assert ip2 in found.split("c2.lxt.test", 1)[1]
    d.ok("exec", "c1", "--", "ping", "-c", "1", "-W", "2", ip2)
    info = d.ok("info", "c1")  # the NIC as the host sees it
    assert "Host interface: lxtvh1" in info and "MAC address: 02:00:0a:fb:28:0b" in info
    assert "Packets received: 0\n" not in info


def test_bad_input_leaves_nothing(netns_daemon: NetnsDaemon) -> None:
    d = netns_daemon
    d.ok("network", "create", "lxtbr1", "ipv4.address=10.251.41.1/24", "ipv4.nat=false")
    for args, message in (
            (("lxtbr2", "ipv4.address=10.251.41.9/25"), "overlaps network 'lxtbr1'"),
            (("lxtbr2", "ipv4.address=10.251.500.1/24"), "not an IPv4 address in CIDR"),
            (("--type", "macvlan", "lxtbr2", "parent=lxtnope0"), "Parent interface 'lxtnope0' "
             "not found"),
            (("lxtbr2", "bridge.external_interfaces=lxtnope1"), "'lxtnope1' not found")):
        r = d.cli("network", "create", *args)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert r.stderr.startswith("Error: ")
    assert d.sh("ip", "link", "show", "lxtbr2").returncode != 0  # no stray bridge
    assert "lxtbr2" not in d.sh("nft", "list", "tables").stdout
    assert not (d.dir / "networks" / "lxtbr2").exists()  # no dnsmasq files
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtbr1", "c1")
    r = d.cli("network", "delete", "lxtbr1")
    assert r.returncode == 1 and "in use by /1.0/instances/c1" in r.stderr
    assert d.sh("ip", "link", "show", "lxtbr1").returncode == 0


def test_degraded_start_waits_for_the_parent_link(netns_daemon: NetnsDaemon) -> None:
    """Acceptance 4: a macvlan network whose parent is gone at a restart is Unavailable,
    the daemon is ready, the instance without NICs runs, the other waits; the parent
    appearing brings the network up and starts it, with events on the monitor."""
    d = netns_daemon
    assert d.sh("ip", "link", "add", "lxtp0", "type", "veth", "peer", "name",
                "lxtp0b").returncode == 0
    d.ok("network", "create", "--type", "macvlan", "lxtmv", "parent=lxtp0")
    for name in ("c1", "c2"):
        d.ok("init", "bb", name, "-c", "boot.autostart=true")
    d.ok("network", "attach", "lxtmv", "c1", "eth0")
    d.ok("start", "c1", "c2")
    d.ok("admin", "shutdown")  # stops the instances, then the daemon
    assert d.proc is not None and d.proc.wait(30) == 0
    assert d.sh("ip", "link", "del", "lxtp0").returncode == 0
    d.start()
    wait_for(lambda: d.states().get("c2") == "RUNNING", timeout=30)
    assert d.states()["c1"] == "STOPPED"
    nets = {n["name"]: n for n in json.loads(d.ok("network", "list", "-f", "json"))}
    assert nets["lxtmv"]["status"] == "Unavailable"
    assert "parent interface 'lxtp0' not found" in nets["lxtmv"]["reason"]
    r = d.cli("start", "c1")
    assert r.returncode == 1 and "unavailable" in r.stderr
    r = d.cli("admin", "waitready", "--network", "--timeout", "0.5")
    assert r.returncode == 1 and "lxtmv" in r.stderr
    monitor = OutputLines(subprocess.Popen([LXCTL, "monitor", "--format", "json"],
                                           env=d.env, stdout=subprocess.PIPE))
    try:
        time.sleep(0.5)  # subscribed before the link appears
        assert d.sh("ip", "link", "add", "lxtp0", "type", "veth", "peer", "name",
                    "lxtp0b").returncode == 0
        monitor.wait_for(lambda line: "network-updated" in line, timeout=20)
        monitor.wait_for(lambda line: "instance-started" in line and "c1" in line,
                         timeout=20)
    finally:
        monitor.stop()
    d.ok("admin", "waitready", "--network", "--timeout", "10")
    wait_for(lambda: d.states().get("c1") == "RUNNING", timeout=20)


def test_macvlan_network_on_a_vlan(netns_daemon: NetnsDaemon) -> None:
    """vlan= on a macvlan network: its NICs hang off PARENT.VID, made at start and
    removed with the network; a kernel without 802.1Q refuses it, leaving nothing."""
    d = netns_daemon
    assert d.sh("ip", "link", "add", "lxtp1", "type", "veth", "peer", "name",
                "lxtp1b").returncode == 0
    r = d.cli("network", "create", "--type", "macvlan", "lxtmv1", "parent=lxtp1", "vlan=4095")
    assert r.returncode == 1 and "not a VLAN id" in r.stderr
    probe = d.sh("ip", "link", "add", "link", "lxtp1", "name", "lxtprobe", "type", "vlan",
                 "id", "9")
    d.sh("ip", "link", "del", "lxtprobe")
    r = d.cli("network", "create", "--type", "macvlan", "lxtmv1", "parent=lxtp1", "vlan=10")
    if probe.returncode != 0:
        assert r.returncode == 1 and "802.1Q VLAN (8021q) not in this kernel" in r.stderr
        assert d.sh("ip", "link", "show", "lxtp1.10").returncode != 0
        assert "lxtmv1" not in d.ok("network", "list")
        pytest.skip("802.1Q VLAN (8021q) not in this kernel")
    assert r.returncode == 0, r.stderr
    assert "vlan protocol 802.1Q id 10" in d.sh("ip", "-d", "link", "show",
                                                "lxtp1.10").stdout
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtmv1", "c1", "eth0")
    d.ok("start", "c1")
    assert "macvlan" in d.ok("exec", "c1", "--", "ip", "-d", "link", "show", "eth0")
    d.ok("delete", "--force", "c1")
    d.ok("network", "delete", "lxtmv1")
    assert d.sh("ip", "link", "show", "lxtp1.10").returncode != 0


def _links(d: NetnsDaemon, *args: str) -> str:
    return d.sh("ip", "-o", "link", "show", *args).stdout


def test_nic_hotplug_into_a_running_container(netns_daemon: NetnsDaemon) -> None:
    """config device add / network attach on a running container put a new veth end in
    its namespace (name, MAC, MTU, up); remove takes it out; a failed one leaves
    nothing; the NICs are there again at the next start."""
    d = netns_daemon
    d.ok("network", "create", "lxtbr3", "ipv4.address=10.251.43.1/24", "ipv4.nat=false")
    d.ok("init", "bb", "c1")
    d.ok("start", "c1")
    d.ok("config", "device", "add", "c1", "eth1", "nic", "network=lxtbr3", "name=eth1",
         "mtu=1400", "hwaddr=02:00:0a:fb:2b:0b", "host_name=lxtvh3")
    inside = d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth1")
    assert "mtu 1400" in inside and "02:00:0a:fb:2b:0b" in inside and ",UP" in inside
    assert "master lxtbr3" in _links(d, "lxtvh3") and "mtu 1400" in _links(d, "lxtvh3")
    d.ok("file", "push", "-", "c1/udhcpc.sh", "--mode", "0755", input=UDHCPC)
    d.ok("exec", "c1", "--", "udhcpc", "-i", "eth1", "-f", "-q", "-n", "-t", "5", "-T",
         "1", "-s", "/udhcpc.sh")
    d.ok("exec", "c1", "--", "ping", "-c", "1", "-W", "2", "10.251.43.1")
    d.ok("network", "attach", "lxtbr3", "c1", "eth2")
    assert "eth2" in d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth2")
    ports = _links(d, "master", "lxtbr3")
    r = d.cli("config", "device", "add", "c1", "eth3", "nic", "network=lxtbr3", "name=eth1")
    assert r.returncode == 1 and "already has an interface 'eth1'" in r.stderr
    assert _links(d, "master", "lxtbr3") == ports  # nothing left of the failed one
    assert "eth3" not in d.ok("config", "device", "list", "c1")
    d.ok("config", "device", "remove", "c1", "eth1")
    r = d.cli("exec", "c1", "--", "ip", "link", "show", "eth1")
    assert r.returncode != 0 and "lxtvh3" not in _links(d)
    d.ok("restart", "c1", "--force")
    assert "eth2" in d.ok("exec", "c1", "--", "ip", "-o", "link", "show", "eth2")
    d.ok("network", "detach", "lxtbr3", "c1", "eth2")
    assert d.cli("exec", "c1", "--", "ip", "link", "show", "eth2").returncode != 0
    assert _links(d, "master", "lxtbr3") == ""


def test_nic_limits_on_the_host_end(netns_daemon: NetnsDaemon) -> None:
    """limits.ingress is a tbf root qdisc on the NIC's host end (at start and at
    hot-plug); limits.egress an ingress police filter where the kernel has tc
    policing, else a clear refusal (next test); a bad bandwidth is refused."""
    d = netns_daemon
    d.ok("network", "create", "lxtbr4", "ipv4.address=10.251.44.1/24", "ipv4.nat=false")
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtbr4", "c1", "eth0")
    d.ok("config", "device", "set", "c1", "eth0", "host_name=lxtvh4",
         "limits.ingress=10Mbit")
    d.ok("start", "c1")
    qdisc = d.sh("tc", "qdisc", "show", "dev", "lxtvh4").stdout
    assert "tbf 1: root" in qdisc and "rate 10Mbit" in qdisc
    d.ok("config", "device", "add", "c1", "eth1", "nic", "network=lxtbr4", "name=eth1",
         "host_name=lxtvh5", "limits.ingress=512kbit")
    assert "rate 512Kbit" in d.sh("tc", "qdisc", "show", "dev", "lxtvh5").stdout
    r = d.cli("config", "device", "add", "c1", "eth2", "nic", "network=lxtbr4",
              "name=eth2", "limits.ingress=fast")
    assert r.returncode == 1 and "is not a bandwidth" in r.stderr


def test_nic_egress_limit_is_policed(netns_daemon: NetnsDaemon) -> None:
    """Where the kernel lacks tc policing (probed with tc on a veth of the test's own)
    the start is refused, naming it, and the container stays stopped."""
    d = netns_daemon
    d.ok("network", "create", "lxtbr4", "ipv4.address=10.251.44.1/24", "ipv4.nat=false")
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtbr4", "c1", "eth0")
    d.ok("config", "device", "set", "c1", "eth0", "host_name=lxtvh4", "limits.egress=2Mbit")
    d.sh("ip", "link", "add", "lxtpol0", "type", "veth", "peer", "name", "lxtpol1")
    d.sh("tc", "qdisc", "add", "dev", "lxtpol0", "ingress")
    police = d.sh("tc", "filter", "add", "dev", "lxtpol0", "parent", "ffff:", "protocol",
                  "all", "u32", "match", "u32", "0", "0", "police", "rate", "2mbit", "burst",
                  "16k", "drop")
    d.sh("ip", "link", "del", "lxtpol0")
    r = d.cli("start", "c1")
    if police.returncode != 0:
        assert r.returncode == 1 and "limits.egress needs tc policing" in r.stderr
        assert d.states()["c1"] == "STOPPED"
        pytest.skip("tc policing (cls_u32, act_police) not in this kernel")
    assert r.returncode == 0, r.stderr
    shown = d.sh("tc", "filter", "show", "dev", "lxtvh4", "parent", "ffff:").stdout
    assert "police" in shown and "rate 2Mbit" in shown
