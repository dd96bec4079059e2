"""Documents joining a conversation: attached to ask about, or summarized.

Either way the document is stored and indexed as passages (`passage_index`), so that the
questions after it are answered from the document itself (`retrieval`), and a chat still
called "New chat" is titled after the document.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assistant.conversation import passage_index
from assistant.conversation.passage_index import DocumentInfo, IndexProgress
from assistant.conversation.titles import NEW_TITLE
from assistant.documents.titles import document_title
from assistant.types import ASSISTANT, USER

if TYPE_CHECKING:
    from assistant.conversation.store import Store, StoredMessage


def attach(
    store: Store,
    runtime: Any,
    conversation_id: int,
    name: str,
    text: str,
    *,
    retitle: bool = False,
    progress: Callable[[IndexProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DocumentInfo:
    """Store and index a document in the conversation (cancellable, with progress); `runtime`
    (any object with `tokenize`, or None) counts its size in tokens. With `retitle`, a chat
    still called "New chat" once it is indexed is named after the document."""
    count = (lambda t: len(runtime.tokenize(t))) if runtime is not None else None
    info = passage_index.add_document(
        store, conversation_id, name, text, count=count, progress=progress, cancel=cancel
    )
    # checked now, not when indexing began: a first message sent meanwhile has named the chat
    if retitle and store.get_conversation(conversation_id).title == NEW_TITLE:
        store.update_conversation(conversation_id, title=document_title(name, text))
    return info


def record_summary(
    store: Store,
    runtime: Any,
    conversation_id: int,
    name: str,
    text: str,
    result: Any,
    report: Any = None,
    *,
    retitle: bool = False,
) -> tuple[StoredMessage, StoredMessage]:
    """Attach the summarized document and put its summary into the conversation; returns the
    stored request ("Summarize the document …") and the summary.

    The summary's stats carry its points with their source ranges and the document id (for
    'show the source passage'); a cancelled run keeps the points written so far, marked
    partial, and says so when there were none yet."""
    info = attach(store, runtime, conversation_id, name, text, retitle=retitle)
    passage_index.set_summary(store, info.id, result.summary)
    request = store.add_message(
        conversation_id, USER, f"Summarize the document “{name}” ({result.source_tokens} tokens)."
    )
    summary = result.to_json()
    stats: dict = {"summary": {**summary, "document_id": info.id, "document": name}}
    if report is not None:  # the window before the summary, as for a reply
        stats["context"] = report.to_dict()
    return request, store.add_message(
        conversation_id,
        ASSISTANT,
        summary_text(result),
        status="cancelled" if result.partial else "complete",
        tokens=len(runtime.tokenize(result.summary)),
        stats=stats,
    )


def summary_text(result: Any) -> str:
    """The summary as the conversation shows it; a partial one says how it ended."""
    if not result.partial:
        return result.summary
    seconds = f"{result.seconds:.0f} s"
    if not result.summary.strip():
        return (
            f"(Summary cancelled after {seconds}, before the first part of the document was "
            "summarized. The document is attached: ask about it.)"
        )
    return (
        f"{result.summary}\n\n(Partial summary: cancelled after {seconds}; it covers only the "
        "part read so far.)"
    )
