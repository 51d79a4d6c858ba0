"""lxctl-plugin-webhook: forward lxctld's events to an HTTP endpoint (see README.md).

A third-party plugin: it registers through the ``lxctl.plugins`` entry-point group
and uses only ``lxctl.public``. ``lxctl_event`` only enqueues; one thread POSTs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lxctl.public import Event, InvalidArgument, MethodTable, impl

__version__ = "0.1.0"

EVENT_TYPES = ("lifecycle", "operation", "logging")


@dataclass
class Forwarder:
    url: str = ""
    types: frozenset[str] = frozenset()  # empty: every type
    secret: str = ""
    timeout: float = 5.0
    size: int = 1000
    counts: Counter[str] = field(default_factory=Counter)  # delivered, failed, dropped
    last_error: str = ""
    _queue: queue.Queue[dict[str, Any]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls) -> Forwarder:
        env = os.environ
        types = frozenset(t for t in env.get("LXCTL_WEBHOOK_TYPES", "").split(",") if t)
        return cls(env.get("LXCTL_WEBHOOK_URL", ""), types, env.get("LXCTL_WEBHOOK_SECRET", ""),
                   float(env.get("LXCTL_WEBHOOK_TIMEOUT", "5")),
                   int(env.get("LXCTL_WEBHOOK_QUEUE", "1000")))

    def offer(self, event: dict[str, Any]) -> None:
        """Enqueue an event for delivery; never blocks (a full queue drops it)."""
        if not self.url or (self.types and event["type"] not in self.types):
            return
        with self._lock:
            if self._queue is None:
                self._queue = queue.Queue(self.size)
                threading.Thread(target=self._deliver_all, name="lxctl-webhook",
                                 daemon=True).start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.counts["dropped"] += 1

    def _deliver_all(self) -> None:
        assert self._queue is not None
        while True:
            event = self._queue.get()
            try:
                self.post(event)
                self.counts["delivered"] += 1
            except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
                self.counts["failed"] += 1
                self.last_error = str(exc)

    def post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"lxctl-webhook/{__version__}",
                   "X-Lxctl-Event-Type": str(event["type"]),
                   "X-Lxctl-Event-Id": str(event.get("id", ""))}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Lxctl-Signature"] = f"sha256={digest}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "types": sorted(self.types) or list(EVENT_TYPES),
                "queued": self._queue.qsize() if self._queue else 0,
                **{k: self.counts.get(k, 0) for k in ("delivered", "failed", "dropped")},
                "last_error": self.last_error}


forwarder = Forwarder.from_environment()


@impl
def lxctl_event(event: Event) -> None:
    forwarder.offer(event.to_api())


async def webhook_configure(ctx: Any, url: str, types: list[str] | None = None,
                            secret: str | None = None) -> dict[str, Any]:
    """Forward events to ``url`` (an http:// or https:// URL; "" stops), only those of
    ``types`` (lifecycle, operation, logging; default: all); ``secret`` signs them."""
    if url and not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"Webhook URL must be http:// or https://, got {url!r}")
    for t in types or ():
        if t not in EVENT_TYPES:
            raise InvalidArgument(f"Unknown event type {t!r} (known: {', '.join(EVENT_TYPES)})")
    forwarder.url, forwarder.types = url, frozenset(types or ())
    if secret is not None:
        forwarder.secret = secret
    return forwarder.status()


async def webhook_status(ctx: Any) -> dict[str, Any]:
    """Where events go and how many were delivered, failed or dropped."""
    return forwarder.status()


@impl
def lxctl_register_methods(methods: MethodTable) -> None:
    methods.add("webhook.configure", webhook_configure)
    methods.add("webhook.status", webhook_status)
