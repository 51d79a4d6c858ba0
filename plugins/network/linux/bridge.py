"""The ``bridge`` network driver: a Linux bridge named after the network (pyroute2), an
address on it (``ipv4.address``: ``auto`` picks a free 10.x.y.0/24, or a CIDR, or
``none``), dnsmasq for DHCP and DNS (``NAME.<dns.domain>``; a static lease per NIC from
its ``ipv4.address``), NAT through an nftables table of its own (``ipv4.nat``),
``bridge.mtu``, ``bridge.hwaddr`` and ``bridge.external_interfaces``; network ACLs
(``security.acls`` on the network and its NICs) as an nftables table (``nft_acl``).

``bridge.driver=openvswitch`` makes the switch an Open vSwitch bridge instead
(``ovs_bridge``), the rest unchanged; its NICs' ``vlan=`` is the OVS port's tag. NICs
with ``vlan=`` on a Linux bridge need the kernel's bridge VLAN filtering (refused,
naming it, where the kernel lacks it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import trio

from lxctl.public import (
    ConfigKey,
    DriverContext,
    InstanceRecord,
    InvalidArgument,
    KeyType,
    NetworkAcl,
    NetworkInfo,
    NetworkRecord,
    NetworkState,
    NetworkStatus,
    NicDevice,
    Scope,
    Unavailable,
    is_true,
    netlink,
    run,
)

from . import dnsmasq, links, nft_acl, ovn_acl, ovs_bridge

_N = Scope.NETWORK
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", re.I)
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")


def _check_mac(value: str) -> None:
    if not _MAC.fullmatch(value):
        raise ValueError(f"{value!r} is not a MAC address")


def _check_mtu(value: str) -> None:
    if not value.isdigit() or not 68 <= int(value) <= 65535:
        raise ValueError("an MTU is a number from 68 to 65535")


def _check_driver(value: str) -> None:
    if value not in ("native", "openvswitch"):
        raise ValueError(f"{value!r}: the bridge driver is native or openvswitch")


def _check_ipv4(value: str) -> None:
    if value in ("auto", "none", ""):
        return
    parse_ipv4(value)


def _check_ipv6(value: str) -> None:
    if value in ("none", ""):
        return
    try:
        iface = ipaddress.IPv6Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv6 address in CIDR notation") from None
    if "/" not in value:
        raise ValueError(f"{value!r} lacks its prefix length (e.g. fd42::1/64)")
    del iface


def parse_ipv4(value: str) -> ipaddress.IPv4Interface:
    """A gateway address with its prefix (10.0.3.1/24): the network's address."""
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address in CIDR notation "
                         "(e.g. 10.0.3.1/24)") from None
    if "/" not in value:
        raise ValueError(f"{value!r} lacks its prefix length (e.g. 10.0.3.1/24)")
    net = iface.network
    if net.prefixlen > 30:
        raise ValueError(f"{value!r}: the subnet is too small for DHCP (at most /30)")
    if iface.ip in (net.network_address, net.broadcast_address):
        raise ValueError(f"{value!r}: the gateway must be a host address of {net}, not "
                         "its network or broadcast address")
    return iface


def _check_ranges(value: str) -> None:
    for part in value.split(","):
        bits = part.strip().split("-")
        if len(bits) != 2:
            raise ValueError(f"{part!r}: a range is FIRST-LAST")
        for b in bits:
            ipaddress.IPv4Address(b.strip())


