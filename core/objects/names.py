"""Validation of object names, following Incus's rules (``validate.IsHostname``)."""

from __future__ import annotations

import re
import secrets

from lxctl.errors import InvalidArgument

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ALIAS_BAD = re.compile(r"[\s/:]")

_ADJECTIVES = (
    "amber", "brave", "calm", "deft", "eager", "fair", "glad", "hale", "keen", "lucid",
    "merry", "noble", "proud", "quick", "rapid", "sunny", "tidy", "vivid", "warm", "zesty",
)
_NOUNS = (
    "badger", "cedar", "dove", "egret", "finch", "gecko", "heron", "ibis", "jay", "koala",
    "lark", "marten", "newt", "otter", "panda", "quail", "raven", "stoat", "tern", "wren",
)


def check_instance_name(name: object) -> str:
    """Return ``name`` if it is a valid instance name, else raise InvalidArgument.

    1-63 characters of ``[A-Za-z0-9-]``, not starting or ending with ``-``, not all
    digits. ``/`` is reserved for snapshots.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument("Instance name must be a non-empty string", name=name)
    if len(name) > 63:
        raise InvalidArgument(
            f"Invalid instance name {name!r}: longer than 63 characters", name=name
        )
    if "/" in name:
        raise InvalidArgument(
            f"Invalid instance name {name!r}: '/' is reserved for snapshots", name=name
        )
    if not _HOSTNAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid instance name {name!r}: use letters, digits and '-', "
            "not starting or ending with '-'",
            name=name,
        )
    if name.isdigit():
        raise InvalidArgument(
            f"Invalid instance name {name!r}: must not be only digits", name=name
        )
    return name


def check_object_name(kind: str, name: object) -> str:
    """Names of pools, profiles and image aliases: non-empty, no blanks, ``/`` or ``:``."""
    if not isinstance(name, str) or not name or len(name) > 255 or _ALIAS_BAD.search(name):
        raise InvalidArgument(
            f"Invalid {kind} name {name!r}: must be 1-255 characters without blanks, "
            "'/' or ':'",
            name=name,
        )
    return name


def check_profile_name(name: object) -> str:
    """Profile names as Incus checks them (not empty, no ``/``, not ``.`` or ``..``),
    with the rules every object name here follows."""
    if isinstance(name, str) and name in (".", ".."):
        raise InvalidArgument(f"Invalid profile name {name!r}", name=name)
    return check_object_name("profile", name)


def random_instance_name() -> str:
    """A random valid name such as ``brave-otter``, like ``incus launch IMAGE``."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}"
