"""Talking to a local server in tests: the official `openai` client, or plain HTTP with any
Host, Origin or body."""

from __future__ import annotations

import http.client
import json

from assistant.server.runner import LocalServer

CTX = 1024  # the context of the model every server test shares


def client(server: LocalServer, **kwargs):
    import openai

    kwargs.setdefault("api_key", "unused")
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.url, timeout=120, **kwargs)


def raw(
    server: LocalServer,
    method: str,
    path: str,
    body: bytes | dict | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, dict | str]:
    """One plain HTTP request (any Host, Origin or body): (status, headers, JSON or text)."""
    port = server.config.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in sent.items():
            conn.putheader(key, value)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        response = conn.getresponse()
        text = response.read().decode()
        found = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    try:
        return response.status, found, json.loads(text)
    except ValueError:
        return response.status, found, text