BRIDGE_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("ipv4.address", _N, validate=_check_ipv4, live=True,
              doc="The bridge's IPv4 address with its prefix (CIDR), auto or none"),
    ConfigKey("ipv4.dhcp", _N, KeyType.BOOL, "true", live=True,
              doc="Whether dnsmasq hands out addresses"),
    ConfigKey("ipv4.dhcp.ranges", _N, validate=_check_ranges, live=True,
              doc="Ranges to hand out (FIRST-LAST, comma separated; default: the subnet)"),
    ConfigKey("ipv4.dhcp.expiry", _N, default="1h", live=True, doc="Lease time"),
    ConfigKey("ipv4.nat", _N, KeyType.BOOL, live=True,
              doc="Masquerade traffic leaving the subnet (default: true for auto)"),
    ConfigKey("ipv6.address", _N, validate=_check_ipv6, live=True,
              doc="The bridge's IPv6 address with its prefix, or none (the default)"),
    ConfigKey("dns.domain", _N, default="lxctl", live=True,
              doc="Domain of the instances' DNS names (NAME.<dns.domain>)"),
    ConfigKey("bridge.driver", _N, default="native", validate=_check_driver,
              doc="native (Linux bridge) or openvswitch"),
    ConfigKey("bridge.mtu", _N, validate=_check_mtu, live=True, doc="The bridge's MTU"),
    ConfigKey("bridge.hwaddr", _N, validate=_check_mac, live=True,
              doc="The bridge's MAC address"),
    ConfigKey("bridge.external_interfaces", _N, live=True,
              doc="Host interfaces to add to the bridge (comma separated)"),
    *ovn_acl.ACL_KEYS,  # rendered by nftables here (nft_acl)
)


