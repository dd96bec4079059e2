"""Export the open chat to Markdown or JSON, and import a chat exported as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from assistant.conversation import transfer
from assistant.conversation.store import Store
from assistant.errors import AssistantError


def file_name(title: str) -> str:
    """A file name from a chat title: the characters file systems refuse or that mean a
    folder are left out, spaces kept, at most 60 characters; 'chat' for nothing left."""
    kept = re.sub(r'[\x00-\x1f<>:"/\\|?*]+', " ", title)
    kept = " ".join(kept.split()).strip(" .")[:60].strip(" .")
    return kept or "chat"


def export_chat(
    parent: QWidget, store: Store, conversation_id: int, show_error: Callable[[str], None]
) -> None:
    """Ask for a file (.md or .json, named after the chat) and write the conversation to it."""
    try:
        title = store.get_conversation(conversation_id).title
    except AssistantError as exc:
        show_error(str(exc))
        return
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export chat", f"{file_name(title)}.md", "Markdown (*.md);;JSON (*.json)"
    )
    if not path:
        return
    try:
        if path.endswith(".json"):
            text = json.dumps(
                transfer.export_json(store, conversation_id), ensure_ascii=False, indent=2
            )
        else:
            text = transfer.export_markdown(store, conversation_id)
        Path(path).write_text(text + "\n", encoding="utf-8")
    except AssistantError as exc:
        show_error(str(exc))
    except OSError as exc:
        show_error(f"Cannot write {path}: {exc.strerror}.")


def import_chat(parent: QWidget, store: Store, show_error: Callable[[str], None]) -> int | None:
    """Ask for a JSON export and store it as a new conversation; its id, or None."""
    path, _ = QFileDialog.getOpenFileName(parent, "Import chat", "", "JSON (*.json)")
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:  # json gives up on arrays or objects nested thousands deep
        show_error(f"{path} is not valid JSON (nested too deeply).")
        return None
    except (OSError, ValueError):
        show_error(f"{path} is not a readable JSON file.")
        return None
    try:
        return transfer.import_json(store, data, source=path).id
    except AssistantError as exc:
        show_error(str(exc))
    return None
