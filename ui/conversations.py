"""Which conversation is open: open one (read from the store once), start a new chat, create its
row with the first message, delete one, and choose its context policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt

from assistant.conversation.store import Store
from assistant.errors import AssistantError, NotFoundError

from . import ui_state
from .chat_panel import ChatPanel
from .open_chat import OpenChat
from .sidebar import Sidebar
from .worker import ModelHost


class ConversationController(QObject):
    def __init__(
        self,
        host: ModelHost,
        store: Store,
        state: OpenChat,
        panel: ChatPanel,
        sidebar: Sidebar,
        *,
        new_chat_fields: Callable[[], dict[str, Any]],
        capacity: Callable[[], int],
        confirm: Callable[[str, str], bool],
        parent: QObject | None = None,
    ):
        """`new_chat_fields`: system prompt, model, sampling and policy for a new row;
        `capacity`: the context size an empty meter shows (0 without a model)."""
        super().__init__(parent)
        self.host = host
        self.store = store
        self.state = state
        self.panel = panel
        self.sidebar = sidebar
        self._new_chat_fields = new_chat_fields
        self._capacity = capacity
        self._confirm = confirm
        self.new_chat_policy = new_chat_fields()["policy"]
        sidebar.conversation_selected.connect(self.select)
        sidebar.new_requested.connect(self.new_chat)
        sidebar.delete_requested.connect(self.delete)
        panel.policy_combo.activated.connect(self._on_policy_chosen)

    def select(self, conversation_id: int) -> None:
        """Open another conversation once the reply (if any) is stopped and saved."""
        if conversation_id != self.state.id:
            self.host.after_replies(lambda: self.open(conversation_id))

    def open(self, conversation_id: int) -> None:
        """Read the conversation from the store (once) and show it."""
        try:
            conv = self.store.get_conversation(conversation_id)
            messages = self.store.messages(conversation_id)
        except NotFoundError:
            self.sidebar.refresh()
            self.show_new_chat()
            return
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        self.state.load(conv, messages)
        self.panel.show_conversation(conv.title, conv.policy)
        self.panel.chat.show_messages(self.state.messages)
        self.panel.chat.scroll_to_bottom()
        self._show_stored_meter()
        self.sidebar.select(conv.id)
        ui_state.save(last_conversation=conv.id)

    def reload(self) -> None:
        """Read the open conversation again (after a job failed in a way the view cannot know)."""
        if self.state.id is not None:
            self.open(self.state.id)

    def new_chat(self) -> None:
        self.host.after_replies(self.show_new_chat)

    def show_new_chat(self) -> None:
        """An empty chat; its row is created by the first message (no empty rows pile up)."""
        self.state.clear()
        self.new_chat_policy = self._new_chat_fields()["policy"]
        self.panel.chat.clear()
        self.panel.show_conversation("New chat", self.new_chat_policy)
        self.panel.meter.set_capacity(self._capacity())
        self.sidebar.refresh(current=None)
        self.sidebar.list.clearSelection()
        self.panel.input.setFocus(Qt.FocusReason.OtherFocusReason)

    def delete(self, conversation_id: int) -> None:
        try:
            title = self.store.get_conversation(conversation_id).title
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        if not self._confirm(
            "Delete conversation", f"Delete “{title}” and all its messages? This cannot be undone."
        ):
            return

        def delete() -> None:
            try:
                self.store.delete_conversation(conversation_id)
            except AssistantError as exc:
                self.panel.show_error(str(exc))
            if conversation_id == self.state.id:
                self.show_new_chat()
            else:
                self.sidebar.refresh()

        if conversation_id == self.state.id:
            self.host.after_replies(delete)
        else:
            delete()

    def ensure(self) -> int | None:
        """The open conversation's id; a new chat's row is created by its first message."""
        if self.state.id is not None:
            return self.state.id
        try:
            conv = self.store.create_conversation(
                **{**self._new_chat_fields(), "policy": self.new_chat_policy}
            )
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return None
        self.state.start(conv)
        self.panel.title_label.setText(conv.title)
        self.sidebar.touch(conv.id, conv.title)
        self.sidebar.select(conv.id)
        ui_state.save(last_conversation=conv.id)
        return conv.id

    def _show_stored_meter(self) -> None:
        """The meter for a reopened conversation: its last reply's stored context report."""
        for message in reversed(self.state.messages):
            context = message.stats.get("context") if message.role == "assistant" else None
            if context:
                self.panel.meter.set_report(context, message.tokens or 0)
                return
        self.panel.meter.set_capacity(self._capacity())

    def _on_policy_chosen(self, _index: int) -> None:
        policy = self.panel.policy_combo.currentData()
        if self.state.id is None:
            self.new_chat_policy = policy
            return
        try:
            self.store.update_conversation(self.state.id, policy=policy)
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        self.state.update(policy=policy)
