"""The lvm storage driver's keys, command lines and report parsing (issue 7, acceptance 5).

This kernel has no device-mapper, so LVs cannot be made here: what the driver would run
is checked as argument lists, and its parsing against the LVM tools' output. Fixtures in
fixtures/lvm/: pvcreate.txt, vgcreate.txt, pvs.*, vgs.*, vgs-missing.*, lvs-empty.json
and lvcreate-*.txt are real outputs of lvm2 2.03.16 (Debian 12) on a loop device here;
lvs-thin.json and lvs-thin.txt are written by hand in the documented shape (lvs(8),
--reportformat json / --noheadings --separator), as no LV can exist on this machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lxctl.config.schema import ConfigSchema, Scope
from lxctl.drivers.context import DriverContext
from lxctl.drivers.storage import Volume, VolumeType
from lxctl.errors import DriverError, InvalidArgument, InvalidState, NotFound
from lxctl.execute import Outcome
from lxctl.objects.pools import Pools
from lxctl.state.records import PoolRecord
from lxctl_plugins.storage import btrfs, lvm
from lxctl_plugins.storage import dir as dir_driver

FIXTURES = Path(__file__).parent / "fixtures" / "lvm"
GiB = 2**30


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture(scope="module")
def schema() -> ConfigSchema:
    """Every storage driver's keys, owned as the daemon's build_schema owns them."""
    s = ConfigSchema()
    for cls in (dir_driver.DirDriver, btrfs.BtrfsDriver, lvm.LvmDriver):
        s.add_all((*cls.info.pool_keys, *cls.info.volume_keys),
                  owner=f"storage:{cls.info.name}")
    return s


def check(schema: ConfigSchema, config: dict[str, str]) -> None:
    """What the daemon runs on `storage create`: the core's check, then the driver's."""
    Pools.check_config(SimpleNamespace(schema=schema),  # type: ignore[arg-type]
                       lvm.LvmDriver.info, config)
    lvm.check_pool_config(config)


# ---------------------------------------------------------------------- keys
@pytest.mark.parametrize("config", [
    {},
    {"size": "2GiB"},
    {"source": "/dev/sdb", "lvm.vg_name": "vg0"},
    {"source": "vg0", "lvm.vg.force_reuse": "true"},
    {"lvm.thinpool_name": "tp", "lvm.thinpool_metadata_size": "64MiB"},
    {"lvm.use_thinpool": "false", "volume.size": "1GiB"},
    {"volume.block.filesystem": "xfs", "volume.block.mount_options": "noatime"},
    {"lvm.thinpool_metadata_size": "2MiB"}, {"lvm.thinpool_metadata_size": "16GiB"},
    {"user.note": "x"},
])
def test_valid_pool_configs(schema: ConfigSchema, config: dict[str, str]) -> None:
    check(schema, config)


@pytest.mark.parametrize(("config", "words"), [
    ({"size": "12 apples"}, "size"),
    ({"size": "64MiB"}, "at least 128MiB"),
    ({"lvm.thinpool_metadata_size": "lots"}, "must be a size"),
    ({"lvm.thinpool_metadata_size": "1MiB"}, "between 2MiB and 16GiB"),
    ({"lvm.thinpool_metadata_size": "17GiB"}, "between 2MiB and 16GiB"),
    ({"lvm.vg_name": "-vg"}, "lvm.vg_name"),
    ({"lvm.vg_name": "vg/0"}, "lvm.vg_name"),
    ({"lvm.vg_name": ".."}, "lvm.vg_name"),
    ({"lvm.vg_name": "v" * 128}, "lvm.vg_name"),
    ({"lvm.thinpool_name": "snapshot1"}, "reserved"),
    ({"lvm.thinpool_name": "pool_tmeta"}, "reserved"),
    ({"lvm.thinpool_name": "a b"}, "lvm.thinpool_name"),
    ({"lvm.use_thinpool": "maybe"}, "true or false"),
    ({"lvm.vg.force_reuse": "2"}, "true or false"),
    ({"volume.block.filesystem": "ntfs"}, "ext4, xfs, btrfs"),
    ({"lvm.use_thinpool": "false", "lvm.thinpool_name": "tp"}, "use_thinpool=true"),
    ({"lvm.use_thinpool": "false", "lvm.thinpool_metadata_size": "8MiB"},
     "use_thinpool=true"),
    ({"source": "not a vg"}, "neither a path nor a volume group"),
    ({"source": "vg0", "lvm.vg_name": "vg1"}, "differs"),
    ({"btrfs.mount_options": "compress"}, "btrfs storage driver"),
    ({"zfs.pool_name": "tank"}, "zfs.pool_name"),
    ({"lvm.stripes": "2"}, "lvm.stripes"),
])
def test_invalid_pool_configs(schema: ConfigSchema, config: dict[str, str],
                              words: str) -> None:
    with pytest.raises(InvalidArgument, match=words.replace(".", r"\.")
                       .replace("(", r"\(")):
        check(schema, config)


def test_lvm_keys_are_refused_on_other_drivers(schema: ConfigSchema) -> None:
    with pytest.raises(InvalidArgument, match="lvm storage driver"):
        Pools.check_config(SimpleNamespace(schema=schema),  # type: ignore[arg-type]
                           btrfs.BtrfsDriver.info, {"lvm.thinpool_name": "tp"})


@pytest.mark.parametrize(("config", "ok"), [
    ({"size": "20GiB", "block.filesystem": "btrfs", "block.mount_options": "noatime"}, True),
    ({"block.filesystem": "zfs"}, False), ({"size": "huge"}, False),
    ({"lvm.vg_name": "vg0"}, False),
])
def test_volume_keys(schema: ConfigSchema, config: dict[str, str], ok: bool) -> None:
    if ok:
        schema.check(Scope.VOLUME, config, owners=["storage:lvm"])
    else:
        with pytest.raises(InvalidArgument):
            schema.check(Scope.VOLUME, config, owners=["storage:lvm"])


# ---------------------------------------------------------------------- commands
def test_pool_commands() -> None:
    assert lvm.pvcreate_argv("/dev/loop3") == ["pvcreate", "--yes", "--force", "/dev/loop3"]
    assert lvm.vgcreate_argv("vg0", "/dev/loop3") == ["vgcreate", "--yes", "vg0", "/dev/loop3"]
    assert lvm.thinpool_create_argv("vg0", "IncusThinPool", "64MiB") == [
        "lvcreate", "--yes", "--type", "thin-pool", "--thinpool", "IncusThinPool",
        "--extents", "100%FREE", "--poolmetadatasize", f"{64 * 2**20}b", "vg0"]
    assert lvm.thinpool_create_argv("vg0", "tp", None) == [
        "lvcreate", "--yes", "--type", "thin-pool", "--thinpool", "tp",
        "--extents", "100%FREE", "vg0"]


def test_thinpool_has_no_wipesignatures() -> None:
    """lvcreate refuses --wipesignatures with thin pools (real error, captured here)."""
    assert "--wipesignatures is unsupported with thin pools" in \
        fixture("lvcreate-thinpool-wipesignatures.txt")
    argv = lvm.thinpool_create_argv("vg0", "tp", "8MiB")
    assert not any(a.startswith(("-W", "--wipesignatures")) for a in argv)


def test_volume_commands() -> None:
    assert lvm.lvcreate_argv("vg0", "containers_c1", "10GiB", "IncusThinPool") == [
        "lvcreate", "--yes", "--wipesignatures", "y", "--type", "thin", "--thinpool",
        "IncusThinPool", "--virtualsize", f"{10 * GiB}b", "--name", "containers_c1", "vg0"]
    assert lvm.lvcreate_argv("vg0", "custom_v1", "1GiB", None) == [
        "lvcreate", "--yes", "--wipesignatures", "y", "--size", f"{GiB}b",
        "--name", "custom_v1", "vg0"]
    assert lvm.lvextend_argv("vg0", "custom_v1", 2 * GiB) == [
        "lvextend", "--yes", "--size", f"{2 * GiB}b", "vg0/custom_v1"]
    assert lvm.lvremove_argv("vg0", "custom_v1") == [
        "lvremove", "--yes", "--force", "vg0/custom_v1"]
    assert lvm.lvrename_argv("vg0", "custom_v1", "custom_v2") == [
        "lvrename", "vg0", "custom_v1", "custom_v2"]


def test_pool_defaults() -> None:
    """Incus's defaults: thin pool IncusThinPool, 10GiB volumes, ext4; none when thick."""
    pool = SimpleNamespace(name="p1", config={})
    volume = SimpleNamespace(config={})
    driver = lvm.LvmDriver
    assert driver._vg(pool) == "p1"  # type: ignore[arg-type]
    assert driver._thinpool(pool) == "IncusThinPool"  # type: ignore[arg-type]
    assert driver._size(pool, volume) == "10GiB"  # type: ignore[arg-type]
    assert driver._filesystem(pool, volume) == "ext4"  # type: ignore[arg-type]
    thick = SimpleNamespace(name="p1", config={"lvm.use_thinpool": "false",
                                               "volume.size": "1GiB",
                                               "volume.block.filesystem": "xfs"})
    assert driver._thinpool(thick) is None  # type: ignore[arg-type]
    assert driver._size(thick, volume) == "1GiB"  # type: ignore[arg-type]
    assert driver._filesystem(thick, volume) == "xfs"  # type: ignore[arg-type]
    own = SimpleNamespace(config={"size": "3GiB", "block.filesystem": "btrfs"})
    assert driver._size(thick, own) == "3GiB"  # type: ignore[arg-type]
    assert driver._filesystem(thick, own) == "btrfs"  # type: ignore[arg-type]


