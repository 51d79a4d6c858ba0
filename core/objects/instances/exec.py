"""Running a command in an instance."""

from __future__ import annotations

import trio

from lxctl.drivers.hypervisor import ExecOutput, ExecRequest, StreamInput
from lxctl.errors import InvalidState
from lxctl.objects.instances.base import InstanceBase


class Exec(InstanceBase):
    async def exec(self, project: str, name: str, request: ExecRequest,
                   stdin: trio.MemoryReceiveChannel[StreamInput], output: ExecOutput) -> int:
        rec = await self.get(project, name)
        status = await self.status(rec)
        if status != "Running":
            raise InvalidState(f"Instance is not running ({status})", instance=name,
                               status=status)
        self.event("instance-exec", rec, command=request.command)
        return await self.hypervisor(rec).exec(rec, request, stdin, output)
