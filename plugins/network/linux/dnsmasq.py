"""dnsmasq per network: argv, static leases (one file per NIC in a hosts dir, which
dnsmasq re-reads by itself), the lease file, start and stop by PID file.

Each network's files live in ``<state dir>/networks/<name>/``: ``dnsmasq.pid``,
``dnsmasq.leases``, ``dnsmasq.log``, ``hosts/``. Never the host-wide lease file.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path
from typing import Any

from lxctl.public import Unavailable, run


def argv(directory: Path, bridge: str, gateway: ipaddress.IPv4Interface | None,
         ranges: list[tuple[str, str]], domain: str, lease_time: str,
         ipv6: ipaddress.IPv6Interface | None) -> list[str]:
    args = [
        "dnsmasq", "--strict-order", "--bind-interfaces", f"--interface={bridge}",
        "--except-interface=lo", "--no-ping", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", f"--domain={domain}", f"--local=/{domain}/", "--dhcp-authoritative",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        f"--dhcp-leasefile={directory / 'dnsmasq.leases'}",
        f"--dhcp-hostsdir={directory / 'hosts'}",
        f"--log-facility={directory / 'dnsmasq.log'}", "--log-dhcp",
    ]
    if gateway is not None:
        args.append(f"--listen-address={gateway.ip}")
        for start, end in ranges:
            args.append(f"--dhcp-range={start},{end},{gateway.netmask},{lease_time}")
        args.append(f"--address=/gw.{domain}/{gateway.ip}")
    if ipv6 is not None:
        args += [f"--listen-address={ipv6.ip}", "--enable-ra",
                 f"--dhcp-range=::,constructor:{bridge},ra-stateless,ra-names"]
    return args


def pid(directory: Path) -> int | None:
    try:
        value = int((directory / "dnsmasq.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{value}/comm").read_text().strip()
    except OSError:
        return None
    return value if comm == "dnsmasq" else None


async def start(directory: Path, args: list[str]) -> None:
    stop(directory)
    (directory / "hosts").mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / "hosts").chmod(0o755)
    out = await run(args, check=False, timeout=30)
    if not out.ok:
        raise Unavailable(f"dnsmasq failed to start: {out.tail() or out.returncode}")


def stop(directory: Path) -> None:
    value = pid(directory)
    if value is None:
        return
    try:
        os.kill(value, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{value}").exists():
        try:
            if Path(f"/proc/{value}/stat").read_text().split()[2] == "Z":
                break
        except OSError:
            break
        time.sleep(0.01)
    (directory / "dnsmasq.pid").unlink(missing_ok=True)


def host_file(directory: Path, project: str, instance: str, device: str) -> Path:
    return directory / "hosts" / f"{project}.{instance}.{device}"


def write_host(path: Path, hwaddr: str, address: str | None, hostname: str) -> None:
    """A static lease: MAC, optional fixed address, and the DNS name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [hwaddr] + ([address] if address else []) + [hostname]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(",".join(fields) + "\n")
    tmp.chmod(0o644)
    tmp.rename(path)


def leases(directory: Path) -> list[dict[str, Any]]:
    """The dynamic leases dnsmasq handed out (``expiry mac ip hostname clientid``)."""
    try:
        text = (directory / "dnsmasq.leases").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append({"hostname": "" if parts[3] == "*" else parts[3], "hwaddr": parts[1],
                        "address": parts[2], "type": "dynamic", "expiry": int(parts[0])})
    return out


def statics(directory: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    hosts = directory / "hosts"
    if not hosts.is_dir():
        return out
    for f in sorted(hosts.iterdir()):
        parts = f.read_text().strip().split(",")
        if len(parts) == 3:
            out.append({"hostname": parts[2], "hwaddr": parts[0], "address": parts[1],
                        "type": "static"})
    return out