def test_snapshot_commands() -> None:
    # thin: no size (a thin snapshot shares the pool), activation not skipped
    assert lvm.snapshot_argv("vg0", "containers_c1", "containers_c1-s0", thin=True) == [
        "lvcreate", "--yes", "--snapshot", "--name", "containers_c1-s0",
        "--setactivationskip", "n", "--permission", "r", "vg0/containers_c1"]
    # an instance volume from an image: a writable thin snapshot
    assert lvm.snapshot_argv("vg0", "images_ab.raw", "containers_c1", thin=True,
                             readonly=False) == [
        "lvcreate", "--yes", "--snapshot", "--name", "containers_c1",
        "--setactivationskip", "n", "vg0/images_ab.raw"]
    # thick: a classic COW snapshot needs a size
    assert lvm.snapshot_argv("vg0", "custom_v1", "custom_v1-s0", thin=False,
                             size="1GiB") == [
        "lvcreate", "--yes", "--snapshot", "--name", "custom_v1-s0", "--size", f"{GiB}b",
        "--permission", "r", "vg0/custom_v1"]
    with pytest.raises(InvalidArgument, match="needs a size"):
        lvm.snapshot_argv("vg0", "custom_v1", "custom_v1-s0", thin=False)


@pytest.mark.parametrize(("fs", "argv"), [
    ("ext4", ["mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
              "/dev/vg0/lv"]),
    ("xfs", ["mkfs.xfs", "-q", "-f", "/dev/vg0/lv"]),
    ("btrfs", ["mkfs.btrfs", "-q", "-f", "/dev/vg0/lv"]),
])
def test_mkfs(fs: str, argv: list[str]) -> None:
    assert lvm.mkfs_argv(fs, "/dev/vg0/lv") == argv


