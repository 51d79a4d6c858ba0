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


def test_memory_limit_on_a_running_container_as_its_tools_see_it(daemon: Daemon) -> None:
    """limits.memory set on a running container: the cgroup has it, LXCFS makes ``free``
    inside show it, a process that wants more is killed, and both sides live on."""
    d = daemon
    d.ok("init", "bb", "lxt-free", "-q", "-c", "limits.cpu=1")
    with d.deleted_afterwards("lxt-free"):
        # procps's free, the host's, run from a read-only bind of /usr (busybox's own free
        # asks sysinfo(2), which LXCFS cannot answer: Incus intercepts that syscall, and
        # only when security.syscalls.intercept.sysinfo is set)
        d.ok("config", "device", "add", "lxt-free", "usr", "disk", "source=/usr",
             "path=/host/usr", "readonly=true")
        d.ok("start", "lxt-free")
        free = ["/host/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "--library-path",
                "/host/usr/lib/x86_64-linux-gnu", "/host/usr/bin/free", "-m"]
        d.ok("config", "set", "lxt-free", "limits.memory=64MiB")
        assert int(_cgroup(d, "lxt-free", "memory", "memory.limit_in_bytes")) == 64 * MiB
        total = int(d.ok("exec", "lxt-free", "--", *free).splitlines()[1].split()[1])
        assert total == 64  # MiB, as LXCFS reads them off the cgroup
        assert d.ok("exec", "lxt-free", "--", "nproc") == "1\n"
        pid = d.init_process("lxt-free")[0]
        assert "lxcfs" in Path(f"/proc/{pid}/mountinfo").read_text()
        r = d.cli("exec", "lxt-free", "--", "sh", "-c", "head -c 200m /dev/zero | tail")
        assert r.returncode == 128 + 9
        assert d.ok("exec", "lxt-free", "--", "echo", "alive") == "alive\n"
        d.ok("config", "set", "lxt-free", "limits.memory=96MiB")
        total = int(d.ok("exec", "lxt-free", "--", *free).splitlines()[1].split()[1])
        assert total == 96
        assert d.states()["lxt-free"] == "RUNNING"
        info = d.rpc({"jsonrpc": "2.0", "id": 1, "method": "server.info"})["result"]
        assert info["environment"]["hypervisors"]["lxc"]["lxcfs"] is True

