"""Serving safely: Host and Origin checks, the API key, the body limit, one request at a time in
a bounded queue, and a client that hangs up cancelling its generation (real HTTP)."""

from __future__ import annotations

import http.client
import json
import threading
import time

import openai
import pytest

from tests.server_http import client, raw

pytest_plugins = ["tests.server_running"]  # the serve and server_gate fixtures

HELLO = [{"role": "user", "content": "Say hi."}]
CHAT = {"messages": HELLO, "max_tokens": 4}


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "localhost.evil.example:{port}", "", "127.0.0.1:1"],
)
def test_a_host_that_is_not_this_server_is_refused(serve, host):
    """DNS rebinding: a page on evil.example whose name now points to 127.0.0.1."""
    server = serve()
    status, _, body = raw(
        server, "GET", "/v1/models", headers={"Host": host.format(port=server.config.port)}
    )
    assert status == 403 and body["error"]["code"] == "host_not_allowed"


def test_loopback_names_with_the_port_are_accepted(serve):
    server = serve()
    port = server.config.port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
        assert raw(server, "GET", "/v1/models", headers={"Host": host})[0] == 200, host


def test_a_browser_request_from_another_origin_is_refused(serve):
    server = serve()
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _, body = raw(server, "POST", "/v1/chat/completions", CHAT, headers)
        assert status == 403 and body["error"]["code"] == "origin_not_allowed"
        assert "--cors-origin" in body["error"]["message"]


def test_an_allowed_origin_gets_cors_headers_and_its_preflight(serve):
    origin = "http://localhost:3000"
    server = serve(cors_origins=(origin,), api_key="k3y")
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, headers, _ = raw(server, "OPTIONS", "/v1/chat/completions", headers=preflight)
    assert status == 200 and headers["access-control-allow-origin"] == origin
    status, headers, _ = raw(
        server, "GET", "/v1/models", headers={"Origin": origin, "Authorization": "Bearer k3y"}
    )
    assert status == 200 and headers["access-control-allow-origin"] == origin
    other = {**preflight, "Origin": "http://localhost:3001"}
    assert raw(server, "OPTIONS", "/v1/chat/completions", headers=other)[0] == 403


def test_the_api_key_is_required_on_every_request(serve):
    server = serve(api_key="s3cret")
    for path in ("/v1/models", "/health"):
        status, headers, body = raw(server, "GET", path)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="wrong").models.list()
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="s3cret-and-more").chat.completions.create(
            model="m", messages=HELLO, max_tokens=2
        )
    assert client(server, api_key="s3cret").models.list().data


def test_a_body_over_the_limit_gets_413(serve):
    server = serve(max_body=4096)
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    status, _, body = raw(server, "POST", "/v1/chat/completions", big)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    # the same without a Content-Length (chunked): counted while it is read
    conn = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=30)
    conn.request(
        "POST", "/v1/chat/completions", body=iter([json.dumps(big).encode()]), encode_chunked=True
    )
    assert conn.getresponse().status == 413
    conn.close()
    assert raw(server, "POST", "/v1/chat/completions", CHAT)[0] == 200


def test_concurrent_clients_are_all_answered_in_turn(serve):
    server = serve()
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"Say the number {i}."}], max_tokens=6
        )
        answers[i] = reply.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == [0, 1, 2, 3] and all(answers.values())


def test_a_full_queue_answers_429_with_retry_after(serve, server_gate):
    server = serve()
    release, holding = threading.Event(), threading.Event()

    def hold(*_):
        holding.set()
        release.wait(120)

    server_gate.submit(hold, lambda *_: None, "blocker")
    assert holding.wait(60)  # the model is busy from now on
    saved, server_gate.max_waiting = server_gate.max_waiting, 1
    results: list = []
    try:
        first = threading.Thread(
            target=lambda: results.append(raw(server, "POST", "/v1/chat/completions", CHAT))
        )
        first.start()
        deadline = time.monotonic() + 60
        while server_gate.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server_gate.waiting == 1, results  # the first request waits its turn
        status, headers, body = raw(server, "POST", "/v1/chat/completions", CHAT)
        assert status == 429 and body["error"]["code"] == "queue_full"
        assert int(headers["retry-after"]) >= 1
    finally:
        server_gate.max_waiting = saved
        release.set()
    first.join(120)
    assert results[0][0] == 200  # the one that waited is answered once the model is free


def test_a_client_that_hangs_up_cancels_its_generation(serve, server_gate):
    server = serve()
    api = client(server)
    before = set(server_gate.finished)  # the jobs run before this test
    stream = api.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Count to a thousand."}],
        max_tokens=600,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()  # the client hangs up mid-reply
    reply = api.chat.completions.create(model="m", messages=HELLO, max_tokens=4)
    assert reply.choices[0].message.content  # the next request is not stuck behind it
    # the first chat job run since the test began (it ended before the next one started)
    hung_up = next(
        j.result.stats for j in server_gate.finished if j.label == "chat" and j not in before
    )
    assert hung_up.finish_reason == "cancelled"
    assert hung_up.completion_tokens < 600
