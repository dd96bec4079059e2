"""Running the API on uvicorn: in the foreground (`assistant serve`) or on a thread (tests, the
desktop app), with a clean stop.

The socket is bound before uvicorn starts, so a port in use is one clear error and port 0
gets a free port whose number the Host check and the printed URL both know. On Ctrl-C or
SIGTERM the gate cancels the reply in flight and everything queued (each ends within one
token, as cancelled), uvicorn closes the connections, and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import replace

import uvicorn

from assistant.errors import InvalidInputError
from assistant.server.app import ServerConfig, create_app
from assistant.server.gate import Gate
from assistant.server.security import host_for_url
from assistant.server.windows import ConversationWindows

GRACEFUL_S = 5  # after a stop, connections still open this long are closed


def bind(host: str, port: int, hint: str = " Choose another --port.") -> socket.socket:
    """A TCP socket bound to host:port (InvalidInputError naming both when it cannot be, with
    `hint` when the port is taken)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise InvalidInputError(f"Cannot listen on {host}:{port}: {_reason(exc)}.") from None
    try:
        if os.name != "nt":  # on Windows the same option would let another process share it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        taken = hint if exc.errno in (98, 48, 10048) else ""
        raise InvalidInputError(f"Cannot listen on {host}:{port}: {_reason(exc)}.{taken}") from None
    return sock


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _Uvicorn(uvicorn.Server):
    """uvicorn, told when it accepts requests, and stopping the model's work on a signal
    (without re-raising the signal afterwards: a stop on request exits cleanly)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None], on_exit):
        super().__init__(config)
        self._on_started = on_started
        self._on_exit = on_exit

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    def handle_exit(self, sig: int, frame) -> None:
        self._on_exit()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for connections
        else:
            self.should_exit = True


class LocalServer:
    """The API for one gate (one loaded model), on one socket."""

    def __init__(
        self,
        gate: Gate,
        windows: ConversationWindows,
        config: ServerConfig,
        *,
        sock: socket.socket | None = None,
        on_started: Callable[[str], None] | None = None,
    ):
        """`sock`: already bound to config.host (by `bind`), e.g. before a slow model load."""
        self.gate = gate
        self.sock = sock or bind(config.host, config.port)
        port = self.sock.getsockname()[1]
        self.config = replace(config, port=port)
        self.url = f"http://{host_for_url(config.host or '0.0.0.0')}:{port}/v1"
        self.app = create_app(gate, windows, self.config)
        self.started = threading.Event()
        self._on_started = on_started
        uv = uvicorn.Config(
            self.app,
            http="h11",
            loop="asyncio",
            ws="none",
            lifespan="off",
            access_log=False,  # ours has the token counts and never the prompt
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
        )
        self.server = _Uvicorn(uv, self._started, gate.cancel_all)
        self._thread: threading.Thread | None = None

    def _started(self) -> None:
        self.started.set()
        if self._on_started is not None:
            self._on_started(self.url)

    def serve(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM (the calling thread's signals)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self, timeout: float = 30.0) -> None:
        """Serve on a thread of its own; returns once requests are accepted."""
        self._thread = threading.Thread(target=self.serve, name="local-server", daemon=True)
        self._thread.start()
        if not self.started.wait(timeout):
            raise InvalidInputError(f"The local server did not start within {timeout:.0f} s.")

    def stop(self, timeout: float = 15.0) -> None:
        """Cancel the model's work in flight and queued, close the connections, and wait."""
        self.gate.cancel_all()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