def stable_mac(*parts: str) -> str:
    """A MAC in Incus's 00:16:3e prefix, stable for the same instance and device."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def host_veth(inst: InstanceRecord, device: str) -> str:
    digest = hashlib.sha256(f"{inst.project}/{inst.name}/{device}".encode()).hexdigest()
    return f"veth{digest[:8]}"


def nft_table(name: str) -> str:
    return "lxctl_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class BridgeDriver:
    info: ClassVar[NetworkInfo] = NetworkInfo(
        name="bridge", nic_types=frozenset({"bridged"}), config_keys=BRIDGE_KEYS)

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.base = ctx.state_dir / "networks"
        self.acls: dict[tuple[str, str], Mapping[str, NetworkAcl]] = {}

    @classmethod
    def probe(cls) -> str | None:
        return None if Path("/sys/class/net").is_dir() else "no /sys/class/net (netlink)"

    def _dir(self, net: NetworkRecord) -> Path:
        return self.base / net.name

    @property
    def ovs_db(self) -> str:
        return self.ctx.settings.get("network.ovs.connection", "")

    def externals(self, net: NetworkRecord) -> list[str]:
        raw = net.config.get("bridge.external_interfaces", "")
        return [p.strip() for p in raw.split(",") if p.strip()]

    def depends_on(self, net: NetworkRecord) -> tuple[list[str], list[str]]:
        return self.externals(net), []

    # ------------------------------------------------------------------ create
    async def create(self, net: NetworkRecord) -> dict[str, str]:
        if not _IFNAME.fullmatch(net.name):
            raise InvalidArgument(f"Network name {net.name!r} is not a valid interface name "
                                  "(1-15 letters, digits, '-', '_', '.')", network=net.name)
        if await links.call(links.exists, net.name):
            raise InvalidArgument(f"An interface named {net.name!r} already exists on the "
                                  "host", network=net.name)
        for port in self.externals(net):
            if not await links.call(links.exists, port):
                raise InvalidArgument(f"bridge.external_interfaces: interface {port!r} not "
                                      "found", network=net.name)
        out: dict[str, str] = {}
        addr = net.config.get("ipv4.address", "auto")
        host = await links.call(links.host_networks)
        if addr == "auto":
            picked = _free_subnet(net.name, host)
            out["ipv4.address"] = str(picked)
            out.setdefault("ipv4.nat", net.config.get("ipv4.nat", "true"))
        elif addr != "none":
            iface = parse_ipv4(addr)
            for other in host:
                if other.overlaps(iface.network):
                    raise InvalidArgument(f"ipv4.address {addr}: the subnet overlaps {other}, "
                                          "already in use on the host", network=net.name)
        if "ipv6.address" not in net.config:
            out["ipv6.address"] = "none"
        return out

    # ------------------------------------------------------------------ up / down
    async def start(self, net: NetworkRecord) -> None:
        cfg = net.config
        gateway = self._gateway(net)
        ipv6 = self._ipv6(net)
        addresses = [str(a) for a in (gateway, ipv6) if a is not None]
        mtu = int(cfg["bridge.mtu"]) if "bridge.mtu" in cfg else None
        if _is_ovs(net):
            await ovs_bridge.start(self.ovs_db, net.name, mtu, cfg.get("bridge.hwaddr"),
                                   addresses, self.externals(net))
        else:
            try:
                await links.call(links.ensure_bridge, net.name, mtu,
                                 cfg.get("bridge.hwaddr"), addresses)
            except netlink.error() as exc:
                raise Unavailable(f"cannot set up bridge {net.name}: {exc.args[-1]}"
                                  ) from None
            missing = await links.call(links.enslave, net.name, self.externals(net))
            if missing:
                raise Unavailable(f"external interface {missing[0]!r} not found")
        await self._nat(net, gateway)
        directory = self._dir(net)
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        if (gateway is not None and is_true(cfg.get("ipv4.dhcp", "true"))) or ipv6:
            args = dnsmasq.argv(directory, net.name, gateway, self._ranges(net, gateway),
                                cfg.get("dns.domain", "lxctl"),
                                cfg.get("ipv4.dhcp.expiry", "1h"), ipv6)
            await dnsmasq.start(directory, args)
        else:
            await trio.to_thread.run_sync(dnsmasq.stop, directory)

    async def stop(self, net: NetworkRecord) -> None:
        await trio.to_thread.run_sync(dnsmasq.stop, self._dir(net))
        await run(["nft", "delete", "table", "inet", nft_acl.table(net.name)], check=False)
        await self._drop_nat(net)
        await self._drop_switch(net)

    async def _drop_switch(self, net: NetworkRecord) -> None:
        if _is_ovs(net):
            await ovs_bridge.stop(self.ovs_db, net.name)
        await links.call(links.delete, net.name)

    async def update(self, net: NetworkRecord, old_config: Mapping[str, str]) -> None:
        old = NetworkRecord(net.name, net.type, dict(old_config), project=net.project)
        if (old_config.get("ipv4.address") != net.config.get("ipv4.address")
                or old_config.get("ipv6.address") != net.config.get("ipv6.address")
                or old_config.get("bridge.external_interfaces")
                != net.config.get("bridge.external_interfaces")):
            await trio.to_thread.run_sync(dnsmasq.stop, self._dir(net))
            await self._drop_nat(old)
            await self._drop_switch(net)
        await self.start(net)

    async def delete(self, net: NetworkRecord) -> None:
        await self.stop(net)
        directory = self._dir(net)
        await trio.to_thread.run_sync(_rmtree, directory)

    async def state(self, net: NetworkRecord) -> NetworkState:
        if await links.call(links.exists, net.name):
            return NetworkState(NetworkStatus.CREATED)
        return NetworkState(NetworkStatus.PENDING, f"bridge {net.name} is not up")

    # ------------------------------------------------------------------ NICs
    def _nic(self, net: NetworkRecord, inst: InstanceRecord, device: str,
             config: Mapping[str, str]) -> NicDevice:
        """The NIC of the device's config on ``net`` (checked; nothing made yet)."""
        gateway = self._gateway(net)
        address = config.get("ipv4.address")
        if address:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                raise InvalidArgument(f"Device {device!r}: ipv4.address {address!r} is not "
                                      "an IPv4 address", device=device) from None
            if gateway is None or ip not in gateway.network or ip == gateway.ip:
                raise InvalidArgument(
                    f"Device {device!r}: ipv4.address {address} is not a free host address "
                    f"of network {net.name!r} ({gateway.network if gateway else 'none'})",
                    device=device)
        vlan = _vlan(device, config.get("vlan"))
        if vlan is not None and not _is_ovs(net) and not Path(
                f"/sys/class/net/{net.name}/bridge/vlan_filtering").exists():
            raise InvalidArgument(
                f"Device {device!r}: vlan= on a Linux bridge needs the kernel's 802.1Q VLAN "
                "filtering (CONFIG_VLAN_8021Q / BRIDGE_VLAN_FILTERING), which this kernel "
                "lacks; use bridge.driver=openvswitch", device=device)
        limits = {k: parse_bitrate(device, k, config[k])
                  for k in ("limits.ingress", "limits.egress") if config.get(k)}
        mtu = config.get("mtu") or net.config.get("bridge.mtu")
        host = config.get("host_name") or host_veth(inst, device)
        nic = NicDevice(name=device, kind="veth", link=net.name, host_name=host,
                        hwaddr=config.get("hwaddr") or stable_mac(inst.project, inst.name,
                                                                  device),
                        mtu=int(mtu) if mtu else None, vlan=vlan,
                        name_in_instance=config.get("name", device),
                        limits_ingress=limits.get("limits.ingress"),
                        limits_egress=limits.get("limits.egress"))
        if _is_ovs(net):  # the container's end goes into a veth pair on the OVS port
            return dataclasses.replace(nic, kind="phys", link=ovs_bridge.peer_name(host))
        return nic

    async def plug(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                   config: Mapping[str, str]) -> NicDevice:
        nic = self._nic(net, inst, device, config)
        host, hwaddr = nic.host_name or "", nic.hwaddr or ""
        if self._gateway(net) is not None:
            path = dnsmasq.host_file(self._dir(net), inst.project, inst.name, device)
            await trio.to_thread.run_sync(dnsmasq.write_host, path, hwaddr,
                                          config.get("ipv4.address"), inst.name)
        if not _is_ovs(net):
            own = ",".join(n.strip() for n in config.get("security.acls", "").split(",")
                           if n.strip())
            await trio.to_thread.run_sync(nft_acl.remember, self._dir(net), inst.project,
                                          inst.name, device, hwaddr, own)
            if own or net.config.get("security.acls"):
                await self._render_acls(net)
            return nic
        try:
            await ovs_bridge.plug(self.ovs_db, net.name, host, nic.link or "", nic.mtu,
                                  hwaddr, nic.vlan, f"{inst.project}/{inst.name}")
        except BaseException:
            dnsmasq.host_file(self._dir(net), inst.project, inst.name, device).unlink(
                missing_ok=True)
            raise
        return nic

    async def adopt(self, net: NetworkRecord, inst: InstanceRecord, device: str,
                    config: Mapping[str, str]) -> NicDevice:
        """The NIC ``plug`` made before the daemon restarted; its host file, ACL entry
        and OVS port are still in place."""
        return self._nic(net, inst, device, config)

    async def unplug(self, net: NetworkRecord, inst: InstanceRecord, nic: NicDevice) -> None:
        path = dnsmasq.host_file(self._dir(net), inst.project, inst.name, nic.name)
        path.unlink(missing_ok=True)
        if not _is_ovs(net):
            await trio.to_thread.run_sync(nft_acl.forget, self._dir(net), inst.project,
                                          inst.name, nic.name)
            await self._render_acls(net)
        if _is_ovs(net) and nic.host_name:
            await ovs_bridge.unplug(self.ovs_db, nic.host_name)

    # ------------------------------------------------------------------ ACLs
    async def apply_acls(self, net: NetworkRecord, acls: Mapping[str, NetworkAcl]) -> None:
        """The project's ACLs changed or the network's did: load the nft table again."""
        self.acls[(net.project, net.name)] = acls
        if _is_ovs(net):
            if net.config.get("security.acls"):
                raise InvalidArgument("security.acls: network ACLs on a bridge need the "
                                      "native driver (nftables), not openvswitch",
                                      network=net.name)
            return
        await self._render_acls(net)

    async def _render_acls(self, net: NetworkRecord) -> None:
        await nft_acl.apply(self._dir(net), net, self.acls.get((net.project, net.name), {}))

    # ------------------------------------------------------------------ views
    async def leases(self, net: NetworkRecord) -> list[dict[str, Any]]:
        directory = self._dir(net)
        dynamic = await trio.to_thread.run_sync(dnsmasq.leases, directory)
        static = await trio.to_thread.run_sync(dnsmasq.statics, directory)
        seen = {lease["hwaddr"] for lease in dynamic}
        gateway = self._gateway(net)
        out = [{"hostname": f"{net.name}.gw", "hwaddr": "", "address": str(gateway.ip),
                "type": "gateway"}] if gateway else []
        return out + dynamic + [s for s in static if s["hwaddr"] not in seen]

    async def interface(self, name: str) -> dict[str, Any] | None:
        return await links.call(links.counters, name)

    # ------------------------------------------------------------------ helpers
    def _gateway(self, net: NetworkRecord) -> ipaddress.IPv4Interface | None:
        value = net.config.get("ipv4.address", "none")
        return None if value in ("none", "", "auto") else parse_ipv4(value)

    def _ipv6(self, net: NetworkRecord) -> ipaddress.IPv6Interface | None:
        value = net.config.get("ipv6.address", "none")
        if value in ("none", "", "auto"):
            return None
        if not Path("/proc/sys/net/ipv6").is_dir():
            raise Unavailable("ipv6.address: this kernel has no IPv6")
        return ipaddress.IPv6Interface(value)

    def _ranges(self, net: NetworkRecord, gateway: ipaddress.IPv4Interface | None
                ) -> list[tuple[str, str]]:
        raw = net.config.get("ipv4.dhcp.ranges")
        if raw:
            return [(a.strip(), b.strip()) for a, b in
                    (part.split("-") for part in raw.split(","))]
        if gateway is None:
            return []
        hosts = gateway.network
        first, last = hosts.network_address + 1, hosts.broadcast_address - 1
        if first == gateway.ip:
            first += 1
        return [(str(first), str(last))]

    async def _nat(self, net: NetworkRecord, gateway: ipaddress.IPv4Interface | None) -> None:
        await self._drop_nat(net)
        if gateway is None or not is_true(net.config.get("ipv4.nat", "false")):
            return
        subnet = gateway.network
        script = (f"table ip {nft_table(net.name)} {{\n"
                  "  chain postrouting {\n"
                  "    type nat hook postrouting priority srcnat; policy accept;\n"
                  f"    ip saddr {subnet} ip daddr != {subnet} masquerade\n"
                  "  }\n"
                  "  chain forward {\n"
                  "    type filter hook forward priority 0; policy accept;\n"
                  f"    iifname \"{net.name}\" accept\n"
                  f"    oifname \"{net.name}\" accept\n"
                  "  }\n"
                  "}\n")
        out = await run(["nft", "-f", "-"], stdin=script.encode(), check=False)
        if not out.ok:
            raise Unavailable(f"ipv4.nat: nft failed: {out.tail()}")
        await trio.to_thread.run_sync(_enable_forwarding)

    async def _drop_nat(self, net: NetworkRecord) -> None:
        await run(["nft", "delete", "table", "ip", nft_table(net.name)], check=False)