def test_resize_plans() -> None:
    dev, mnt = "/dev/vg0/custom_v1", "/m"
    grow = lvm.lvextend_argv("vg0", "custom_v1", 2 * GiB)
    assert lvm.resize_plan("ext4", dev, mnt, GiB, 2 * GiB, "vg0", "custom_v1") == [
        grow, ["resize2fs", dev]]
    assert lvm.resize_plan("xfs", dev, mnt, GiB, 2 * GiB, "vg0", "custom_v1") == [
        grow, ["xfs_growfs", mnt]]
    assert lvm.resize_plan("btrfs", dev, mnt, GiB, 2 * GiB, "vg0", "custom_v1") == [
        grow, ["btrfs", "filesystem", "resize", "max", mnt]]
    assert lvm.resize_plan("btrfs", dev, mnt, 2 * GiB, GiB, "vg0", "custom_v1") == [
        ["btrfs", "filesystem", "resize", str(GiB), mnt],
        ["lvreduce", "--yes", "--force", "--size", f"{GiB}b", "vg0/custom_v1"]]
    assert lvm.resize_plan("ext4", dev, mnt, GiB, GiB, "vg0", "custom_v1") == []
    for fs, why in (("xfs", "xfs cannot shrink"), ("ext4", "ext4 shrinks only unmounted")):
        with pytest.raises(InvalidArgument, match=why):
            lvm.resize_plan(fs, dev, mnt, 2 * GiB, GiB, "vg0", "custom_v1")


