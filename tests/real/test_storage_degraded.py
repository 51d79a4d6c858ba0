"""Degraded start for storage (issue 7, acceptance 3): a btrfs pool whose loop file is
missing when the daemon starts leaves the daemon up, the pool Unavailable and the
instances on other pools started; the file coming back brings the pool and its waiting
instance up without a restart."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from harness import Daemon, daemon_with_image, wait_for

POOL, ON_POOL, ON_DIR = "lxt-dg-btrfs", "lxt-dg-c1", "lxt-dg-c2"


def _pool_status(d: Daemon) -> str:
    pools = json.loads(d.ok("storage", "list", "--format", "json"))
    return str(next(p["status"] for p in pools if p["name"] == POOL))


def test_a_missing_loop_file_at_start_degrades_and_its_return_recovers(workdir: Path) -> None:
    directory = workdir / "degraded-storage"
    directory.mkdir()
    (directory / "lxctld.toml").write_text("[retry]\nmax_interval = 1.0\n")
    with daemon_with_image(directory) as d:
        d.ok("storage", "create", POOL, "btrfs", "size=256MiB")
        source = Path(d.ok("storage", "get", POOL, "source").strip())
        mountpoint = directory / "storage-pools" / POOL
        aside = source.with_name(source.name + ".aside")
        try:
            d.ok("init", "bb", ON_POOL, "-s", POOL, "-c", "boot.autostart=true")
            d.ok("init", "bb", ON_DIR, "-c", "boot.autostart=true")
            d.terminate()
            subprocess.run(["umount", str(mountpoint)], check=True)
            source.rename(aside)  # the loop file is gone at the next start

            d.start()  # ready although a pool cannot come up
            wait_for(lambda: d.states().get(ON_DIR) == "RUNNING", timeout=30)
            assert _pool_status(d) == "Unavailable"
            info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info", "params": {}})
            unavailable = info["result"]["environment"]["storage_pools_unavailable"]
            assert "missing" in unavailable[POOL]
            assert d.states()[ON_POOL] == "STOPPED"
            r = d.cli("start", ON_POOL)
            assert r.returncode == 1 and POOL in r.stderr and "unavailable" in r.stderr.lower()

            aside.rename(source)  # back: the retry mounts it and starts what waited
            wait_for(lambda: d.states().get(ON_POOL) == "RUNNING", timeout=30)
            assert _pool_status(d) == "Created"
            assert d.ok("exec", ON_POOL, "--", "cat", "/etc/hostname").strip()
        finally:
            if aside.exists():
                aside.rename(source)
            for name in (ON_POOL, ON_DIR):
                d.cli("delete", "--force", name, timeout=120)
            d.cli("storage", "delete", POOL)
            if subprocess.run(["mountpoint", "-q", str(mountpoint)]).returncode == 0:
                subprocess.run(["umount", str(mountpoint)])
            if mountpoint.exists():
                shutil.rmtree(mountpoint, ignore_errors=True)
