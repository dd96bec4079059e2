"""Conversations: what is sent to the model for each reply, and what is kept.

Public entry points:
- `session.ChatSession`: send, regenerate, edit, continue; each returns a streaming `Reply`;
- `window.fit_window`: the pure decision of what fits the context window;
- `store.Store`: conversations and messages in SQLite;
- `attachments.attach(...)`: a document joins a conversation, indexed as passages
  (`passage_index`, SQLite FTS5); `retrieval.fit_with_documents` puts the whole documents or
  the passages relevant to the question into the window, with their sources.
"""
