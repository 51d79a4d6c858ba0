"""A private OVN for tests: NB and SB ovsdb-servers, ovn-northd, and one chassis
(ovsdb-server + ovs-vswitchd on the userspace datapath, ovn-controller), every run, DB,
socket and log file under one directory, stopped by their pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

TOOLS = ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "ovn-nbctl")
OVN_SCHEMA = Path("/usr/share/ovn")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BRIDGE = "lxto-int"


class PrivateOvn:
    """OVN central and one chassis, every file under ``run``; ovs-vswitchd and
    ovn-controller in ``netns`` (None: the caller's namespace, already private)."""

    def __init__(self, run: Path, netns: str | None) -> None:
        self.run = run
        self.netns = netns
        self.env = {**os.environ, **{k: str(run) for k in (
            "OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR", "OVN_RUNDIR",
            "OVN_LOGDIR", "OVN_DBDIR")}}
        self.nb = f"unix:{run}/nb.sock"
        self.ovs = f"unix:{run}/db.sock"

    def sh(self, *argv: str, netns: bool = False) -> str:
        full = ["ip", "netns", "exec", self.netns, *argv] if netns and self.netns \
            else list(argv)
        r = subprocess.run(full, env=self.env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{argv}: {r.stderr}"
        return r.stdout

    def _server(self, name: str, schema: Path) -> None:
        self.sh("ovsdb-tool", "create", f"{self.run}/{name}.db", str(schema))
        self.start_server(name)

    def start_server(self, name: str) -> None:
        """The ovsdb-server of DB ``name`` (db, nb, sb), on its existing file."""
        r = self.run
        self.sh("ovsdb-server", f"{r}/{name}.db", f"--remote=punix:{r}/{name}.sock",
                f"--pidfile={r}/{name}.pid", f"--unixctl={r}/{name}.ctl",
                f"--log-file={r}/{name}.log", "--detach", "--no-chdir")

    def stop_server(self, name: str) -> None:
        self._kill([name])

    def start(self) -> None:
        r = self.run
        self._server("db", OVS_SCHEMA)
        vsctl = ["ovs-vsctl", f"--db={self.ovs}", "--timeout=10"]
        self.sh(*vsctl, "--no-wait", "init")
        self.sh("ovs-vswitchd", self.ovs, f"--pidfile={r}/vswitchd.pid",
                f"--unixctl={r}/vswitchd.ctl", f"--log-file={r}/vswitchd.log", "--detach",
                "--no-chdir", netns=True)
        self._server("nb", OVN_SCHEMA / "ovn-nb.ovsschema")
        self._server("sb", OVN_SCHEMA / "ovn-sb.ovsschema")
        self.sh("ovn-nbctl", f"--db={self.nb}", "--no-wait", "init")
        self.sh("ovn-northd", f"--ovnnb-db={self.nb}", f"--ovnsb-db=unix:{r}/sb.sock",
                f"--pidfile={r}/northd.pid", f"--unixctl={r}/northd.ctl",
                f"--log-file={r}/northd.log", "--detach", "--no-chdir")
        self.sh(*vsctl, "add-br", BRIDGE, "--", "set", "bridge", BRIDGE,
                "datapath_type=netdev", "fail_mode=secure", "other_config:disable-in-band=true")
        self.sh(*vsctl, "set", "open_vswitch", ".", "external_ids:system-id=lxto-chassis",
                f"external_ids:ovn-remote=unix:{r}/sb.sock",
                "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1",
                f"external_ids:ovn-bridge={BRIDGE}",
                "external_ids:ovn-bridge-datapath-type=netdev")
        self.sh("ovn-controller", self.ovs, f"--pidfile={r}/controller.pid",
                f"--log-file={r}/controller.log", "--detach", "--no-chdir", netns=True)

    def stop(self) -> None:
        """Every daemon by its pid file (SIGTERM, then SIGKILL)."""
        self._kill(["controller", "northd", "vswitchd", "nb", "sb", "db"])

    def _kill(self, names: list[str]) -> None:
        pids = []
        for name in names:
            try:
                pids.append(int((self.run / f"{name}.pid").read_text()))
            except (OSError, ValueError):
                continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for pid in pids:
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def settings(self) -> dict[str, str]:
        """The daemon settings (``DriverContext.settings``) that point at it."""
        return {"network.ovn.northbound_connection": self.nb,
                "network.ovs.connection": self.ovs,
                "network.ovn.integration_bridge": BRIDGE}