def test_lv_names_and_snapshots() -> None:
    assert lvm.lv_name(VolumeType.CONTAINER, "web-1") == "containers_web--1"
    assert lvm.lv_name(VolumeType.CUSTOM, "v", "snap-0") == "custom_v-snap--0"
    base = lvm.lv_name(VolumeType.CONTAINER, "a")
    assert lvm.snapshot_of("containers_a-s0", base) == "s0"
    assert lvm.snapshot_of("containers_a-snap--0", base) == "snap-0"
    assert lvm.snapshot_of("containers_a--b", base) is None  # volume "a-b"
    assert lvm.snapshot_of("containers_a--b-s0", base) is None  # a snapshot of "a-b"
    assert lvm.snapshot_of("containers_a", base) is None
    assert lvm.snapshot_of("containers_ab", base) is None


def test_report_commands() -> None:
    assert lvm.report_argv("vgs", ("vg_name", "vg_free"), "vg0") == [
        "vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
        "-o", "vg_name,vg_free", "vg0"]
    assert lvm.report_argv("pvs", ("pv_name",), json_format=False) == [
        "pvs", "--noheadings", "--separator", ",", "--units", "b", "--nosuffix",
        "-o", "pv_name"]


# ---------------------------------------------------------------------- parsing
VG_FIELDS = ("vg_name", "vg_size", "vg_free", "vg_extent_size", "pv_count", "lv_count")
PV_FIELDS = ("pv_name", "vg_name", "pv_size", "pv_free")


def test_parse_real_vgs_and_pvs() -> None:
    expected_vg = {"vg_name": "lxt-lvm7vg", "vg_size": "264241152",
                   "vg_free": "264241152", "vg_extent_size": "4194304", "pv_count": "1",
                   "lv_count": "0"}
    assert lvm.parse_report_json(fixture("vgs.json"), "vg") == [expected_vg]
    assert lvm.parse_report_separated(fixture("vgs.txt"), VG_FIELDS) == [expected_vg]
    expected_pv = {"pv_name": "/dev/loop0", "vg_name": "lxt-lvm7vg",
                   "pv_size": "264241152", "pv_free": "264241152"}
    assert lvm.parse_report_json(fixture("pvs.json"), "pv") == [expected_pv]
    assert lvm.parse_report_separated(fixture("pvs.txt"), PV_FIELDS) == [expected_pv]
    assert lvm.as_bytes(expected_pv["pv_size"]) == 252 * 2**20  # 256MiB less metadata
    assert lvm.parse_report_json(fixture("lvs-empty.json"), "lv") == []
    assert lvm.parse_report_json(fixture("vgs-missing.json"), "vg") == []
    assert "not found" in fixture("vgs-missing.stderr")


def test_parse_written_lvs() -> None:
    rows = lvm.parse_report_json(fixture("lvs-thin.json"), "lv")
    assert [r["lv_name"] for r in rows] == ["IncusThinPool", "containers_c1",
                                            "containers_c1-s0", "images_ab.raw"]
    assert rows[1]["pool_lv"] == "IncusThinPool" and rows[2]["origin"] == "containers_c1"
    assert lvm.as_bytes(rows[1]["lv_size"]) == 10 * GiB
    assert lvm.as_bytes(rows[0]["origin"]) == 0
    fields = ("lv_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent")
    assert lvm.parse_report_separated(fixture("lvs-thin.txt"), fields) == [
        {k: r[k] for k in fields} for r in rows]
    with pytest.raises(ValueError, match="expected 6 fields"):
        lvm.parse_report_separated("  a,b\n", fields)


