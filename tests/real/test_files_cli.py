"""``lxctl file`` on a real container: paths, symlinks included, stay inside it."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from harness import Daemon


def test_symlinks_in_the_container_cannot_reach_the_host(daemon: Daemon, workdir: Path) -> None:
    d = daemon
    d.ok("launch", "bb", "lxt-files", "-q")
    host_victim = Path("/etc/lxt-pwned")
    assert not host_victim.exists()
    with d.deleted_afterwards("lxt-files"):
        run = ("exec", "lxt-files", "--")
        d.ok(*run, "ln", "-s", "/etc", "/root/escape")
        d.ok(*run, "ln", "-s", "../../../../../../etc", "/root/up")
        for link in ("escape", "up"):
            d.ok("file", "push", "-", f"lxt-files/root/{link}/lxt-pwned", input=f"{link}\n")
            assert not host_victim.exists()  # the host's /etc is untouched
            assert d.ok(*run, "cat", "/etc/lxt-pwned") == f"{link}\n"  # the container's
        # pulls resolve the same way: the container's hostname file, not the host's
        got = d.ok("file", "pull", "lxt-files/root/escape/hostname", "-")
        assert got == "busybox\n" and got.strip() != socket.gethostname()
        # ownership: container ids, shifted by the instance's id map on the host
        src = workdir / "lxt-owned"
        src.write_text("owned\n")
        d.ok("file", "push", str(src), "lxt-files/home/a/b/owned", "-p", "--uid", "1000",
             "--gid", "1000", "--mode", "0640")
        assert d.ok(*run, "stat", "-c", "%u %g %a", "/home/a/b/owned") == "1000 1000 640\n"
        pid = int(next(line.split()[1] for line in d.ok("info", "lxt-files").splitlines()
                       if line.startswith("PID:")))
        st = os.stat(f"/proc/{pid}/root/home/a/b/owned")
        base = int(Path("/proc", str(pid), "uid_map").read_text().split()[1])
        assert (st.st_uid, st.st_gid) == (base + 1000, base + 1000) and base > 0
        dest = workdir / "lxt-pulled"
        d.ok("file", "pull", "lxt-files/home/a/b/owned", str(dest))
        assert dest.read_text() == "owned\n"
        d.ok("file", "delete", "lxt-files/home/a/b/owned")
        r = d.cli("file", "pull", "lxt-files/home/a/b/owned", str(workdir / "lxt-gone"))
        assert r.returncode == 1 and "No such file or directory" in r.stderr
        assert not (workdir / "lxt-gone").exists() and not list(workdir.glob("*.lxctl-partial"))
        r = d.cli("file", "push", "-", "lxt-files")
        assert r.returncode == 1 and "INSTANCE/PATH" in r.stderr


def test_recursive_push_pull_and_edit(daemon: Daemon, workdir: Path) -> None:
    """-r pushes a tree (modes kept), pulls it back (a symlink stays a symlink); several
    files go into a directory; edit rewrites a file keeping its owner and mode."""
    d = daemon
    tree = workdir / "lxt-tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.sh").write_text("echo b\n")
    (tree / "sub" / "b.sh").chmod(0o750)
    d.ok("launch", "bb", "lxt-tree", "-q")
    with d.deleted_afterwards("lxt-tree"):
        d.ok("file", "push", "-r", "-p", str(tree), "lxt-tree/srv/")
        assert d.ok("exec", "lxt-tree", "--", "cat", "/srv/lxt-tree/a.txt") == "a\n"
        assert d.ok("exec", "lxt-tree", "--", "sh", "/srv/lxt-tree/sub/b.sh") == "b\n"
        assert d.ok("exec", "lxt-tree", "--", "stat", "-c", "%a",
                    "/srv/lxt-tree/sub/b.sh") == "750\n"
        r = d.cli("file", "push", str(tree), "lxt-tree/srv/x")
        assert r.returncode == 1 and "use -r" in r.stderr
        d.ok("exec", "lxt-tree", "--", "ln", "-s", "a.txt", "/srv/lxt-tree/link")
        back = workdir / "lxt-back"
        shutil.rmtree(back, ignore_errors=True)
        d.ok("file", "pull", "-r", "-p", "lxt-tree/srv/lxt-tree", str(back))
        assert (back / "lxt-tree" / "sub" / "b.sh").read_text() == "echo b\n"
        assert (back / "lxt-tree" / "sub" / "b.sh").stat().st_mode & 0o777 == 0o750
        assert os.readlink(back / "lxt-tree" / "link") == "a.txt"
        # several sources into one directory
        d.ok("exec", "lxt-tree", "--", "mkdir", "/two")
        d.ok("file", "push", str(tree / "a.txt"), str(tree / "sub" / "b.sh"), "lxt-tree/two/")
        assert d.ok("exec", "lxt-tree", "--", "ls", "/two") == "a.txt\nb.sh\n"
        # edit (standard input stands in for the editor): owner and mode stay
        d.ok("exec", "lxt-tree", "--", "sh", "-c", "echo old > /etc/app.conf && "
             "chown 12:34 /etc/app.conf && chmod 0640 /etc/app.conf")
        d.ok("file", "edit", "lxt-tree/etc/app.conf", input="new\n")
        assert d.ok("exec", "lxt-tree", "--", "cat", "/etc/app.conf") == "new\n"
        assert d.ok("exec", "lxt-tree", "--", "stat", "-c", "%u:%g %a",
                    "/etc/app.conf") == "12:34 640\n"
        r = d.cli("file", "edit", "lxt-tree/etc", input="x")
        assert r.returncode == 1 and "is a directory, not a file" in r.stderr
