"""The rows of the conversation store as plain data."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Message status: a reply is 'streaming' while it grows, then 'complete', 'cancelled' or
# 'length'; one left 'streaming' by a writer that is gone (killed, or its store closed) becomes
# 'interrupted' at the next open (see `writers`).
STATUSES = ("complete", "streaming", "cancelled", "length", "interrupted", "error")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    model: str
    sampling: dict[str, Any]
    policy: str
    created_at: str
    updated_at: str
    window_start_id: int | None = None  # first message the model still sees (None: all)
    summary: str = ""
    summary_upto_id: int | None = None  # messages with a smaller id are in the summary


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: str
    status: str = "complete"
    tokens: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        system_prompt=row["system_prompt"],
        model=row["model"],
        sampling=json.loads(row["sampling"] or "{}"),
        policy=row["policy"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        window_start_id=row["window_start_id"],
        summary=row["summary"],
        summary_upto_id=row["summary_upto_id"],
    )


def message_from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        status=row["status"],
        tokens=row["tokens"],
        stats=json.loads(row["stats"] or "{}"),
    )