def test_device_mapper_errors_are_named() -> None:
    """The real errors of lvcreate on this kernel name the missing device-mapper target."""
    assert lvm.missing_kernel_feature(fixture("lvcreate-thinpool-no-dm.txt")) == \
        "the kernel has no device-mapper thin-pool target"
    assert lvm.missing_kernel_feature(fixture("lvcreate-thick-no-dm.txt")) == \
        "the kernel has no device-mapper striped target"
    assert lvm.missing_kernel_feature(fixture("vgcreate.txt")) is None


def test_probe_names_device_mapper() -> None:
    assert lvm.device_mapper_missing("236 loop-control\n 10 fuse\n", True) == \
        "the kernel has no device-mapper (not in /proc/misc)"
    assert lvm.device_mapper_missing("236 device-mapper\n", False) == \
        "the kernel has no device-mapper (/dev/mapper/control is missing)"
    assert lvm.device_mapper_missing("236 device-mapper\n", True) is None
    has_dm = "device-mapper" in Path("/proc/misc").read_text().split()
    reason = lvm.LvmDriver.probe()
    if not has_dm:
        assert reason is not None and "device-mapper" in reason


# ---------------------------------------------------------------------- snapshots, copies
class FakeLvm:
    """What the driver runs, recorded, against a model of the VGs' LVs kept from the
    lvcreate/lvrename/lvremove lines it sees (``lvs`` answers from it in the JSON shape
    of lvs-thin.json, with lv_time and thin_id). ``fail``: (tool, n): its n-th run from
    now fails."""

    def __init__(self, lvs: dict[str, list[str]]) -> None:
        self.lvs = {vg: list(names) for vg, names in lvs.items()}
        self.ids = {(vg, n): i for vg, names in lvs.items() for i, n in enumerate(names)}
        self.argv: list[list[str]] = []
        self.fail: tuple[str, int] | None = None

    def exists(self, path: str) -> bool:
        _, _, vg, lv = path.split("/")
        return lv in self.lvs.get(vg, [])

    async def run(self, argv: list[Any], *, check: bool = True, **_: Any) -> Outcome:
        args = [str(a) for a in argv]
        stdout = b""
        if self.fail and args[0] == self.fail[0]:
            self.fail = (self.fail[0], self.fail[1] - 1)
        if self.fail and self.fail[1] == 0:  # as the helper: DriverError if checked
            self.fail = None
            if check:
                raise DriverError(f"{args[0]} failed: it failed")
            return Outcome(tuple(args), 1, b"", b"it failed", 0.0)
        if args[0] == "lvs":
            vg = args[-1]
            stdout = json.dumps({"report": [{"lv": [
                {"lv_name": n, "lv_attr": "Vwi-a-tz--", "lv_size": str(10 * GiB),
                 "pool_lv": "IncusThinPool", "origin": "", "data_percent": "",
                 "lv_time": "2026-12-02 15:00:00 +0000",
                 "thin_id": str(self.ids[(vg, n)])}
                for n in self.lvs.get(vg, [])]}]}).encode()
        else:
            self.argv.append(args)
        if args[0] == "lvcreate":
            name = args[args.index("--name") + 1]
            vg = args[-1].split("/")[0]
            self.lvs.setdefault(vg, []).append(name)
            self.ids[(vg, name)] = len(self.ids)
        elif args[0] == "lvrename":
            vg, old, new = args[1:]
            self.lvs[vg][self.lvs[vg].index(old)] = new
            self.ids[(vg, new)] = self.ids.pop((vg, old))
        elif args[0] == "lvremove":
            vg, lv = args[-1].split("/")
            if lv in self.lvs.get(vg, []):
                self.lvs[vg].remove(lv)
        return Outcome(tuple(args), 0, stdout, b"", 0.0)

    def ran(self, *tools: str) -> list[list[str]]:
        return [a for a in self.argv if a[0] in tools]


@pytest.fixture
def fake_lvm(monkeypatch: pytest.MonkeyPatch) -> FakeLvm:
    fake = FakeLvm({
        "vg1": ["IncusThinPool", "containers_c1", "containers_c1-s1", "containers_c1-s0",
                "custom_taken"],  # -s1 made before -s0 (thin_id 2, 3): lvs lists by name
        "vg2": ["IncusThinPool"]})
    monkeypatch.setattr(lvm, "run", fake.run)
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: fake.exists(str(p))
                        if str(p).startswith("/dev/") else real_exists(p))
    return fake


