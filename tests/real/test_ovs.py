"""Open vSwitch bridges for real (issue 8, acceptance 2): a private ovsdb-server and
ovs-vswitchd (every run, DB and log file under one directory of the test) and the
daemon, both inside a network namespace the test creates (``lxtv`` prefix); all of it
stopped and removed even when the test fails, the root namespace compared before and
after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import wait_for
from test_network import (
    UDHCPC,
    NetnsDaemon,
    drop_netns,
    remove_objects,
    root_namespace_unchanged,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "conformance"))
from ovn_private import OVS_SCHEMA, PrivateOvn

__all__ = ["root_namespace_unchanged"]  # the session fixture, used here too

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl")),
    reason="Open vSwitch not installed (openvswitch-switch)")


class PrivateOvs(PrivateOvn):
    """Only the switch of the private OVN: ovsdb-server and ovs-vswitchd."""

    def start(self) -> None:
        r = self.run
        self._server("db", OVS_SCHEMA)
        self.sh("ovs-vsctl", f"--db={self.ovs}", "--timeout=10", "--no-wait", "init")
        self.sh("ovs-vswitchd", self.ovs, f"--pidfile={r}/vswitchd.pid",
                f"--unixctl={r}/vswitchd.ctl", f"--log-file={r}/vswitchd.log", "--detach",
                "--no-chdir", netns=True)

    def vsctl(self, *args: str) -> str:
        return self.sh("ovs-vsctl", f"--db={self.ovs}", "--timeout=10", *args).strip()


@pytest.fixture
def ovs_daemon(workdir: Path, request: pytest.FixtureRequest,
               root_namespace_unchanged: None) -> Iterator[tuple[NetnsDaemon, PrivateOvs]]:
    ns = f"lxtv-{os.getpid()}-{request.node.name[-16:].strip('[]_')}"[:40]
    run = Path(tempfile.mkdtemp(prefix="lxtv-"))  # short: unix socket paths
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    ovs = PrivateOvs(run, ns)
    d = NetnsDaemon(workdir / f"v-{request.node.name[:30]}", ns)
    try:
        ovs.start()
        d.dir.mkdir(parents=True, exist_ok=True)
        (d.dir / "lxctld.toml").write_text(f'[network.ovs]\nconnection = "{ovs.ovs}"\n')
        d.start()
        d.ok("image", "build", "busybox", "--alias", "bb")
        yield d, ovs
    finally:
        try:
            remove_objects(d)
        finally:
            d.cleanup()
            ovs.stop()
            drop_netns(ns)
            shutil.rmtree(run, ignore_errors=True)


def _pings(d: NetnsDaemon, src: str, dst: str) -> bool:
    return d.cli("exec", src, "--", "ping", "-c", "1", "-W", "1", dst).returncode == 0


def test_ovs_bridge_dhcp_and_vlans_isolate(ovs_daemon: tuple[NetnsDaemon, PrivateOvs]
                                           ) -> None:
    d, ovs = ovs_daemon
    d.ok("network", "create", "lxtvbr0", "bridge.driver=openvswitch",
         "ipv4.address=10.251.70.1/24", "ipv4.nat=false")
    assert ovs.vsctl("list-br").split() == ["lxtvbr0"]
    assert ovs.vsctl("get", "bridge", "lxtvbr0", "datapath_type") == "netdev"
    assert "10.251.70.1/24" in d.sh("ip", "-o", "addr", "show", "lxtvbr0").stdout
    plain = {"c0": None, "c1": "100", "c2": "100", "c3": "200"}
    for name, vlan in plain.items():
        d.ok("init", "bb", name)
        d.ok("network", "attach", "lxtvbr0", name, "eth0")
        if vlan:
            d.ok("config", "device", "set", name, "eth0", f"vlan={vlan}")
    d.ok("start", *plain)
    ports = ovs.vsctl("list-ports", "lxtvbr0").split()
    assert len(ports) == 4
    tags = {ovs.vsctl("get", "port", p, "tag") for p in ports}
    assert tags == {"[]", "100", "200"}
    # the untagged NIC: DHCP from dnsmasq on the OVS bridge's own port
    d.ok("file", "push", "-", "c0/udhcpc.sh", "--mode", "0755", input=UDHCPC)
    d.ok("exec", "c0", "--", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T",
         "1", "-s", "/udhcpc.sh")
    assert "10.251.70." in d.ok("exec", "c0", "--", "ip", "-4", "-o", "addr", "show",
                                "eth0")
    assert _pings(d, "c0", "10.251.70.1")
    # tagged NICs: one subnet, addresses by hand; VLAN 100 reaches itself only
    for n, name in enumerate(("c1", "c2", "c3")):
        d.ok("exec", name, "--", "ip", "addr", "add", f"192.168.77.{n + 11}/24", "dev",
             "eth0")
    wait_for(lambda: _pings(d, "c1", "192.168.77.12"), timeout=10)
    assert not _pings(d, "c1", "192.168.77.13") and not _pings(d, "c3", "192.168.77.12")
    assert not _pings(d, "c1", "10.251.70.1")  # nor the untagged bridge port
    # TCP too (TX checksum offload off on the container's end, userspace datapath)
    d.ok("exec", "c2", "--", "sh", "-c",
         "head -c 200000 /dev/zero | nc -l -p 8080 >/dev/null 2>&1 &")
    got = d.ok("exec", "c1", "--", "timeout", "10", "sh", "-c",
               "sleep 2 | nc 192.168.77.12 8080 | wc -c")
    assert got.strip() == "200000"
    # hot-plug into a running container: an OVS port tagged 100, then taken out again
    d.ok("init", "bb", "c4")
    d.ok("start", "c4")
    d.ok("config", "device", "add", "c4", "eth0", "nic", "network=lxtvbr0", "vlan=100",
         "mtu=1400")
    assert "mtu 1400" in d.ok("exec", "c4", "--", "ip", "-o", "link", "show", "eth0")
    port = (set(ovs.vsctl("list-ports", "lxtvbr0").split()) - set(ports)).pop()
    assert ovs.vsctl("get", "port", port, "tag") == "100"
    d.ok("exec", "c4", "--", "ip", "addr", "add", "192.168.77.14/24", "dev", "eth0")
    wait_for(lambda: _pings(d, "c4", "192.168.77.11"), timeout=10)
    assert not _pings(d, "c4", "192.168.77.13")
    d.ok("config", "device", "remove", "c4", "eth0")
    assert d.cli("exec", "c4", "--", "ip", "link", "show", "eth0").returncode != 0
    assert sorted(ovs.vsctl("list-ports", "lxtvbr0").split()) == sorted(ports)
    assert d.sh("ip", "link", "show", port).returncode != 0  # the pair is gone
    d.ok("delete", "--force", "c4")
    d.ok("stop", "--force", *plain)
    assert ovs.vsctl("list-ports", "lxtvbr0") == ""
    d.ok("delete", *plain)
    d.ok("network", "delete", "lxtvbr0")
    assert ovs.vsctl("list-br") == ""
    assert d.sh("ip", "link", "show", "lxtvbr0").returncode != 0


def test_a_restarted_daemon_knows_the_nics_of_running_instances(
        ovs_daemon: tuple[NetnsDaemon, PrivateOvs]) -> None:
    """The daemon re-adopts the NICs of the instances that ran on through its restart:
    their host side shows in ``info``, and a stop after the restart takes the OVS port
    away (it was left behind, on a bridge that then could not be deleted cleanly)."""
    d, ovs = ovs_daemon
    d.ok("network", "create", "lxtvbr1", "bridge.driver=openvswitch",
         "ipv4.address=10.251.71.1/24", "ipv4.nat=false")
    d.ok("init", "bb", "c1")
    d.ok("network", "attach", "lxtvbr1", "c1", "eth0")
    d.ok("start", "c1")
    port = ovs.vsctl("list-ports", "lxtvbr1")
    assert port.startswith("veth")
    d.terminate()
    d.start()
    assert d.ok("list", "c1", "-c", "s", "-f", "csv").strip() == "RUNNING"
    assert f"Host interface: {port}" in d.ok("info", "c1")
    d.ok("stop", "c1", "--force")
    assert ovs.vsctl("list-ports", "lxtvbr1") == ""
    assert d.sh("ip", "link", "show", port).returncode != 0
    d.ok("delete", "c1")
    d.ok("network", "delete", "lxtvbr1")
