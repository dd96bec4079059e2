"""Settings → Local server: the OpenAI-compatible API on this computer, answered by the app's
own loaded model.

The app and the server share the one model: each request the server's gate accepts is posted
to the model thread as a `ServeJob`, in arrival order among the app's replies, summaries and
loads, and runs there on whichever model is loaded then (503 while none is). The server
listens on 127.0.0.1 only; with an API key set, every request must carry it.
"""

from __future__ import annotations

import secrets
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.types import Policy

from .host import ModelHost

HOST = "127.0.0.1"  # the app never serves other computers: `assistant serve --host` does


def new_api_key() -> str:
    return "sk-local-" + secrets.token_urlsafe(24)


def base_url(port: int) -> str:
    return f"http://{HOST}:{port}/v1"


def _wanted(settings: Settings) -> tuple[Any, ...] | None:
    """What the running server must match (None: no server)."""
    if not settings.server_enabled:
        return None
    sampling = tuple(sorted((k, str(v)) for k, v in settings.sampling.items()))
    return (settings.server_port, settings.server_api_key, settings.policy, sampling)


class LocalServerControl(QObject):
    """Starts, stops and restarts the server to match the settings; says what it does."""

    started = Signal(str)  # the base URL clients use
    stopped = Signal()
    failed = Signal(str)  # why it could not start, in words
    busy_changed = Signal(bool)  # a server request started (True) or ended on the model

    _ready = Signal(object)  # a gate has a request waiting (emitted on the server's thread)
    _busy = Signal(bool)  # emitted on the model thread

    def __init__(self, host: ModelHost, parent: QObject | None = None):
        super().__init__(parent)
        self.host = host
        self._model_path: str | None = None  # the loaded model's file (None: none loaded)
        host.load_finished.connect(self._on_loaded)
        self.url = ""
        self.problem = ""
        self._server: Any = None  # assistant.server.runner.LocalServer
        self._running_with: tuple[Any, ...] | None = None
        self._ready.connect(self._give_turn)  # queued: it arrives on the GUI thread
        self._busy.connect(self.busy_changed)

    @property
    def running(self) -> bool:
        return self._server is not None

    def apply(self, settings: Settings) -> None:
        """Make the server match the settings: start it, stop it, or restart it when its port,
        key, policy or default sampling changed (a reply in flight then ends as cancelled)."""
        wanted = _wanted(settings)
        if wanted == self._running_with and (wanted is None or self.running):
            return
        self.stop()
        if wanted is not None:
            self._start(settings, wanted)

    def _start(self, settings: Settings, wanted: tuple[Any, ...]) -> None:
        from assistant.server.app import ServerConfig
        from assistant.server.gate import Gate
        from assistant.server.runner import LocalServer, bind
        from assistant.server.windows import ConversationWindows

        gate = Gate(None)
        gate.model_path = self._model_path
        gate.on_ready = lambda: self._ready.emit(gate)
        gate.on_busy = self._busy.emit
        port = settings.server_port
        sock, server = None, None
        try:
            config = ServerConfig(
                host=HOST,
                port=port,
                api_key=settings.server_api_key,
                sampling=settings.sampling_options(),
            )
            sock = bind(HOST, port, hint=" Choose another port in Settings → Local server.")
            windows = ConversationWindows(Policy.parse(settings.policy))
            server = LocalServer(gate, windows, config, sock=sock)
            server.start()
        except AssistantError as exc:
            gate.close(timeout=0)
            if server is not None:
                server.stop(timeout=5)  # it did not start in time: it closes its socket
            elif sock is not None:
                sock.close()
            self.problem = f"The local server is off: {exc}"
            self.failed.emit(self.problem)
            return
        self._server, self._running_with = server, wanted
        self.url, self.problem = server.url, ""
        self.started.emit(self.url)

    def stop(self) -> None:
        """Stop serving: requests in flight end as cancelled, waiting ones are answered."""
        server, self._server = self._server, None
        self._running_with = None
        if server is None:
            return
        server.gate.close(timeout=0)
        server.stop()
        self.url = ""
        self.stopped.emit()

    def stop_request(self) -> None:
        """End the server's reply in flight (its client gets finish_reason "cancelled")."""
        if self._server is not None:
            self._server.gate.cancel_running()

    @Slot(object)
    def _on_loaded(self, outcome: Any) -> None:
        self._model_path = outcome.info.path if outcome.info is not None else None
        if self._server is not None:
            self._server.gate.model_path = self._model_path

    @Slot(object)
    def _give_turn(self, gate: Any) -> None:
        if self._server is not None and gate is self._server.gate:
            self.host.serve(gate)


class ServerStatus(QWidget):
    """The status bar's server indicator: where it listens, when a request runs, and a Stop
    for that request (a client's long reply would otherwise hold up the app's own)."""

    def __init__(self, control: LocalServerControl, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("serverStatus")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.label.setAccessibleName("Local server status")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setFlat(True)
        self.stop_button.setAccessibleName("Stop the API request")
        self.stop_button.setToolTip("End the reply the local server is writing for another app")
        self.stop_button.clicked.connect(control.stop_request)
        self.stop_button.hide()
        row.addWidget(self.label)
        row.addWidget(self.stop_button)
        self.hide()
        self._port = ""
        control.started.connect(self._on_started)
        control.stopped.connect(self.hide)
        control.failed.connect(lambda _message: self.hide())
        control.busy_changed.connect(self._on_busy)

    def text(self) -> str:
        return self.label.text()

    def _on_started(self, url: str) -> None:
        self._port = url.rsplit(":", 1)[-1].split("/", 1)[0]
        self.label.setText(f"API on :{self._port}")
        self.label.setToolTip(f"Other apps on this computer can use the model at {url}")
        self.show()

    def _on_busy(self, busy: bool) -> None:
        self.label.setText("API: answering a request…" if busy else f"API on :{self._port}")
        self.stop_button.setVisible(busy)
