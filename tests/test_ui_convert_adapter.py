"""The convert dialog with a LoRA adapter folder: the base offered, merged into a new model or
kept as an adapter (the base converted to apply it on), "Chat with it"; and Settings → Model →
Adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from assistant import paths  # noqa: E402
from assistant.library import local as library  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from tests.convert_models import zoo_for  # noqa: E402
from ui.convert_dialog import ConvertDialog  # noqa: E402
from ui.settings_dialog import SettingsDialog  # noqa: E402


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


@pytest.fixture(scope="module")
def tuned(zoo):
    return zoo.get("qwen3-rslora")


def _dialog(qtbot, adapter: Path) -> ConvertDialog:
    dialog = ConvertDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.source_edit.setText(str(adapter))
    return dialog


def _run(qtbot, dialog: ConvertDialog) -> None:
    with qtbot.waitSignal(dialog.finished_conversion, timeout=180_000) as blocker:
        dialog.convert_button.click()
    assert blocker.args == [True], dialog.status_label.text()


def test_merge_an_adapter_into_a_new_model(qtbot, zoo, tuned):
    dialog = _dialog(qtbot, tuned.source)
    assert dialog.adapter_box.isVisible()
    base = zoo.get("qwen3").source
    assert dialog.adapter_box.base() == str(base)  # from the adapter's config
    dialog.type_combo.setCurrentText("q8_0")
    assert dialog.out_edit.text() == str(paths.models_dir() / f"{tuned.source.name}.q8_0.gguf")
    _run(qtbot, dialog)
    text = dialog.status_label.text()
    assert "Wrote qwen3-rslora.q8_0.gguf" in text and "KL mean" in text and "top-1" in text
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        dialog.chat_button.click()
    models = {m.id: m for m in library.list_models()}
    assert models[chosen.args[0]].kind == "converted"


def test_keep_as_adapter_converts_the_base_and_chats_with_both(qtbot, tuned):
    dialog = _dialog(qtbot, tuned.source)
    dialog.type_combo.setCurrentText("q4_k_m")
    dialog.adapter_box.keep_radio.setChecked(True)
    assert dialog.type_combo.currentText() == "f16"  # adapters: direct types only
    out = Path(dialog.out_edit.text())
    assert out.parent == paths.models_dir() / "adapters"
    dialog.verify_check.setChecked(False)
    _run(qtbot, dialog)
    assert "Converted the base model" in dialog.status_label.text()
    with qtbot.waitSignal(dialog.adapter_chosen) as chosen:
        dialog.chat_button.click()
    base_id, adapter = chosen.args
    assert Path(adapter) == out and out.is_file()
    listed = {m.id: m for m in library.list_models()}
    assert listed[base_id].kind == "converted" and all(m.path != out for m in listed.values())
    # a second adapter conversion finds the base in the library: nothing else is converted
    again = _dialog(qtbot, tuned.source)
    again.adapter_box.keep_radio.setChecked(True)
    again.verify_check.setChecked(False)
    _run(qtbot, again)
    assert "Converted the base" not in again.status_label.text()
    assert again.base_model_id == base_id


def test_a_wrong_base_is_an_error_and_the_dialog_stays_usable(qtbot, zoo, tuned):
    dialog = _dialog(qtbot, tuned.source)
    dialog.adapter_box.base_combo.setEditText(str(zoo.get("phi3").source))
    with qtbot.waitSignal(dialog.finished_conversion, timeout=60_000) as blocker:
        dialog.convert_button.click()
    assert blocker.args == [False]
    assert "does not have" in dialog.status_label.text()
    assert dialog.convert_button.isEnabled() and not dialog.chat_button.isVisible()
    assert not Path(dialog.out_edit.text()).exists()


def test_settings_adapter_row(qtbot, tmp_path):
    settings = Settings(lora_path="/models/a.gguf", lora_scale=0.5)
    dialog = SettingsDialog(settings, gpu_supported=False)
    qtbot.addWidget(dialog)
    assert dialog.adapter_row.path_edit.text() == "/models/a.gguf"
    dialog.adapter_row.scale_spin.setValue(1.5)
    dialog.adapter_row.path_edit.setText(str(tmp_path / "b.gguf"))
    edited = dialog.settings()
    assert edited.lora_path == str(tmp_path / "b.gguf") and edited.lora_scale == 1.5
    options = edited.load_options()
    assert options.lora_path == edited.lora_path and options.lora_scale == 1.5
