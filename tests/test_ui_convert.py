"""The Convert a model… dialog: a real conversion off the GUI thread, errors, Chat with it."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from assistant.library import local as library  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from tests.convert_models import zoo_for  # noqa: E402
from ui.convert_dialog import ConvertDialog  # noqa: E402


@pytest.fixture(scope="module")
def chars_model(tmp_path_factory):
    return zoo_for(tmp_path_factory).get("nanogpt-chars")


def test_converts_a_checkpoint_and_chat_with_it_registers_it(qtbot, chars_model, assistant_home):
    dialog = ConvertDialog()
    qtbot.addWidget(dialog)
    dialog.source_edit.setText(str(chars_model.source))
    dialog.tokenizer_edit.setText(str(chars_model.tokenizer))
    dialog.type_combo.setCurrentText("f16")
    out = dialog.out_edit.text()
    assert out.endswith(".f16.gguf") and out.startswith(str(assistant_home))
    with qtbot.waitSignal(dialog.finished_conversion, timeout=120_000) as blocker:
        dialog.convert_button.click()
        assert dialog.is_running() and not dialog.convert_button.isEnabled()
    assert blocker.args == [True], dialog.status_label.text()
    text = dialog.status_label.text()
    assert "Wrote" in text and "f16" in text
    assert "top-1" in text.lower() or "nmse" in text.lower()
    assert dialog.chat_button.isVisible() or not dialog.isVisible()
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        dialog.chat_button.click()
    model_id = chosen.args[0]
    models = {m.id: m for m in library.list_models(include_unusable=True)}
    assert model_id in models and models[model_id].kind == "converted"


def test_an_empty_folder_shows_the_error_and_the_dialog_stays_usable(qtbot, tmp_path, chars_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    dialog = ConvertDialog()
    qtbot.addWidget(dialog)
    dialog.source_edit.setText(str(empty))
    dialog.verify_check.setChecked(False)
    with qtbot.waitSignal(dialog.finished_conversion, timeout=30_000) as blocker:
        dialog.convert_button.click()
    assert blocker.args == [False]
    assert dialog.status_label.text().startswith("Error: "), dialog.status_label.text()
    assert dialog.convert_button.isEnabled() and dialog.source_edit.isEnabled()
    assert not dialog.chat_button.isVisible()
    # usable again: a real checkpoint now converts
    dialog.source_edit.setText(str(chars_model.source))
    dialog.tokenizer_edit.setText(str(chars_model.tokenizer))
    dialog.type_combo.setCurrentText("q8_0")
    with qtbot.waitSignal(dialog.finished_conversion, timeout=120_000) as blocker:
        dialog.convert_button.click()
    assert blocker.args == [True], dialog.status_label.text()


def test_chat_with_it_makes_it_the_model_of_the_window(qtbot, chars_model, monkeypatch):
    from ui.main_window import MainWindow

    window = MainWindow(Settings())
    qtbot.addWidget(window)
    loads: list[str] = []
    monkeypatch.setattr(window.models, "load", lambda wanted: loads.append(wanted.model))
    window.use_model("local/x.gguf")
    assert loads == ["local/x.gguf"]
    assert Settings.load().model == "", "saved once it has loaded (see test_ui_daily)"


def test_cancel_stops_the_conversion_and_leaves_no_file(qtbot, chars_model, tmp_path):
    dialog = ConvertDialog()
    qtbot.addWidget(dialog)
    dialog.source_edit.setText(str(chars_model.source))
    dialog.tokenizer_edit.setText(str(chars_model.tokenizer))
    out = tmp_path / "cancelled.gguf"
    dialog.out_edit.setText(str(out))
    with qtbot.waitSignal(dialog.finished_conversion, timeout=60_000) as blocker:
        dialog.convert_button.click()
        dialog.cancel_button.click()
    assert blocker.args == [False]
    assert "cancel" in dialog.status_label.text().lower()
    assert not out.exists() and dialog.convert_button.isEnabled()
