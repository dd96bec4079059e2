"""The model manager against the real local fake Hub (tests/hub_server.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from assistant.library import download as downloads
from assistant.library import local as library  # noqa: E402
from tests.hub_server import FakeHub, Shape, write_model_gguf  # noqa: E402
from ui.model_manager import ModelManager, progress_text  # noqa: E402

TINY_REPO = "test/Tiny-GGUF"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ui")
    return {
        "tiny-Q8_0.gguf": write_model_gguf(folder / "tiny-Q8_0.gguf").read_bytes(),
        "tiny-F16.gguf": write_model_gguf(folder / "tiny-F16.gguf", Shape(n_layers=3)).read_bytes(),
        "README.md": b"# Tiny\n",
    }


@pytest.fixture
def fake_hub(monkeypatch, tiny_files):
    server = FakeHub()
    server.add_repo(TINY_REPO, tiny_files, downloads=7)
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.01)
    yield server
    server.stop()


def run_task(qtbot, manager: ModelManager, start, ok: bool = True) -> None:
    with qtbot.waitSignal(manager.task_finished, timeout=30_000) as blocker:
        start()
    assert blocker.args == [ok], manager.status_label.text()


def texts(widget) -> list[str]:
    return [widget.item(i).text() for i in range(widget.count())]


def test_search_then_download_with_progress_into_the_library(qtbot, fake_hub):
    manager = ModelManager(n_ctx=1024)
    qtbot.addWidget(manager)
    manager.search_edit.setText("tiny")
    run_task(qtbot, manager, manager.search_button.click)
    assert any(TINY_REPO in t for t in texts(manager.repo_list))
    run_task(qtbot, manager, lambda: manager.repo_list.setCurrentRow(0))
    files = texts(manager.file_list)
    assert len(files) == 2 and any("Q8_0" in t and "MB" in t for t in files)
    assert all("fit unknown" not in t for t in files), files
    row = next(i for i, t in enumerate(files) if "Q8_0" in t)
    manager.file_list.setCurrentRow(row)
    seen: list = []
    shown = manager._on_download_progress
    manager._on_download_progress = lambda p: (seen.append(p), shown(p))
    run_task(qtbot, manager, manager.file_download.click)
    assert "Downloaded" in manager.status_label.text()
    assert seen and seen[-1].done == seen[-1].total > 0
    assert "MB/s" in progress_text(seen[-1]) and "s left" in progress_text(seen[-1])
    assert not manager.progress_bar.isVisible() and not manager.cancel_button.isVisible()
    assert f"{TINY_REPO}/tiny-Q8_0.gguf" in [m.id for m in library.list_models()]
    assert any("tiny-Q8_0" in t or "downloaded" in t for t in texts(manager.library_list))


def test_unreachable_and_offline_hub_errors_are_shown(qtbot, fake_hub, monkeypatch):
    manager = ModelManager()
    qtbot.addWidget(manager)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    manager.search_edit.setText("x")
    run_task(qtbot, manager, manager.search, ok=False)
    assert "Cannot reach the Hub" in manager.status_label.text()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_task(qtbot, manager, manager.search, ok=False)
    assert "offline" in manager.status_label.text().lower()
    assert manager.search_button.isEnabled()


def test_import_load_and_remove(qtbot, tiny_files, tmp_path):
    src = tmp_path / "mine.gguf"
    src.write_bytes(tiny_files["tiny-Q8_0.gguf"])
    manager = ModelManager()
    qtbot.addWidget(manager)
    run_task(qtbot, manager, lambda: manager.import_file(src))
    assert "Imported" in manager.status_label.text()
    ids = [manager.library_list.item(i).data(256) for i in range(manager.library_list.count())]
    new_id = next(i for i in ids if i != "embedded")
    manager.library_list.setCurrentRow(ids.index(new_id))
    chosen: list[str] = []
    manager.model_chosen.connect(chosen.append)
    manager.load_button.click()
    assert chosen == [new_id] and "Loading" in manager.status_label.text()
    manager.confirm = lambda _t, _m: True
    manager.remove_button.click()
    assert "Removed" in manager.status_label.text() or "removed" in manager.status_label.text()
    assert new_id not in [m.id for m in library.list_models(include_unusable=True)]


def test_catalog_lists_sizes_fit_and_what_each_model_is_for(qtbot):
    manager = ModelManager()
    qtbot.addWidget(manager)
    items = texts(manager.catalog_list)
    assert items and all(" MB" in t or " GB" in t for t in items)
    assert any("CPU only" in t or "GPU" in t or "too large" in t for t in items)
    assert all("CPU only" not in t or "CPU only (" in t for t in items), "CPU only says why"
    assert all(len(t.splitlines()) == 2 and "Licence" in t for t in items), "a description"
    names = [manager.library_list.item(i).text() for i in range(manager.library_list.count())]
    assert any(n.startswith("SmolLM2 135M Instruct · built in") for n in names)


def test_the_window_opens_the_manager_and_loads_the_chosen_model(qtbot, monkeypatch):
    from assistant.settings import Settings
    from ui.main_window import MainWindow

    window = MainWindow(Settings())
    qtbot.addWidget(window)
    loads: list[str] = []
    monkeypatch.setattr(window.models, "load", lambda wanted: loads.append(wanted.model))
    window.models_action.trigger()
    manager = window.findChild(ModelManager)
    assert manager is not None and manager.isVisible()
    manager.library_list.setCurrentRow(0)
    manager.load_button.click()
    assert loads == [""], "the built-in model, asked for by the window"
    manager.close()


def test_cancel_lists_the_files_without_waiting_for_their_headers(qtbot, fake_hub):
    """A slow Hub mirror: Cancel shows the files at once, their fit marked not checked."""
    manager = ModelManager(n_ctx=1024)
    qtbot.addWidget(manager)
    manager.search_edit.setText("tiny")
    run_task(qtbot, manager, manager.search_button.click)
    for name in ("tiny-Q8_0.gguf", "tiny-F16.gguf"):
        fake_hub.trickle[name] = 0.01  # 100 bytes a second: minutes for one header
    with qtbot.waitSignal(manager.task_finished, timeout=10_000) as blocker:
        manager.repo_list.setCurrentRow(0)
        assert not manager.cancel_button.isHidden()
        qtbot.wait(300)
        manager.cancel_button.click()
    assert blocker.args == [True], manager.status_label.text()
    files = texts(manager.file_list)
    assert len(files) == 2 and all("fit not checked" in t for t in files), files
