"""`assistant serve` as a process: the URL on stdout once requests are accepted, an access log
without prompt text on stderr, a clean exit on SIGTERM or Ctrl-C with the reply in flight
ended, and one clear line for a bad option."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import openai
import pytest

SERVE = [sys.executable, "-m", "assistant", "serve", "--ctx", "512", "--threads", "1"]
SECRET = "purple-elephant-prompt"


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*SERVE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()  # blocks until the server accepts requests (or exits)
    match = re.fullmatch(r"Serving (http://\S+/v1)\n", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"no URL: {line!r} {proc.stderr.read()}")
    return proc, match.group(1)


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_serve_prints_its_url_logs_requests_and_stops_cleanly_on_sigterm():
    proc, url = start("--port", "0", "--temperature", "0", "--max-tokens", "8")
    assert url.startswith("http://127.0.0.1:")
    api = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
    reply = api.chat.completions.create(model="m", messages=[{"role": "user", "content": SECRET}])
    assert reply.usage.completion_tokens <= 8
    stream = api.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Count slowly."}],
        max_tokens=400,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    first = next(iter(stream))  # a reply is in flight
    assert first.choices[0].delta.role == "assistant"
    rest: list = []
    reader = threading.Thread(target=lambda: rest.extend(stream))
    reader.start()
    code, err = stop(proc, signal.SIGTERM)
    reader.join(60)
    assert code == 0, err
    assert not reader.is_alive()  # the client's stream ended with the server
    finishes = [c.choices[0].finish_reason for c in rest if c.choices]
    assert finishes[-1] == "cancelled" and len(finishes) < 400
    assert SECRET not in err  # the access log never shows prompt text
    assert re.search(r"POST /v1/chat/completions 200 \S+s .*prompt=\d+ .*completion=\d+", err)


def test_binding_every_interface_without_a_key_warns_and_ctrl_c_stops():
    proc, url = start("--host", "0.0.0.0", "--port", "0")
    code, err = stop(proc, signal.SIGINT)
    assert code == 0 and "warning: listening on 0.0.0.0 without an API key" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--port", "70000"], "--port 70000"), (["--queue", "0"], "--queue 0")],
)
def test_bad_options_are_one_line_and_exit_1(args, words):
    done = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SERVE, "--port", str(port)], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
