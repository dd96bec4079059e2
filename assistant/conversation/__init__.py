"""Conversations: what is sent to the model for each reply, and what is kept.

Public entry points:
- `session.ChatSession`: send, regenerate, edit, continue; each returns a streaming `Reply`;
- `window.fit_window`: the pure decision of what fits the context window;
- `store.Store`: conversations and messages in SQLite.
"""
