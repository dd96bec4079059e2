"""Fixtures for the local server tests (loaded with `pytest_plugins`): one gate over the shared
1024-token runtime, and real uvicorn servers on free ports, each with its own configuration."""

from __future__ import annotations

import threading

import pytest

from assistant.server.app import ServerConfig
from assistant.server.gate import Gate
from assistant.server.runner import LocalServer
from assistant.server.windows import ConversationWindows
from assistant.types import Policy, SamplingOptions
from tests.server_http import CTX

DEFAULTS = SamplingOptions(temperature=0, seed=1, max_tokens=16)


@pytest.fixture(scope="session")
def server_gate(runtime_factory):
    """The one owner of the 1024-token model for every server test (one at a time)."""
    gate = Gate(runtime_factory(CTX))
    gate.start()
    yield gate
    gate.close()


@pytest.fixture
def serve(server_gate):
    """Start a server: `serve(policy=..., api_key=..., ...)`; stopped after the test."""
    started: list[LocalServer] = []

    def start(policy: Policy = Policy.DROP, **config) -> LocalServer:
        config.setdefault("sampling", DEFAULTS)
        config.setdefault("model_id", "embedded")
        server = LocalServer(
            server_gate, ConversationWindows(policy), ServerConfig(port=0, **config)
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    _wait_idle(server_gate)


def _wait_idle(gate: Gate, timeout: float = 30.0) -> None:
    done = threading.Event()
    gate.submit(lambda *_: done.set(), lambda *_: None, "idle")
    assert done.wait(timeout), "the model gate did not become idle"
