"""Instances: one module per action (create, power, delete, exec, rebuild, snapshots,
copy and move ...) and the view that ``list``/``info`` show, joined into one service
object."""

from __future__ import annotations

from lxctl.objects.instances.console import Console
from lxctl.objects.instances.copy import Copy
from lxctl.objects.instances.create import Create
from lxctl.objects.instances.delete import Delete
from lxctl.objects.instances.exec import Exec
from lxctl.objects.instances.files import Files
from lxctl.objects.instances.power import Power
from lxctl.objects.instances.profiles import ProfileAssignment
from lxctl.objects.instances.rebuild import Rebuild
from lxctl.objects.instances.snapshots import Snapshots
from lxctl.objects.instances.update import Update
from lxctl.objects.instances.view import View


class Instances(Create, Power, Delete, Exec, Files, Update, ProfileAssignment, Rebuild,
                Console, Snapshots, Copy, View):
    """The instance service."""
