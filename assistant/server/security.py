"""Who may talk to the local server: pure ASGI guards around the routes.

- `HostGuard`: the `Host` header must name this server (its bound address, `localhost`,
  `127.0.0.1` or `[::1]`, with the port), so a web page on a domain that rebinds to
  127.0.0.1 cannot reach it (DNS rebinding); a browser request from another origin is refused
  unless `--cors-origin` names that origin.
- `KeyAndBodyGuard`: with an API key, every request needs `Authorization: Bearer KEY`
  (compared in constant time); request bodies are read here, up to a limit (413 past it).

They sit outside Starlette's CORS middleware and inside it respectively, so a browser's
preflight (which carries no key) is answered for allowed origins only.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable

from assistant.server.requests import ApiError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
DEFAULT_MAX_BODY = 8 * 1024 * 1024


def host_for_url(host: str) -> str:
    """An address as it appears in a URL or a Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


async def send_error(send, error: ApiError, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
    """Answer with `error` in OpenAI's shape, before any route has run."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [
        (k.lower().encode(), v.encode()) for k, v in [*error.headers.items(), *extra_headers]
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class HostGuard:
    """Refuses a Host that is not this server (403) and browser requests from other origins."""

    def __init__(self, app, *, host: str, port: int, cors_origins: Iterable[str] = ()):
        self.app = app
        self.port = port
        names = {*LOOPBACK_NAMES, host_for_url(host).lower()}
        self.allowed = {f"{n}:{port}" for n in names} | (names if port == 80 else set())
        self.any_ip = host in WILDCARDS  # bound to every interface: any address, no names
        self.origins = {o.rstrip("/").lower() for o in cors_origins}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = (_header(scope, b"host") or "").lower()
        if not self._host_ok(host):
            shown = host[:80] or "(none)"
            error = ApiError(
                403,
                f"Host {shown!r} is not this server: use http://127.0.0.1:{self.port}.",
                code="host_not_allowed",
            )
            return await send_error(send, error)
        origin = _header(scope, b"origin")
        cross_site = _header(scope, b"sec-fetch-site") == "cross-site"
        if origin is not None or cross_site:
            if not ("*" in self.origins or (origin or "").rstrip("/").lower() in self.origins):
                error = ApiError(
                    403,
                    f"Requests from the web page at {(origin or 'another site')[:80]} are not "
                    "allowed: start the server with --cors-origin to allow that origin.",
                    code="origin_not_allowed",
                )
                return await send_error(send, error)
        await self.app(scope, receive, send)

    def _host_ok(self, host: str) -> bool:
        if host in self.allowed:
            return True
        if not self.any_ip:
            return False
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        port_ok = port == str(self.port) or (not port and self.port == 80)
        return port_ok and _is_ip_literal(name or host)


class KeyAndBodyGuard:
    """Requires the API key (when one is set) and reads the body up to `max_body` bytes."""

    def __init__(self, app, *, api_key: str = "", max_body: int = DEFAULT_MAX_BODY):
        self.app = app
        self.key = api_key.encode()
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.key:
            error = self._key_problem(_header(scope, b"authorization"))
            if error is not None:
                return await send_error(send, error, [("WWW-Authenticate", "Bearer")])
        too_large = ApiError(
            413,
            f"The request body is larger than {self.max_body} bytes.",
            code="request_too_large",
        )
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await send_error(send, too_large, [("Connection", "close")])
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return await send_error(send, too_large, [("Connection", "close")])
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # afterwards: the disconnect, when the client hangs up

        await self.app(scope, replay, send)

    def _key_problem(self, authorization: str | None) -> ApiError | None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return ApiError(
                401,
                "This server needs an API key: send the header 'Authorization: Bearer KEY'.",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(given.strip().encode(), self.key):
            return ApiError(401, "Incorrect API key.", code="invalid_api_key")
        return None