def _lvm_driver(tmp_path: Path) -> lvm.LvmDriver:
    return lvm.LvmDriver(DriverContext(tmp_path, "t", None))


P1 = PoolRecord("p1", "lvm", {"lvm.vg_name": "vg1"})
P2 = PoolRecord("p2", "lvm", {"lvm.vg_name": "vg2"})
C1, C2 = Volume("c1", VolumeType.CONTAINER), Volume("c2", VolumeType.CONTAINER)


async def test_snapshots_listed_oldest_first_and_renamed(fake_lvm: FakeLvm,
                                                         tmp_path: Path) -> None:
    driver = _lvm_driver(tmp_path)
    assert await driver.list_snapshots(P1, C1) == ["s1", "s0"]  # thin_id, not the name
    with pytest.raises(InvalidArgument, match="exists"):
        await driver.rename_snapshot(P1, C1, "s0", "s1")
    with pytest.raises(NotFound):
        await driver.rename_snapshot(P1, C1, "nosuch", "x")
    await driver.rename_snapshot(P1, C1, "s1", "a-b")
    assert fake_lvm.ran("lvrename") == [["lvrename", "vg1", "containers_c1-s1",
                                         "containers_c1-a--b"]]
    assert await driver.list_snapshots(P1, C1) == ["a-b", "s0"]  # its place kept


async def test_rename_volume_with_snapshots(fake_lvm: FakeLvm, tmp_path: Path) -> None:
    driver = _lvm_driver(tmp_path)
    with pytest.raises(InvalidArgument, match="exists"):
        await driver.rename_volume(P1, Volume("taken", VolumeType.CUSTOM), "taken")
    fake_lvm.lvs["vg1"].append("containers_c9-s0")  # a snapshot left of a name: taken
    fake_lvm.ids[("vg1", "containers_c9-s0")] = 99
    with pytest.raises(InvalidArgument, match="exists"):
        await driver.rename_volume(P1, C1, "c9")
    assert fake_lvm.ran("lvrename") == []
    await driver.rename_volume(P1, C1, "c2")
    assert fake_lvm.ran("lvrename") == [
        ["lvrename", "vg1", "containers_c1-s1", "containers_c2-s1"],
        ["lvrename", "vg1", "containers_c1-s0", "containers_c2-s0"],
        ["lvrename", "vg1", "containers_c1", "containers_c2"]]


async def test_mount_snapshot_read_only(fake_lvm: FakeLvm, tmp_path: Path) -> None:
    driver = _lvm_driver(tmp_path)
    mounted = await driver.mount_snapshot(P1, C1, "s0")
    target = tmp_path / "storage-pools" / "p1" / "snapshots" / "containers" / "c1" / "s0"
    assert mounted.path == target / "rootfs"
    assert fake_lvm.argv == [
        ["lvchange", "--activate", "y", "--ignoreactivationskip", "vg1/containers_c1-s0"],
        ["mount", "-t", "ext4", "-o", "ro,noload", "/dev/vg1/containers_c1-s0",
         str(target)]]
    await driver.unmount_snapshot(P1, C1, "s0")  # not mounted here: nothing to run
    assert not target.exists()
    with pytest.raises(NotFound):
        await driver.mount_snapshot(P1, C1, "nosuch")
    assert lvm.snapshot_mount_options("xfs", "discard,noatime") == \
        "ro,noatime,norecovery,nouuid"
    with pytest.raises(InvalidState, match="same filesystem UUID"):
        lvm.snapshot_mount_options("btrfs", "")


