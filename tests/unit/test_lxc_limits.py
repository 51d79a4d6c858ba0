"""The LXC plugin's limits: config keys to cgroup settings (pure)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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


def test_hierarchies_and_remove_on_a_v1_layout(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cpu,cpuacct", "memory", "pids", "unified"):
        (tmp_path / name).mkdir()
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")  # co-mounted: named twice, once a link
    (tmp_path / "cpuacct").symlink_to("cpu,cpuacct")
    (tmp_path / "stray").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    assert cgroups.hierarchies() == [tmp_path / n for n in
                                     ("cpu,cpuacct", "memory", "pids", "unified")]
    for h in ("memory", "pids"):
        (tmp_path / h / "lxt" / "c1.mon").mkdir(parents=True)
        (tmp_path / h / "lxt" / "c1" / "sub").mkdir(parents=True)
    (tmp_path / "memory" / "lxt" / "c2").mkdir()
    cgroups.remove("lxt/c1.mon", "lxt/c1", "lxt/none")
    for h in ("memory", "pids"):
        assert sorted(p.name for p in (tmp_path / h / "lxt").iterdir()) == (
            ["c2"] if h == "memory" else [])
