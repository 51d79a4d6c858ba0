"""The console of an instance: what it has written there so far, and attaching to it."""

from __future__ import annotations

import trio

from lxctl.drivers.hypervisor import ExecOutput, StreamInput
from lxctl.errors import InvalidState
from lxctl.objects.instances.base import InstanceBase


class Console(InstanceBase):
    async def console_log(self, project: str, name: str) -> bytes:
        rec = await self.get(project, name)
        return await self.hypervisor(rec).console_log(rec)

    async def console(self, project: str, name: str, *, width: int, height: int,
                      stdin: trio.MemoryReceiveChannel[StreamInput],
                      output: ExecOutput) -> int:
        rec = await self.get(project, name)
        status = await self.status(rec)
        if status != "Running":
            raise InvalidState(f"Instance is not running ({status})", instance=name,
                               status=status)
        return await self.hypervisor(rec).console(rec, width=width, height=height,
                                                  stdin=stdin, output=output)
