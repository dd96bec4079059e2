"""Export a conversation as JSON or Markdown, and import one exported as JSON.

Imported data is validated whole before anything is written: a file that fails is refused with
the reason, and the store is left as it was. The store writes it in short transactions (a
chat's save is never held up by a large import) into a conversation that stays hidden until
its last message is in.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from assistant.conversation.records import STATUSES, Conversation
from assistant.conversation.store import Store
from assistant.errors import InvalidInputError
from assistant.types import ASSISTANT, SYSTEM, USER, Policy

EXPORT_FORMAT = "offline-assistant.conversation"
EXPORT_VERSION = 1
_PRIVATE = {"id", "window_start_id", "summary_upto_id"}  # ids mean nothing in another database


def export_json(store: Store, conversation_id: int) -> dict[str, Any]:
    conv = store.get_conversation(conversation_id)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "conversation": {k: v for k, v in asdict(conv).items() if k not in _PRIVATE},
        "messages": [
            {k: v for k, v in asdict(m).items() if k not in {"id", "conversation_id"}}
            for m in store.messages(conversation_id)
        ],
    }


def export_markdown(store: Store, conversation_id: int) -> str:
    conv = store.get_conversation(conversation_id)
    out = [f"# {conv.title}", "", f"_Model: {conv.model or 'default'} · created {conv.created_at}_"]
    out.append("")
    if conv.system_prompt:
        out += ["> **System:** " + conv.system_prompt.replace("\n", "\n> "), ""]
    for m in store.messages(conversation_id):
        note = "" if m.status == "complete" else f" _({m.status})_"
        out += [f"## {m.role.title()}{note}", "", m.content, ""]
    return "\n".join(out)


def import_json(store: Store, data: Any, source: str = "the file") -> Conversation:
    """Add an exported conversation to the store as a new conversation."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise InvalidInputError(f"{source} is not a conversation exported by this app.")
    version = data.get("version", 0)
    if type(version) is not int:
        raise InvalidInputError(f"{source} has an invalid format version: {version!r}.")
    if version > EXPORT_VERSION:
        raise InvalidInputError(f"{source} comes from a newer version of the app.")
    conv, msgs = data.get("conversation") or {}, data.get("messages")
    if not isinstance(conv, dict) or not isinstance(msgs, list):
        raise InvalidInputError(f"{source} is missing its conversation or messages.")
    conversation = _conversation_fields(conv, source)
    messages = [_message_fields(m, i, source) for i, m in enumerate(msgs, start=1)]
    return store.insert_conversation(conversation, messages)


def _text(value: Any, what: str, source: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInputError(f"{source}: {what} must be text, not {type(value).__name__}.")
    return value


def _conversation_fields(conv: dict[str, Any], source: str) -> dict[str, Any]:
    sampling = conv.get("sampling") or {}
    if not isinstance(sampling, dict):
        raise InvalidInputError(f"{source}: the conversation's sampling must be an object.")
    policy = _text(conv.get("policy"), "the context policy", source, "drop")
    try:
        policy = Policy.parse(policy).value
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc}") from None
    return {
        "title": _text(conv.get("title"), "the title", source) or "Imported chat",
        "system_prompt": _text(conv.get("system_prompt"), "the system prompt", source),
        "model": _text(conv.get("model"), "the model", source),
        "sampling": sampling,
        "policy": policy,
        "created_at": _text(conv.get("created_at"), "created_at", source),
        "summary": _text(conv.get("summary"), "the summary", source),
    }


def _message_fields(m: Any, number: int, source: str) -> dict[str, Any]:
    where = f"message {number}"
    if not isinstance(m, dict):
        raise InvalidInputError(f"{source}: {where} is not an object.")
    if m.get("role") not in {USER, ASSISTANT, SYSTEM}:
        raise InvalidInputError(f"{source}: {where} has an unknown role {m.get('role')!r}.")
    status = _text(m.get("status"), f"the status of {where}", source, "complete")
    if status not in STATUSES:
        raise InvalidInputError(f"{source}: {where} has an unknown status {status!r}.")
    tokens = m.get("tokens")
    if tokens is not None and (type(tokens) is not int or not 0 <= tokens < 2**31):
        raise InvalidInputError(f"{source}: {where} has an invalid token count {tokens!r}.")
    stats = m.get("stats") or {}
    if not isinstance(stats, dict):
        raise InvalidInputError(f"{source}: the stats of {where} must be an object.")
    return {
        "role": m["role"],
        "content": _text(m.get("content"), f"the text of {where}", source),
        "created_at": _text(m.get("created_at"), f"created_at of {where}", source),
        "status": "interrupted" if status == "streaming" else status,
        "tokens": tokens,
        "stats": stats,
    }
