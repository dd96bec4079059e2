"""Which conversation is open: open one (read from the store once), start a new chat, create its
row with the first message, delete one, choose its context policy, show another version of a
message, delete a message.

Switching chats never stops a reply: it is finished in the background (see `replies`). The
meter shows the stored figures at once and is then recounted by the model thread against the
loaded model's window, so a changed context size shows without sending anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer

from assistant.conversation.store import Store
from assistant.errors import AssistantError, NotFoundError

from . import ui_state
from .chat_panel import ChatPanel
from .host import ModelHost
from .open_chat import OpenChat
from .sidebar import Sidebar


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
        # run after a conversation is read, before it is drawn (live replies are put back)
        self.on_loaded: list[Callable[[], None]] = []
        self.on_shown: list[Callable[[], None]] = []  # after a chat (or a new one) is shown
        self._last: int | None = None
        self._remember_timer = QTimer(self, singleShot=True, interval=1000)
        self._remember_timer.timeout.connect(lambda: ui_state.save(last_conversation=self._last))
        sidebar.conversation_selected.connect(self.select)
        sidebar.new_requested.connect(self.new_chat)
        sidebar.delete_requested.connect(self.delete)
        panel.policy_combo.activated.connect(self._on_policy_chosen)
        panel.chat.version_requested.connect(self.select_version)
        panel.chat.delete_requested.connect(self.delete_message)
        host.meter_ready.connect(self._on_meter)

    def select(self, conversation_id: int) -> None:
        if conversation_id != self.state.id:
            self.open(conversation_id)

    def open(self, conversation_id: int, *, keep_scroll: bool = False) -> None:
        """Read the conversation from the store (once) and show it."""
        try:
            conv = self.store.get_conversation(conversation_id)
            messages = self.store.messages(conversation_id)
            versions = self.store.versions(conversation_id)
        except NotFoundError:
            self.sidebar.refresh()
            self.show_new_chat()
            return
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        bar = self.panel.chat.verticalScrollBar()
        position = bar.value()
        self.state.load(conv, messages, versions)
        for hook in self.on_loaded:
            hook()
        self.panel.show_conversation(conv.id, conv.title, conv.policy)
        self.panel.chat.show_messages(self.state.messages)
        if keep_scroll:
            bar.setValue(position)
        else:
            self.panel.chat.scroll_to_bottom()
        self._show_stored_meter()
        self.host.recount(conv.id)
        self.sidebar.select(conv.id)
        self._remember(conv.id)
        self._shown()

    def _remember(self, conversation_id: int) -> None:
        """The chat to reopen next time, written once the user settles on one (switching back
        and forth writes nothing)."""
        self._last = conversation_id
        self._remember_timer.start()

    def flush(self) -> None:
        """Write what is still to be remembered (the window is closing)."""
        if self._remember_timer.isActive():
            self._remember_timer.stop()
            ui_state.save(last_conversation=self._last)

    def reload(self) -> None:
        """Read the open conversation again (after a job failed in a way the view cannot know)."""
        if self.state.id is not None:
            self.open(self.state.id, keep_scroll=True)

    def recount(self) -> None:
        """The model or its window changed: the open chat's meter follows at once."""
        if self.state.id is None:
            self.panel.meter.set_capacity(self._capacity())
        else:
            self.host.recount(self.state.id)

    def new_chat(self) -> None:
        if self.state.id is not None or self.state.messages:
            self.show_new_chat()

    def show_new_chat(self) -> None:
        """An empty chat; its row is created by the first message (no empty rows pile up)."""
        self.state.clear()
        self.new_chat_policy = self._new_chat_fields()["policy"]
        self.panel.chat.clear()
        self.panel.show_conversation(None, "New chat", self.new_chat_policy)
        self.panel.meter.set_capacity(self._capacity())
        self.sidebar.refresh(current=None)
        self.sidebar.list.clearSelection()
        self.panel.input.setFocus(Qt.FocusReason.OtherFocusReason)
        self._shown()

    def _shown(self) -> None:
        for hook in self.on_shown:
            hook()

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

        self.host.after_replies(delete, conversation_id)

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
        self.panel.chat_created(conv.id)
        self.sidebar.touch(conv.id, conv.title)
        self.sidebar.select(conv.id)
        self._remember(conv.id)
        return conv.id

    def show_title(self, conversation_id: int, title: str) -> None:
        """A title the core gave the chat (after its first document) in the list and header."""
        self.sidebar.touch(conversation_id, title)
        if conversation_id == self.state.id and title != self.state.title:
            self.state.update(title=title)
            self.panel.title_label.setText(title)

    # -- versions and deletions ------------------------------------------------------------
    def select_version(self, message_id: int) -> None:
        """Show another version of a message (and the messages that followed it there)."""
        if self.state.id is None or self.host.replying_in(self.state.id):
            return
        try:
            self.store.select_version(message_id)
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        self.reload()

    def delete_message(self, message_id: int) -> None:
        """Delete one version of a message and what followed it there (asked first)."""
        message = self.state.find(message_id)
        if message is None or self.state.id is None or self.host.replying_in(self.state.id):
            return
        index = self.state.messages.index(message)
        later = len(self.state.messages) - index - 1
        more = f" and the {later} message{'s' if later != 1 else ''} after it" if later else ""
        others = " Its other versions are kept." if len(message.versions) > 1 else ""
        if not self._confirm(
            "Delete message", f"Delete this message{more}? This cannot be undone.{others}"
        ):
            return
        try:
            self.store.delete_version(message_id)
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return
        self.reload()

    # -- the meter -------------------------------------------------------------------------
    def _show_stored_meter(self) -> None:
        """The meter for a reopened conversation: its last reply's stored context report,
        until the recount arrives."""
        for message in reversed(self.state.messages):
            context = message.stats.get("context") if message.role == "assistant" else None
            if context:
                self.panel.meter.set_report(context, message.tokens or 0)
                return
        self.panel.meter.set_capacity(self._capacity())

    def _on_meter(self, conversation_id: int, report: dict[str, Any] | None) -> None:
        if conversation_id != self.state.id or self.host.replying_in(conversation_id):
            return  # another chat's, or a reply's own figures follow
        if report is None:
            self.panel.meter.set_capacity(self._capacity())
        else:
            self.panel.meter.set_report(report)

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
        self.host.recount(self.state.id)
