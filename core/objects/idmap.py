"""User-namespace id maps: choosing a range from /etc/subuid, shifting a rootfs."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from lxctl.errors import InvalidState

MAP_SIZE = 65536


@dataclass(frozen=True)
class IdMap:
    """Container ids 0..size-1 map to host ids base..base+size-1 (uids and gids alike)."""

    uid_base: int
    gid_base: int
    size: int = MAP_SIZE
    room: int = field(default=MAP_SIZE, compare=False)  # ids the range holds from the bases

    def block(self, index: int) -> IdMap:
        """The ``index``-th map of this size in the same range (0: this one)."""
        offset = index * self.size
        if index < 0 or offset + self.size > self.room:
            raise InvalidState(f"The subordinate id range has room for "
                               f"{self.room // self.size} maps of {self.size} ids")
        return IdMap(self.uid_base + offset, self.gid_base + offset, self.size, self.room)

    def at(self, uid_base: int) -> IdMap:
        """The map of this range that starts at host uid ``uid_base``."""
        offset = uid_base - self.uid_base
        if offset % self.size:
            raise InvalidState(f"uid {uid_base} does not start a map of this range")
        return self.block(offset // self.size)

    @property
    def tag(self) -> str:
        """A short name for on-disk variants shifted with this map."""
        return f"u{self.uid_base}-g{self.gid_base}-{self.size}"

    def lxc_config(self) -> list[str]:
        return [
            f"lxc.idmap = u 0 {self.uid_base} {self.size}",
            f"lxc.idmap = g 0 {self.gid_base} {self.size}",
        ]


def _ranges(path: Path, user: str) -> list[tuple[int, int]]:
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(os.getuid())):
            try:
                out.append((int(parts[1]), int(parts[2])))
            except ValueError:
                continue
    return out


def from_subid(user: str = "root", size: int = MAP_SIZE, etc: Path = Path("/etc")) -> IdMap:
    """Pick the first range of ``user`` with room for ``size`` ids, for uids and gids.

    Several ranges may exist (installing LXD adds one); a map that spans two of them is
    refused by newuidmap, so exactly one range is used, and only ``size`` ids of it.
    """
    uids = [r for r in _ranges(etc / "subuid", user) if r[1] >= size]
    gids = [r for r in _ranges(etc / "subgid", user) if r[1] >= size]
    if not uids or not gids:
        raise InvalidState(
            f"No subordinate id range of {size} ids for {user!r} in /etc/subuid and "
            f"/etc/subgid: add a line such as '{user}:1000000:1000000000' to both "
            "(needed for unprivileged containers)",
        )
    return IdMap(uids[0][0], gids[0][0], size, min(uids[0][1], gids[0][1]))


def isolated_block(shared: IdMap, taken: set[int]) -> IdMap:
    """A map of its own for an instance with ``security.idmap.isolated``: the first
    block of the range after the shared one (block 0) whose uid base is not taken."""
    index = 1
    while True:
        block = shared.block(index)  # InvalidState once the range is full
        if block.uid_base not in taken:
            return block
        index += 1


def shift_tree(root: Path, uid_delta: int, gid_delta: int) -> int:
    """Add the deltas to the owner of every entry under ``root``; return the count.

    ``lchown`` clears setuid/setgid bits, so they are put back. Blocking: run in a
    worker thread.
    """
    count = 0

    def shift(path: str) -> None:
        nonlocal count
        st = os.lstat(path)
        os.lchown(path, st.st_uid + uid_delta, st.st_gid + gid_delta)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
            os.chmod(path, stat.S_IMODE(st.st_mode))
        count += 1

    shift(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            shift(os.path.join(dirpath, entry))
    return count