_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([kMGT]i?)?bit(?:/s)?", re.I)
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_bitrate(device: str, key: str, value: str) -> int:
    """A bandwidth in bit/s from Incus's units (100Mbit, 1Gbit, 512kbit, 10Mibit, or
    plain bit/s)."""
    if value.isdigit():
        return int(value)
    m = _RATE.fullmatch(value.strip())
    if not m:
        raise InvalidArgument(f"Device {device!r}: {key} {value!r} is not a bandwidth "
                              "(e.g. 100Mbit, 1Gbit)", device=device)
    return int(float(m[1]) * _RATE_UNITS[(m[2] or "").lower()])


def _is_ovs(net: NetworkRecord) -> bool:
    return net.config.get("bridge.driver", "native") == "openvswitch"


def _vlan(device: str, value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 4094:
        raise InvalidArgument(f"Device {device!r}: vlan {value!r} is not a VLAN id "
                              "(1-4094)", device=device)
    return int(value)


def _enable_forwarding() -> None:
    # per network namespace: the daemon's own (tests run it in a namespace of theirs)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _free_subnet(name: str, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Interface:
    seed = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    for attempt in range(4096):
        n = (seed + attempt * 7919) % 65536
        subnet = ipaddress.IPv4Network(f"10.{n >> 8}.{n & 255}.0/24")
        if not any(subnet.overlaps(t) for t in taken):
            return ipaddress.IPv4Interface(f"{subnet.network_address + 1}/24")
    raise Unavailable("no free 10.x.y.0/24 subnet for ipv4.address=auto")

