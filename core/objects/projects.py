"""Projects: the ``default`` project always exists (the schema creates it); objects of
other projects are kept apart by the (project, name) keys of every table."""

from __future__ import annotations

from lxctl.state.records import ProjectRecord
from lxctl.state.store import StateStore


class Projects:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def get(self, name: str) -> ProjectRecord:
        return await self.store.read(lambda t: t.project_get(name))

    async def list(self) -> list[ProjectRecord]:
        return await self.store.read(lambda t: t.project_list())
