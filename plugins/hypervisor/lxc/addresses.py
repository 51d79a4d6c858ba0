"""Addresses of a container, read from /proc/<pid>/net without entering its namespace."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any


def _read(path: str) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


def _ipv6(pid: int) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    try:
        lines = _read(f"/proc/{pid}/net/if_inet6")
    except OSError:
        return out
    scopes = {"00": "global", "20": "link", "10": "local"}
    for line in lines:
        parts = line.split()
        if len(parts) < 6:
            continue
        addr = str(ipaddress.IPv6Address(bytes.fromhex(parts[0])))
        out.setdefault(parts[5], []).append({
            "family": "inet6", "address": addr, "netmask": str(int(parts[2], 16)),
            "scope": scopes.get(parts[3], "global")})
    return out


def _ipv4(pid: int) -> dict[str, list[dict[str, str]]]:
    """Local IPv4 addresses from fib_trie, matched to interfaces through the routes."""
    out: dict[str, list[dict[str, str]]] = {}
    try:
        routes = _read(f"/proc/{pid}/net/route")[1:]
        trie = _read(f"/proc/{pid}/net/fib_trie")
    except OSError:
        return out
    nets = []
    for line in routes:
        f = line.split()
        if len(f) < 8 or f[1] == "00000000":
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(f[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(f[7], 16)))
        nets.append((ipaddress.IPv4Network(f"{dest}/{mask}", strict=False), f[0]))
    local: set[str] = set()
    for i, line in enumerate(trie):
        if "/32 host LOCAL" in line and i > 0:
            local.add(trie[i - 1].split()[-1])
    for addr in sorted(local):
        ip = ipaddress.IPv4Address(addr)
        if ip.is_loopback:
            continue
        for net, iface in nets:
            if ip in net:
                out.setdefault(iface, []).append({
                    "family": "inet", "address": addr, "netmask": str(net.prefixlen),
                    "scope": "global"})
                break
    return out


def addresses(pid: int) -> dict[str, Any]:
    """``{iface: {"addresses": [...]}}`` as Incus shows them (loopback left out)."""
    result: dict[str, Any] = {}
    for source in (_ipv4(pid), _ipv6(pid)):
        for iface, addrs in source.items():
            if iface == "lo":
                continue
            result.setdefault(iface, {"addresses": []})["addresses"].extend(addrs)
    return result
