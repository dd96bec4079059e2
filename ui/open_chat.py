"""The open conversation as the window holds it: an in-memory list of messages.

The chat view renders this list; the window changes it from the user's intents (a message is
shown at once, before the worker has stored it) and from the worker's signals (the stored ids,
the reply's text, its stats and status, what the model no longer sees). Opening a conversation
reads it from the store once; nothing here touches the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from assistant.conversation.store import Conversation, StoredMessage


@dataclass(eq=False)  # identity: two messages with the same text are still two messages
class ViewMessage:
    role: str
    content: str = ""
    id: int | None = None  # the stored row; None until the worker reports it
    status: str = "complete"
    stats: dict[str, Any] = field(default_factory=dict)
    tokens: int | None = None
    hidden: str | None = None  # 'dropped' or 'summarized': the model no longer sees it
    versions: tuple[int, ...] = ()  # the ids of this message's versions (empty: only one)
    wait: str = ""  # what a reply waits for before its first token ("Reading 1,830 tokens…")
    progress: tuple[int, int] | None = None  # of that wait, where it is counted

    @classmethod
    def from_stored(
        cls, message: StoredMessage, hidden: str | None = None, versions: tuple[int, ...] = ()
    ) -> ViewMessage:
        return cls(
            role=message.role,
            content=message.content,
            id=message.id,
            status=message.status,
            stats=dict(message.stats),
            tokens=message.tokens,
            hidden=hidden,
            versions=versions,
        )

    @property
    def version_index(self) -> int:
        return self.versions.index(self.id) if self.id in self.versions else len(self.versions)

    def apply(self, message: StoredMessage) -> None:
        """Take the stored row's id, text, status and stats (the store has the final word)."""
        self.id = message.id
        self.content = message.content
        self.status = message.status
        self.stats = dict(message.stats)
        self.tokens = message.tokens


def hidden_reason(message: Any, conversation: Conversation | None) -> str | None:
    """'dropped' or 'summarized' when the model no longer sees this stored message, else None."""
    if conversation is None or conversation.window_start_id is None:
        return None
    if message.id >= conversation.window_start_id:
        return None
    summarized = (
        conversation.policy == "summarize"
        and conversation.summary
        and conversation.summary_upto_id is not None
        and message.id < conversation.summary_upto_id
    )
    return "summarized" if summarized else "dropped"


class OpenChat:
    """The conversation on screen (None: a new chat not stored yet) and its messages."""

    def __init__(self) -> None:
        self.conversation: Conversation | None = None
        self.messages: list[ViewMessage] = []

    @property
    def id(self) -> int | None:
        return self.conversation.id if self.conversation is not None else None

    @property
    def title(self) -> str:
        return self.conversation.title if self.conversation is not None else "New chat"

    def load(
        self,
        conversation: Conversation,
        stored: Sequence[StoredMessage],
        versions: Mapping[int, Any] | None = None,
    ) -> None:
        """The conversation as stored; `versions` (see `Store.versions`) gives the messages
        that have other versions their switcher."""
        versions = versions or {}
        self.conversation = conversation
        self.messages = [
            ViewMessage.from_stored(
                m,
                hidden_reason(m, conversation),
                versions[m.id].ids if m.id in versions else (),
            )
            for m in stored
            if m.role != "system"
        ]

    def clear(self) -> None:
        self.conversation = None
        self.messages = []

    def start(self, conversation: Conversation) -> None:
        """The first message of a new chat created its row: keep what is shown."""
        self.conversation = conversation

    def update(self, **fields: Any) -> None:
        """Keep a change the window made to the stored row (title, policy) in view."""
        if self.conversation is not None:
            self.conversation = replace(self.conversation, **fields)

    # -- messages --------------------------------------------------------------------------
    def add(self, role: str, content: str = "", status: str = "complete") -> ViewMessage:
        message = ViewMessage(role, content, status=status)
        self.messages.append(message)
        return message

    def find(self, message_id: int | None) -> ViewMessage | None:
        if message_id is None:
            return None
        return next((m for m in self.messages if m.id == message_id), None)

    def last(self) -> ViewMessage | None:
        return self.messages[-1] if self.messages else None

    def remove(self, *messages: ViewMessage) -> None:
        self.messages = [m for m in self.messages if all(m is not gone for gone in messages)]

    def remove_after(self, message: ViewMessage) -> None:
        """Drop every message after this one (an edit replaces the later turns)."""
        for index, kept in enumerate(self.messages):
            if kept is message:
                del self.messages[index + 1 :]
                return

    def mark_window(self, first_visible_id: int | None, summarized: int) -> None:
        """Mark what the model no longer sees after a reply's window was fitted.

        Messages before the first visible one left the window: the first `summarized` of them
        are in the rolling summary, the others were dropped (the order of a ContextReport).
        """
        if first_visible_id is None:
            return
        start = next((i for i, m in enumerate(self.messages) if m.id == first_visible_id), None)
        if start is None:
            return
        for index, message in enumerate(self.messages):
            if index >= start:
                message.hidden = None
            else:
                message.hidden = "summarized" if index < summarized else "dropped"
