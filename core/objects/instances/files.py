"""Files of an instance (``file push/pull/delete/mkdir/info``), through its hypervisor, in the
statuses the hypervisor declares (``HypervisorInfo.files``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from lxctl.errors import InvalidArgument, InvalidState
from lxctl.objects.instances.base import InstanceBase, InstanceRecord


class Files(InstanceBase):
    async def _reachable(self, project: str, name: str, path: str) -> InstanceRecord:
        if not path.startswith("/") or "\0" in path:
            raise InvalidArgument(f"Path {path!r} must be absolute", path=path)
        rec = await self.get(project, name)
        hypervisor = self.hypervisor(rec)
        status = await self.status(rec)
        if status not in hypervisor.info.files:
            states = " or ".join(sorted(hypervisor.info.files)) or "no"
            raise InvalidState(f"The {hypervisor.info.name} driver reaches the files of "
                               f"{states.lower()} instances only; {name} is {status}",
                               instance=name, status=status)
        return rec

    async def push_file(self, project: str, name: str, path: str, data: AsyncIterator[bytes],
                        *, uid: int, gid: int, mode: int, make_parents: bool) -> int:
        if not 0 <= mode <= 0o7777:
            raise InvalidArgument(f"Invalid mode {mode:o}")
        rec = await self._reachable(project, name, path)
        written = await self.hypervisor(rec).push_file(
            rec, path, data, uid=uid, gid=gid, mode=mode, make_parents=make_parents)
        self.event("instance-file-pushed", rec, path=path)
        return written

    async def pull_file(self, project: str, name: str, path: str,
                        output: Callable[[bytes], Awaitable[None]]) -> int:
        rec = await self._reachable(project, name, path)
        return await self.hypervisor(rec).pull_file(rec, path, output)

    async def make_directory(self, project: str, name: str, path: str, *, uid: int,
                             gid: int, mode: int, make_parents: bool) -> None:
        if not 0 <= mode <= 0o7777:
            raise InvalidArgument(f"Invalid mode {mode:o}")
        rec = await self._reachable(project, name, path)
        await self.hypervisor(rec).make_directory(rec, path, uid=uid, gid=gid, mode=mode,
                                                  make_parents=make_parents)
        self.event("instance-file-pushed", rec, path=path)

    async def file_info(self, project: str, name: str, path: str) -> dict[str, Any]:
        rec = await self._reachable(project, name, path)
        return await self.hypervisor(rec).file_info(rec, path)

    async def delete_file(self, project: str, name: str, path: str) -> None:
        rec = await self._reachable(project, name, path)
        await self.hypervisor(rec).delete_file(rec, path)
        self.event("instance-file-deleted", rec, path=path)
