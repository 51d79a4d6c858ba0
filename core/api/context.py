"""What every API module needs: the daemon's objects from the call context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxctl.objects.names import check_object_name

if TYPE_CHECKING:
    from lxctl.daemon import App
    from lxctl.server import CallContext


def app_of(ctx: CallContext) -> App:
    app: App = ctx.app
    return app


def project_name(project: str) -> str:
    return check_object_name("project", project)
