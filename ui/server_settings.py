"""Settings → Local server: on/off, port, API key (generated on request), the URL to copy."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from assistant.settings import Settings
from assistant.types import RANGES

from .local_server import base_url, new_api_key


class ServerGroup(QGroupBox):
    """The local server's settings, and what it is doing now (`state`: a line, may be "")."""

    def __init__(self, state: str = "", parent: QWidget | None = None):
        super().__init__("Local server (OpenAI-compatible API)", parent)
        form = QFormLayout(self)
        self.enabled = QCheckBox("Let other apps on this computer use the model")
        self.enabled.setAccessibleName("Local server")
        self.enabled.setToolTip(
            "Editors, scripts and other chat apps that speak the OpenAI API can use the loaded "
            "model. Their requests wait their turn with your own replies."
        )
        form.addRow("", self.enabled)
        spec = RANGES["server_port"]
        self.port = QSpinBox()
        self.port.setRange(int(spec.low), int(spec.high))
        self.port.setAccessibleName("Server port")
        form.addRow("Port:", self.port)
        key_row = QHBoxLayout()
        self.api_key = QLineEdit()
        self.api_key.setAccessibleName("API key")
        self.api_key.setPlaceholderText("None: any app on this computer may connect")
        self.generate = QPushButton("Generate")
        self.generate.setAccessibleName("Generate an API key")
        self.generate.clicked.connect(lambda: self.api_key.setText(new_api_key()))
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(self.generate)
        form.addRow("API key:", key_row)
        url_row = QHBoxLayout()
        self.url = QLineEdit()
        self.url.setReadOnly(True)
        self.url.setAccessibleName("Server URL")
        self.copy = QPushButton("Copy")
        self.copy.setAccessibleName("Copy the server URL")
        self.copy.clicked.connect(self._copy)
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.copy)
        form.addRow("Base URL:", url_row)
        self.state = QLabel(state)
        self.state.setObjectName("serverState")
        self.state.setWordWrap(True)
        self.state.setVisible(bool(state))
        form.addRow("", self.state)
        self.port.valueChanged.connect(self._show_url)
        self.enabled.toggled.connect(self._enable)

    def load(self, settings: Settings) -> None:
        self.enabled.setChecked(settings.server_enabled)
        self.port.setValue(settings.server_port)
        self.api_key.setText(settings.server_api_key)
        self._show_url()
        self._enable(settings.server_enabled)

    def values(self) -> dict[str, Any]:
        return {
            "server_enabled": self.enabled.isChecked(),
            "server_port": self.port.value(),
            "server_api_key": self.api_key.text().strip(),
        }

    def _show_url(self) -> None:
        self.url.setText(base_url(self.port.value()))

    def _enable(self, on: bool) -> None:
        for widget in (self.port, self.api_key, self.generate):
            widget.setEnabled(on)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.url.text())
