"""The LXC plugin's limits: config keys to cgroup settings (pure)."""

from __future__ import annotations

import os
import subprocess

import pytest

from lxctl.errors import InvalidArgument
from lxctl_plugins.hypervisor.lxc import cgroups, limits

CPUS = [0, 1, 2, 3, 5]
MEM = 8 * 2**30


def test_cpu_sets() -> None:
    assert limits.cpu_set(None, CPUS) == "0-3,5"
    assert limits.cpu_set("2", CPUS) == "0-1"
    assert limits.cpu_set("0,2-3", CPUS) == "0,2-3"
    with pytest.raises(InvalidArgument, match="this host has 5 CPUs"):
        limits.cpu_set("6", CPUS)
    with pytest.raises(InvalidArgument, match="CPU 4 is not online"):
        limits.cpu_set("3-4", CPUS)


def test_settings_and_defaults() -> None:
    assert limits.changed_from_defaults({}, CPUS, MEM) == {}
    got = limits.changed_from_defaults({"limits.memory": "50%", "limits.cpu.allowance": "50%",
                                        "limits.memory.swap": "false"}, CPUS, MEM)
    assert got == {"memory.limit_in_bytes": str(4 * 2**30),
                   "memory.memsw.limit_in_bytes": str(4 * 2**30), "cpu.shares": "512"}
    full = limits.settings({"limits.memory": "64MiB"}, CPUS, MEM)  # swap allowed: no memsw
    assert full["memory.memsw.limit_in_bytes"] == "-1" and full["pids.max"] == "max"
    quota = limits.settings({"limits.cpu.allowance": "25ms/50ms"}, CPUS, MEM)
    assert (quota["cpu.cfs_quota_us"], quota["cpu.cfs_period_us"]) == ("25000", "50000")


def test_a_pid_with_its_start_time_names_one_process() -> None:
    mine = cgroups.start_time(os.getpid())
    assert mine is not None and mine.isdigit() and mine == cgroups.start_time(os.getpid())
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    assert cgroups.start_time(child.pid) is None  # gone: the state is asked of liblxc
    assert cgroups.frozen("lxt-no-such-cgroup/none") is None
