"""Projects through the real CLI and daemon: one instance name in two projects,
``--project`` before and after the command, ``--all-projects``, ``project switch`` (in
a client config of the test's own), limits.instances, and a non-empty project that
cannot be deleted."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import LXCTL, Daemon

PROJECT = "lxt-p1"


def test_projects_through_the_cli(daemon: Daemon, tmp_path: Path) -> None:
    conf = tmp_path / "config.yml"
    env = {**daemon.env, "LXCTL_CONF": str(conf)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LXCTL, *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120, check=False)

    def ok(*args: str) -> str:
        r = cli(*args)
        assert r.returncode == 0, f"lxctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
        return r.stdout

    try:
        assert ok("project", "create", PROJECT) == f"Project {PROJECT} created\n"
        r = cli("project", "create", "lxt_p2")
        assert (r.returncode, r.stderr) == (1, "Error: Invalid project name 'lxt_p2': "
                                               "project names may not contain underscores\n")
        # features.images=true: the project needs an image of its own
        ok("--project", PROJECT, "image", "build", "busybox", "--alias", "bb")
        with daemon.deleted_afterwards("lxt-c1"), \
                daemon.deleted_afterwards("--project", PROJECT, "lxt-c1"):
            # its default profile has no devices (as in Incus): name the pool
            assert ok("launch", "bb", "lxt-c1", "--project", PROJECT, "-s", "default") == \
                "Launching lxt-c1\n"
            ok("launch", "bb", "lxt-c1")
            lines = ok("list", "--all-projects", "-f", "csv", "-c", "en").splitlines()
            assert "default,lxt-c1" in lines and f"{PROJECT},lxt-c1" in lines
            assert ok("list", "-f", "csv", "-c", "ns", "--project", PROJECT) == \
                "lxt-c1,RUNNING\n"
            assert "PROJECT" in ok("list", "--all-projects").splitlines()[1]
            assert ok("--project", PROJECT, "exec", "lxt-c1", "--", "cat", "/proc/1/comm") \
                == "init\n"

            r = cli("project", "delete", PROJECT)
            assert r.returncode == 1 and f"Project '{PROJECT}' is not empty: it holds " \
                "instances: lxt-c1; images: " in r.stderr

            ok("project", "set", PROJECT, "limits.instances=1")
            assert ok("project", "get", PROJECT, "limits.instances") == "1\n"
            r = cli("init", "bb", "lxt-c2", "--project", PROJECT, "-s", "default")
            assert r.returncode == 1 and "Reached maximum number of instances in project " \
                f"'{PROJECT}'" in r.stderr
            ok("project", "unset", PROJECT, "limits.instances")
            edited = ok("project", "show", PROJECT).replace("description: ''",
                                                            "description: mine")
            r = subprocess.run([LXCTL, "project", "edit", PROJECT], env=env, input=edited,
                               capture_output=True, text=True, timeout=60, check=False)
            assert r.returncode == 0, r.stderr
            assert ok("project", "get", PROJECT, "description", "-p") == "mine\n"
            assert "limits.instances" not in ok("project", "show", PROJECT)

            ok("project", "switch", PROJECT)
            assert conf.read_text() == f"project: {PROJECT}\n"
            assert f"{PROJECT} (current),YES,YES,YES,NO,mine," in ok(
                "project", "list", "-f", "csv")
            assert ok("list", "-f", "csv", "-c", "n") == "lxt-c1\n"  # the current project
            ok("info", "lxt-c1")
            r = cli("project", "switch", "lxt-nosuch")
            assert r.returncode == 1 and "Project 'lxt-nosuch' not found" in r.stderr
            ok("project", "switch", "default")
            assert ok("list", "-f", "csv", "-c", "e", "lxt-c1") == "default\n"
        assert daemon.leftovers("lxt-c1") == []
    finally:
        cli("image", "delete", "bb", "--project", PROJECT)
        cli("project", "delete", PROJECT)
    assert PROJECT not in ok("project", "list", "-f", "csv")
