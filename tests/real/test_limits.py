"""Resource limits on real containers: written into their cgroups at start, changed on
a running container at once, lifted when unset; the memory limit holds."""

from __future__ import annotations

from pathlib import Path

from harness import Daemon, cgroup_prefix

MiB = 1024 * 1024


def _cgroup(d: Daemon, name: str, controller: str, key: str) -> str:
    path = Path("/sys/fs/cgroup") / controller / cgroup_prefix(d.dir) / name / key
    return path.read_text().strip()


def test_limits_at_start_live_and_unset(daemon: Daemon) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-limits", "-q", "-c", "limits.cpu=1", "-c", "limits.memory=64MiB",
         "-c", "limits.memory.swap=false", "-c", "limits.processes=50",
         "-c", "limits.cpu.allowance=20ms/100ms")
    with d.deleted_afterwards("lxt-limits"):
        assert _cgroup(d, "lxt-limits", "cpuset", "cpuset.cpus") == "0"
        assert int(_cgroup(d, "lxt-limits", "memory", "memory.limit_in_bytes")) == 64 * MiB
        assert int(_cgroup(d, "lxt-limits", "memory", "memory.memsw.limit_in_bytes")) == \
            64 * MiB
        assert _cgroup(d, "lxt-limits", "pids", "pids.max") == "50"
        assert _cgroup(d, "lxt-limits", "cpu", "cpu.cfs_quota_us") == "20000"

        # a process that wants 200 MiB is killed; the container and the daemon live on
        r = d.cli("exec", "lxt-limits", "--", "sh", "-c", "head -c 200m /dev/zero | tail")
        assert r.returncode == 128 + 9  # tail holds the whole "line": OOM-killed
        assert d.ok("exec", "lxt-limits", "--", "echo", "alive") == "alive\n"

        # live: raised, lowered (memsw and the limit written in the order that works)
        for size in (128, 32):
            d.ok("config", "set", "lxt-limits", f"limits.memory={size}MiB")
            assert int(_cgroup(d, "lxt-limits", "memory", "memory.limit_in_bytes")) == \
                size * MiB
            assert int(_cgroup(d, "lxt-limits", "memory",
                               "memory.memsw.limit_in_bytes")) == size * MiB
        d.ok("config", "set", "lxt-limits", "limits.processes=80")
        assert _cgroup(d, "lxt-limits", "pids", "pids.max") == "80"
        online = Path("/sys/devices/system/cpu/online").read_text().strip()
        d.ok("config", "unset", "lxt-limits", "limits.cpu")
        d.ok("config", "unset", "lxt-limits", "limits.cpu.allowance")
        assert _cgroup(d, "lxt-limits", "cpuset", "cpuset.cpus") == online
        assert _cgroup(d, "lxt-limits", "cpu", "cpu.cfs_quota_us") == "-1"
        r = d.cli("config", "set", "lxt-limits", "limits.cpu=64")
        assert r.returncode == 1 and "this host has" in r.stderr
        assert d.ok("config", "get", "lxt-limits", "limits.cpu") == "\n"  # nothing changed
        d.ok("restart", "lxt-limits", "--force")  # the config file agrees after a restart
        assert int(_cgroup(d, "lxt-limits", "memory", "memory.limit_in_bytes")) == 32 * MiB
        assert _cgroup(d, "lxt-limits", "pids", "pids.max") == "80"