async def test_copy_within_a_thin_pool(fake_lvm: FakeLvm, tmp_path: Path) -> None:
    """Thin snapshots of each snapshot (read-only) and of the volume (writable): no
    data copied, and none depends on its origin."""
    driver = _lvm_driver(tmp_path)
    await driver.copy_volume(P1, C1, P1, C2, snapshots=["s1", "s0"])
    assert fake_lvm.ran("lvcreate") == [
        lvm.snapshot_argv("vg1", "containers_c1-s1", "containers_c2-s1", thin=True),
        lvm.snapshot_argv("vg1", "containers_c1-s0", "containers_c2-s0", thin=True),
        lvm.snapshot_argv("vg1", "containers_c1", "containers_c2", thin=True,
                          readonly=False)]
    assert await driver.list_snapshots(P1, C2) == ["s1", "s0"]
    fake_lvm.argv.clear()
    await driver.copy_volume(P1, C1, P1, Volume("c3", VolumeType.CONTAINER),
                             from_snapshot="s0")
    assert fake_lvm.ran("lvcreate") == [lvm.snapshot_argv(
        "vg1", "containers_c1-s0", "containers_c3", thin=True, readonly=False)]


async def test_copy_between_volume_groups(fake_lvm: FakeLvm, tmp_path: Path) -> None:
    """A new LV filled by rsync from each snapshot, mounted read-only, and snapshotted
    under its name, then from the volume."""
    driver = _lvm_driver(tmp_path)
    await driver.copy_volume(P1, C1, P2, C2, snapshots=["s1", "s0"])
    snaps = tmp_path / "storage-pools" / "p1" / "snapshots" / "containers" / "c1"
    dst = tmp_path / "storage-pools" / "p2" / "containers" / "c2"
    src = tmp_path / "storage-pools" / "p1" / "containers" / "c1"
    assert fake_lvm.ran("lvcreate", "rsync") == [
        lvm.lvcreate_argv("vg2", "containers_c2", "10GiB", "IncusThinPool"),
        ["rsync", "-aHAX", "--numeric-ids", "--delete", f"{snaps}/s1/rootfs/",
         f"{dst}/rootfs/"],
        lvm.snapshot_argv("vg2", "containers_c2", "containers_c2-s1", thin=True),
        ["rsync", "-aHAX", "--numeric-ids", "--delete", f"{snaps}/s0/rootfs/",
         f"{dst}/rootfs/"],
        lvm.snapshot_argv("vg2", "containers_c2", "containers_c2-s0", thin=True),
        ["rsync", "-aHAX", "--numeric-ids", "--delete", f"{src}/rootfs/",
         f"{dst}/rootfs/"]]
    mounts = [a[-1] for a in fake_lvm.ran("mount")]
    assert mounts == [str(dst), f"{snaps}/s1", str(dst), f"{snaps}/s0", str(dst),
                      str(src), str(dst)]
    assert [a for a in fake_lvm.ran("mount") if "ro,noload" in a] == [
        ["mount", "-t", "ext4", "-o", "ro,noload", "/dev/vg1/containers_c1-s1",
         f"{snaps}/s1"],
        ["mount", "-t", "ext4", "-o", "ro,noload", "/dev/vg1/containers_c1-s0",
         f"{snaps}/s0"]]
    assert await driver.list_snapshots(P2, C2) == ["s1", "s0"]


async def test_failed_copies_leave_nothing(fake_lvm: FakeLvm, tmp_path: Path) -> None:
    driver = _lvm_driver(tmp_path)
    with pytest.raises(InvalidArgument, match="exists"):
        await driver.copy_volume(P1, C1, P1, Volume("taken", VolumeType.CUSTOM))
    with pytest.raises(NotFound):
        await driver.copy_volume(P1, C1, P2, C2, snapshots=["s0", "nosuch"])
    with pytest.raises(NotFound):
        await driver.copy_volume(P1, Volume("nosuch", VolumeType.CONTAINER), P2, C2)
    assert fake_lvm.ran("lvcreate") == []
    fake_lvm.fail = ("rsync", 2)  # the second snapshot's content cannot be copied
    fake_lvm.argv.clear()
    with pytest.raises(DriverError):
        await driver.copy_volume(P1, C1, P2, C2, snapshots=["s1", "s0"])
    assert fake_lvm.ran("lvcreate")[-1][-1] == "vg2/containers_c2"  # s1 was made
    assert fake_lvm.lvs["vg2"] == ["IncusThinPool"]  # and went with the LV
    assert fake_lvm.lvs["vg1"][:4] == ["IncusThinPool", "containers_c1",
                                       "containers_c1-s1", "containers_c1-s0"]
