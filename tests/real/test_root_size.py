"""limits.disk as Incus does it: the root disk's ``size`` is the root volume's quota,
set at create and changed live on a running container (btrfs: a qgroup limit)."""

from __future__ import annotations

import pytest
from harness import Daemon

FILL = "dd if=/dev/urandom of=/fill bs=1M count=48 && sync"


def test_the_root_size_limits_a_running_container_and_grows_live(daemon: Daemon) -> None:
    d = daemon
    info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info", "params": {}})["result"]
    if "btrfs" in info["drivers_unsupported"].get("storage", {}):
        pytest.skip(f"btrfs: {info['drivers_unsupported']['storage']['btrfs']}")
    pool, inst = "lxt-rs-btrfs", "lxt-rs-c1"
    d.ok("storage", "create", pool, "btrfs", "size=512MiB")
    try:
        d.ok("init", "bb", inst, "-s", pool)
        d.ok("config", "device", "set", inst, "root", "size=24MiB")
        d.ok("start", inst)
        r = d.cli("exec", inst, "--", "sh", "-c", FILL, timeout=60)
        assert r.returncode != 0, "48 MiB written into a 24 MiB root"
        d.ok("exec", inst, "--", "rm", "-f", "/fill")
        d.ok("config", "device", "set", inst, "root", "size=128MiB")  # live
        d.ok("exec", inst, "--", "sh", "-c", FILL, timeout=60)
        assert d.ok("config", "device", "get", inst, "root", "size") == "128MiB\n"
        r = d.cli("config", "device", "set", inst, "root", "size=lots")
        assert r.returncode == 1 and "size must be a size" in r.stderr
    finally:
        d.cli("delete", "--force", inst, timeout=120)
        d.cli("storage", "delete", pool)
