"""``lxctl config`` on a real daemon and container: keys, properties, devices, edit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from harness import Daemon


def test_config_keys_round_trip_through_the_cli(daemon: Daemon) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-cfg", "-q")
    with d.deleted_afterwards("lxt-cfg"):
        d.ok("config", "set", "lxt-cfg", "user.a=1", "limits.processes=100")
        assert d.ok("config", "get", "lxt-cfg", "user.a") == "1\n"
        d.ok("config", "set", "lxt-cfg", "user.b", "two words")  # Incus's KEY VALUE form
        assert d.ok("config", "get", "lxt-cfg", "user.b") == "two words\n"
        shown = d.ok("config", "show", "lxt-cfg")
        assert "user.a: '1'" in shown and "volatile.base_image" in shown
        assert "path: /" in d.ok("config", "show", "lxt-cfg", "--expanded")
        d.ok("config", "unset", "lxt-cfg", "user.a")
        assert d.ok("config", "get", "lxt-cfg", "user.a") == "\n"
        for args, message in [
            (("unset", "lxt-cfg", "user.a"), "it's not currently set"),
            (("set", "lxt-cfg", "bogus.key=1"), "Unknown configuration key: bogus.key"),
            (("set", "lxt-cfg", "limits.memory=lots"), "Invalid value for 'limits.memory'"),
            (("set", "lxt-cfg", "-p", "colour=red"), "Unknown property 'colour'"),
            (("frobnicate", "lxt-cfg"), "invalid choice"),
        ]:
            r = d.cli("config", *args)
            assert r.returncode == 1 and r.stderr.startswith("Error: ") and message in r.stderr
            assert len(r.stderr.splitlines()) == 1, r.stderr
        d.ok("config", "set", "lxt-cfg", "--property", "description=web server")
        assert d.ok("config", "get", "lxt-cfg", "-p", "description") == "web server\n"
        assert "Description: web server" in d.ok("info", "lxt-cfg")
        d.ok("config", "set", "lxt-cfg", "-p", "ephemeral=true")
        assert d.ok("config", "get", "lxt-cfg", "-p", "ephemeral") == "true\n"
        r = d.cli("config", "set", "lxt-cfg", "-p", "ephemeral=maybe")
        assert r.returncode == 1 and "true or false" in r.stderr
        d.ok("config", "unset", "lxt-cfg", "-p", "ephemeral")
        assert d.ok("config", "get", "lxt-cfg", "-p", "ephemeral") == "false\n"


def test_config_devices_and_edit(daemon: Daemon, workdir: Path) -> None:
    d = daemon
    shared = workdir / "lxt-cfg-share"
    shared.mkdir(mode=0o755, exist_ok=True)
    (shared / "note").write_text("shared\n")
    d.ok("launch", "bb", "lxt-cfgdev", "-q")
    try:
        with d.deleted_afterwards("lxt-cfgdev"):
            add = ("config", "device", "add", "lxt-cfgdev", "data", "disk",
                   f"source={shared}", "path=/mnt/data", "readonly=true")
            d.ok(*add)  # running: hot-plugged at once
            assert d.ok("exec", "lxt-cfgdev", "--", "cat", "/mnt/data/note") == "shared\n"
            d.ok("config", "device", "remove", "lxt-cfgdev", "data")  # and out again
            assert d.cli("exec", "lxt-cfgdev", "--", "cat", "/mnt/data/note").returncode == 1
            r = d.cli("config", "device", "set", "lxt-cfgdev", "root", "size=1GiB")
            assert r.returncode == 1 and "config device override" in r.stderr
            r = d.cli("config", "device", "override", "lxt-cfgdev", "root", "size=1GiB")
            assert r.returncode == 1 and "dir does not support quotas" in r.stderr
            r = d.cli("config", "device", "override", "lxt-cfgdev", "root", "readonly=true")
            assert r.returncode == 1 and "root disk of running instance" in r.stderr
            assert "root" not in yaml.safe_load(d.ok("config", "show", "lxt-cfgdev"))[
                "devices"]  # nothing changed: root is still the profile's
            d.ok("stop", "lxt-cfgdev", "--force")
            d.ok(*add)
            assert d.ok("config", "device", "list", "lxt-cfgdev") == "data\nroot\n"
            assert d.ok("config", "device", "get", "lxt-cfgdev", "data", "path") == \
                "/mnt/data\n"
            r = d.cli("config", "device", "add", "lxt-cfgdev", "more", "disk",
                      f"source={shared}/nothing-here", "path=/mnt/more")
            assert r.returncode == 1 and "does not exist" in r.stderr
            r = d.cli("config", "device", "remove", "lxt-cfgdev", "root")
            assert r.returncode == 1 and "comes from a profile" in r.stderr
            d.ok("start", "lxt-cfgdev")
            assert d.ok("exec", "lxt-cfgdev", "--", "cat", "/mnt/data/note") == "shared\n"
            assert d.cli("exec", "lxt-cfgdev", "--", "touch", "/mnt/data/x").returncode != 0

            # edit: YAML on standard input; a refused key changes nothing
            shown = d.ok("config", "show", "lxt-cfgdev")
            r = d.cli("config", "edit", "lxt-cfgdev",
                      input=shown.replace("config:", "config:\n  bogus.key: x", 1))
            assert r.returncode == 1 and "bogus.key" in r.stderr
            r = d.cli("config", "edit", "lxt-cfgdev", input="config: [unclosed\n")
            assert r.returncode == 1 and "invalid YAML" in r.stderr
            assert d.ok("config", "show", "lxt-cfgdev") == shown
            d.ok("config", "edit", "lxt-cfgdev",
                 input=shown.replace("config:", "config:\n  user.edited: 'yes'", 1))
            assert d.ok("config", "get", "lxt-cfgdev", "user.edited") == "yes\n"
            # the host's /etc, read-only: readable, never writable from the container
            d.ok("stop", "lxt-cfgdev", "--force")
            d.ok("config", "device", "add", "lxt-cfgdev", "hostetc", "disk", "source=/etc",
                 "path=/mnt/hostetc", "readonly=true")
            d.ok("start", "lxt-cfgdev")
            assert d.ok("exec", "lxt-cfgdev", "--", "cat", "/mnt/hostetc/hostname") == \
                Path("/etc/hostname").read_text()
            r = d.cli("exec", "lxt-cfgdev", "--", "sh", "-c", "echo x > /mnt/hostetc/lxt-w")
            assert r.returncode != 0 and not Path("/etc/lxt-w").exists()
            d.ok("stop", "lxt-cfgdev", "--force")
            d.ok("config", "device", "remove", "lxt-cfgdev", "data", "hostetc")
            assert d.ok("config", "device", "list", "lxt-cfgdev") == "root\n"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_hotplug_disks_and_unix_devices(daemon: Daemon, workdir: Path) -> None:
    """Devices added to a running container appear at once, nested mounts in path order;
    a read-only one stays read-only; removed ones go at once and stay gone after a
    restart; a unix-char device works inside and goes with its removal."""
    d = daemon
    outer, inner = workdir / "lxt-hp-outer", workdir / "lxt-hp-inner"
    for path, text in ((outer, "outer\n"), (inner, "inner\n")):
        path.mkdir(mode=0o755, exist_ok=True)
        (path / "note").write_text(text)
    (outer / "in" / "side").mkdir(parents=True, exist_ok=True)  # outer is read-only
    d.ok("launch", "bb", "lxt-hp", "-q")
    with d.deleted_afterwards("lxt-hp"):
        def sh(command: str) -> subprocess.CompletedProcess[str]:
            return d.cli("exec", "lxt-hp", "--", "sh", "-c", command)

        d.ok("config", "device", "add", "lxt-hp", "outer", "disk", f"source={outer}",
             "path=/srv", "readonly=true")
        d.ok("config", "device", "add", "lxt-hp", "inner", "disk", f"source={inner}",
             "path=/srv/in/side")
        assert sh("cat /srv/note /srv/in/side/note").stdout == "outer\ninner\n"
        assert sh("touch /srv/x").returncode != 0
        assert (outer / "x").exists() is False
        d.ok("config", "device", "add", "lxt-hp", "zero", "unix-char", "source=/dev/zero",
             "path=/dev/lxt-zero")
        assert sh("head -c 4 /dev/lxt-zero | od -An -tx1").stdout.split() == ["00"] * 4
        d.ok("restart", "lxt-hp", "--force")  # the same, from the config file
        assert sh("cat /srv/note /srv/in/side/note").stdout == "outer\ninner\n"
        assert sh("head -c 1 /dev/lxt-zero | wc -c").stdout.strip() == "1"
        d.ok("config", "device", "remove", "lxt-hp", "zero")
        assert sh("head -c 1 /dev/lxt-zero").returncode != 0
        d.ok("config", "device", "remove", "lxt-hp", "inner")
        assert sh("cat /srv/in/side/note").returncode != 0
        assert sh("cat /srv/note").stdout == "outer\n"
        d.ok("restart", "lxt-hp", "--force")
        assert sh("cat /srv/in/side/note").returncode != 0
        assert d.ok("config", "device", "list", "lxt-hp") == "outer\nroot\n"
