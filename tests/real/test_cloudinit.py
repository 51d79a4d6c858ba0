"""cloud-init's NoCloud seed in a real unprivileged container: written at start from the
cloud-init.* keys, instance-id the instance's UUID, read-only inside, gone at stop."""

from __future__ import annotations

import json

from harness import Daemon

SEED = "/var/lib/cloud/seed/nocloud-net"
USER_DATA = "#cloud-config\npackages: [htop]\n"
NETWORK = "version: 2\nethernets:\n  eth0: {dhcp4: true}\n"


def test_nocloud_seed_from_the_cloud_init_keys(daemon: Daemon) -> None:
    d = daemon
    d.ok("init", "bb", "lxt-ci", "-q", "-c", f"cloud-init.user-data={USER_DATA}",
         "-c", f"cloud-init.network-config={NETWORK}")
    with d.deleted_afterwards("lxt-ci"):
        uuid = d.ok("config", "get", "lxt-ci", "volatile.uuid").strip()
        assert len(uuid) == 36
        d.ok("start", "lxt-ci")
        assert d.ok("exec", "lxt-ci", "--", "cat", f"{SEED}/meta-data") == \
            f"instance-id: {uuid}\nlocal-hostname: lxt-ci\n"
        assert d.ok("exec", "lxt-ci", "--", "cat", f"{SEED}/user-data") == USER_DATA
        assert d.ok("exec", "lxt-ci", "--", "cat", f"{SEED}/network-config") == NETWORK
        assert d.cli("exec", "lxt-ci", "--", "ls", f"{SEED}/vendor-data").returncode != 0
        # owned by the container's root, private to it, and read-only
        listing = d.ok("exec", "lxt-ci", "--", "ls", "-ln", f"{SEED}/user-data").split()
        assert listing[0] == "-rw-------" and listing[2:4] == ["0", "0"]
        assert d.cli("exec", "lxt-ci", "--", "touch", f"{SEED}/x").returncode != 0
        seed_dir = d.dir / "cloud-init" / "lxt-ci"
        assert seed_dir.is_dir()
        # a changed key is in the seed at the next start; the UUID stays
        d.ok("config", "set", "lxt-ci", "cloud-init.vendor-data=#cloud-config\n")
        d.ok("restart", "lxt-ci", "--force")
        assert d.ok("exec", "lxt-ci", "--", "cat", f"{SEED}/vendor-data") == "#cloud-config\n"
        d.ok("stop", "lxt-ci", "--force")
        assert not seed_dir.exists()
        shown = json.loads(d.ok("list", "lxt-ci", "--format", "json"))[0]
        assert shown["config"]["volatile.uuid"] == uuid
        assert shown["config"]["volatile.last_state.power"] == "STOPPED"
