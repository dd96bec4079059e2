"""Settings → Local server (issue 15): the app serves the OpenAI API with its own loaded model,
the official `openai` client as the other app; requests queue with the app's own replies."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import replace

import pytest

pytest.importorskip("pytestqt")

import openai  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from assistant.conversation.store import Store  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from ui.host import ModelHost  # noqa: E402
from ui.local_server import LocalServerControl  # noqa: E402
from ui.settings_dialog import SettingsDialog  # noqa: E402

from .ui_windows import REPLY_TIMEOUT, send, window_factory  # noqa: E402


@pytest.fixture
def make_window(qtbot):
    yield from window_factory(qtbot)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_background(call) -> dict:
    """Run `call` on a thread (the GUI thread must keep turning: it posts the server's jobs)."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = call()
        except Exception as exc:  # the test looks at it
            box["error"] = exc

    threading.Thread(target=run, daemon=True).start()
    return box


def get(port: int, path: str, key: str = "") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def long_reply(port: int) -> list:
    """Stream a reply that would run for minutes; the finish reasons of its chunks."""
    stream = api(port, "x").chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Tell a very long story."}],
        max_tokens=4000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    return [c.choices[0].finish_reason for c in stream if c.choices]


def api(port: int, key: str):
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120
    )


def test_the_app_answers_api_requests_with_its_model_in_turn_with_its_replies(make_window, qtbot):
    port = free_port()
    window = make_window(server_enabled=True, server_port=port, server_api_key="sk-test")
    assert window.server.running and window.server.url == f"http://127.0.0.1:{port}/v1"
    assert window.server_status.isVisible() and window.server_status.text() == f"API on :{port}"
    assert get(port, "/health", "sk-test") == (200, {"status": "ok", "busy": False, "waiting": 0})
    started, shown = [], []
    window.host.job_started.connect(lambda job: started.append(type(job).__name__))
    window.server.busy_changed.connect(lambda _busy: shown.append(window.server_status.text()))

    send(qtbot, window, "Name a colour.", wait=False)  # the app's own reply goes first
    box = in_background(
        lambda: api(port, "sk-test").chat.completions.create(
            model="whatever",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            extra_body={"ignore_eos": True},  # eight tokens whatever the sampler draws
        )
    )
    qtbot.waitUntil(lambda: bool(box), timeout=REPLY_TIMEOUT)
    qtbot.waitUntil(lambda: not window.host.busy, timeout=REPLY_TIMEOUT)

    assert "error" not in box, box.get("error")
    reply = box["result"]
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8
    assert reply.model == window.info.path.rsplit("/", 1)[-1]  # the app's loaded model
    assert started.index("ServeJob") > started.index("ReplyJob")  # queued behind the app's
    assert shown == ["API: answering a request…", f"API on :{port}"]
    messages = window.store.messages(window.state.id)
    assert [m.role for m in messages][-2:] == ["user", "assistant"]
    assert messages[-1].status not in ("streaming", "cancelled", "error")  # the app's reply ended
    with pytest.raises(openai.AuthenticationError):  # refused before it reaches the model
        api(port, "sk-wrong").models.list()


def test_settings_turn_the_server_on_and_off_and_a_taken_port_is_said(make_window, qtbot):
    window = make_window()
    assert not window.server.running and not window.server_status.isVisible()
    dialog = SettingsDialog(window.settings, parent=window)
    qtbot.addWidget(dialog)
    group = dialog.server_group
    assert not group.enabled.isChecked() and not group.port.isEnabled()
    group.enabled.setChecked(True)
    port = free_port()
    group.port.setValue(port)
    assert group.port.isEnabled() and group.url.text() == f"http://127.0.0.1:{port}/v1"
    qtbot.mouseClick(group.generate, Qt.MouseButton.LeftButton)
    key = group.api_key.text()
    assert key.startswith("sk-local-") and len(key) > 30
    qtbot.mouseClick(group.copy, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == group.url.text()

    window.apply_settings(dialog.settings())
    assert window.server.running and Settings.load().server_api_key == key  # kept
    status, body = get(port, "/v1/models", key)
    assert status == 200 and body["data"][0]["id"] == window.info.path.rsplit("/", 1)[-1]
    assert get(port, "/v1/models")[0] == 401
    assert get(port, "/health")[0] == 401  # the key guards every route

    window.apply_settings(replace(window.settings, server_enabled=False))
    assert not window.server.running and not window.server_status.isVisible()
    with pytest.raises(ConnectionRefusedError):
        get(port, "/health")

    with socket.socket() as taken:  # another program holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        window.apply_settings(replace(window.settings, server_enabled=True, server_port=busy_port))
        assert not window.server.running
        text = window.model_banner.text()
        assert f"127.0.0.1:{busy_port}" in text and "Choose another port" in text
        again = SettingsDialog(window.settings, server_state=window._server_state(), parent=window)
        qtbot.addWidget(again)
        assert "Choose another port" in again.server_group.state.text()
    send(qtbot, window, "Still there?")  # the app goes on
    last = window.store.messages(window.state.id)[-1]
    assert last.role == "assistant" and last.status not in ("streaming", "cancelled", "error")


def test_a_request_before_any_model_is_loaded_gets_503_and_the_host_goes_on(qtbot, tmp_path):
    store = Store(tmp_path / "chats.db")
    host = ModelHost(store)
    control = LocalServerControl(host)
    port = free_port()
    control.apply(Settings(server_enabled=True, server_port=port))
    try:
        assert get(port, "/health")[0] == 503  # no model yet, as llama-server says
        box = in_background(
            lambda: api(port, "x").chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hi"}]
            )
        )
        qtbot.waitUntil(lambda: bool(box), timeout=30_000)
        error = box.get("error")
        assert isinstance(error, openai.APIStatusError) and error.status_code == 503
        assert error.body["code"] == "model_not_loaded" and "loading" in error.body["message"]
    finally:
        control.stop()
        host.shutdown()
        store.close()


def test_closing_the_app_ends_a_server_reply_in_flight_as_cancelled(make_window, qtbot):
    port = free_port()
    window = make_window(server_enabled=True, server_port=port)
    busy: list[bool] = []
    window.server.busy_changed.connect(busy.append)

    box = in_background(lambda: long_reply(port))
    qtbot.waitUntil(lambda: busy == [True], timeout=REPLY_TIMEOUT)
    window.close()  # returns once the model thread has ended: the reply was stopped
    assert not window.host.running and not window.server.running
    qtbot.waitUntil(lambda: bool(box), timeout=30_000)
    assert box.get("result", [None])[-1] == "cancelled", box


def test_stop_in_the_status_bar_ends_a_runaway_api_reply_and_the_app_goes_on(make_window, qtbot):
    port = free_port()
    window = make_window(server_enabled=True, server_port=port)
    box = in_background(lambda: long_reply(port))
    status = window.server_status
    qtbot.waitUntil(lambda: status.stop_button.isVisible(), timeout=REPLY_TIMEOUT)
    qtbot.mouseClick(status.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(box), timeout=30_000)
    assert box.get("result", [None])[-1] == "cancelled", box
    qtbot.waitUntil(lambda: not status.stop_button.isVisible(), timeout=10_000)
    assert status.text() == f"API on :{port}" and window.server.running
    send(qtbot, window, "Still there?")  # the app's own reply is not held up
    last = window.store.messages(window.state.id)[-1]
    assert last.role == "assistant" and last.status not in ("streaming", "cancelled", "error")
