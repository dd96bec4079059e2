"""One access log line per request: client, method, path, status, duration and token counts.

Never the prompt or the reply: routes put only counts into `scope[LOG_KEY]`.
"""

from __future__ import annotations

import logging
import time

LOG_KEY = "assistant.log"
log = logging.getLogger("assistant.server.access")


class AccessLog:
    """Pure ASGI middleware, outermost, so refused requests are logged too."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 0
        counts: dict[str, int | str] = {}
        scope[LOG_KEY] = counts

        async def watch(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            client = scope.get("client") or ("-", 0)
            took = time.perf_counter() - started
            extra = "".join(f" {k}={v}" for k, v in counts.items())
            log.info(
                "%s %s %s %d %.3fs%s",
                client[0],
                scope.get("method", "-"),
                scope.get("path", "-")[:200],
                status,
                took,
                extra,
            )
