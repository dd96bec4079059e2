"""The local server against the bare engine and against llama.cpp's own `llama-server`.

1. Decode speed: streaming tokens/s through `assistant serve`, read with plain HTTP, ÷ a bare
   `llama_cpp` generate loop on the same tokens, served and bare back to back in ABBA order;
   the median of the pairs' ratios (target ≥ 0.95). The same read with the official `openai`
   client is reported too (its own CPU per chunk is taken from llama.cpp's threads).
2. HTTP overhead on time to first token: server TTFT − in-process `ModelRuntime.stream` TTFT
   on the same cached prompt, alternated, median (target ≤ 10 ms).
3. A 40-turn conversation at `--ctx 1024` whose client resends the full history every turn:
   p90 ÷ median TTFT over all turns (target ≤ 2.5), and turns answered. With `--llama-server
   PATH` (or `auto`: built from the llama-cpp-python source package, see build_llama_server.py)
   the same script also drives llama.cpp's server, whose client drops the oldest pair of
   messages each time the server refuses the history (HTTP 400), side by side.

Every figure is measured from the client's side; the server runs in its own process.
Usage: python bench/bench_server.py [--threads 2] [--ctx 1024] [--turns 40] [--rounds 24]
       [--tokens 128] [--llama-server /path/to/llama-server | auto]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp  # noqa: E402
import openai  # noqa: E402

from assistant.engine.runtime import ModelRuntime  # noqa: E402
from assistant.library.embedded import embedded_model_path  # noqa: E402
from assistant.types import LoadOptions, Message, SamplingOptions  # noqa: E402
from bench.conversation_script import SYSTEM, TOPICS  # noqa: E402

STORY = "Write a long story about a lighthouse keeper who finds a message in a bottle."
CONTEXTS: list[dict] = []  # the `context` object of each reply from assistant serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ours(args, home: str) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--port",
        "0",
        "--ctx",
        str(args.ctx),
        "--threads",
        str(args.threads),
        "--gpu-layers",
        "0",
    ]
    env = {**os.environ, "ASSISTANT_HOME": home}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    line = proc.stdout.readline()
    match = re.match(r"Serving (\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"assistant serve did not start: {line!r}")
    return proc, match.group(1)


def start_llama_server(args, binary: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        binary,
        "-m",
        str(embedded_model_path()),
        "--ctx-size",
        str(args.ctx),
        "--parallel",
        "1",
        "--threads",
        str(args.threads),
        "--threads-batch",
        str(args.threads),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-webui",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url + "/v1"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("llama-server did not start")


def stream_chat(client: openai.OpenAI, messages: list[dict], max_tokens: int, **extra):
    """(TTFT, decode tokens/s, completion tokens, reply text) from the client's side."""
    sent = time.perf_counter()
    stream = client.chat.completions.create(
        model="m",
        messages=messages,
        max_tokens=max_tokens,
        temperature=0,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra or None,
    )
    first = last = None
    parts, tokens = [], 0
    for chunk in stream:
        context = (chunk.model_extra or {}).get("context")
        if context is not None:  # assistant serve says what the window held
            CONTEXTS.append(context)
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    ttft = (first or time.perf_counter()) - sent
    rate = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else 0
    return ttft, rate, tokens, "".join(parts)


def light_stream(base_url: str, body: dict) -> tuple[float, int]:
    """(decode tokens/s, completion tokens) of one streamed chat read with plain HTTP: the
    `openai` client spends about 1 ms of CPU per chunk building its objects, which on 2 cores
    comes out of llama.cpp's threads and is no cost of the server's."""
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    data = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    conn.request("POST", url.path + "/chat/completions", data, {"Content-Type": "application/json"})
    response = conn.getresponse()
    first = last = None
    tokens = 0
    for line in response:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        chunk = json.loads(line[6:])
        if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    conn.close()
    rate = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else 0
    return rate, tokens


def bare_rate(llm: llama_cpp.Llama, tokens: list[int], n: int) -> float:
    """The bare generate loop, greedy: the same `n` tokens the server sent (a greedy story
    runs to max_tokens; `ignore_eos` is left out: its Python logits hook costs both sides)."""
    llm.reset()
    times = []
    for i, _ in enumerate(
        llm.generate(tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
    ):
        times.append(time.perf_counter())
        if i + 1 >= n:
            break
    return (len(times) - 1) / (times[-1] - times[0])


def decode_speed(args, client, rt: ModelRuntime) -> None:
    messages = [{"role": "user", "content": STORY}]
    body = {
        "model": "m",
        "messages": messages,
        "max_tokens": args.tokens,
        "temperature": 0,
        "seed": 1,
        "repeat_penalty": 1.0,
    }
    tokens = rt.prompt_tokens([Message("user", STORY)])
    bare = llama_cpp.Llama(
        str(embedded_model_path()),
        n_ctx=args.ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    served, raw, sdk = [], [], []
    n = light_stream(str(client.base_url).rstrip("/"), body)[1]  # warm; the reply's length
    for i in range(args.rounds):
        # served and bare back to back, in turn first (ABBA): slow drift moves both alike
        if i % 2:
            raw.append(bare_rate(bare, tokens, n))
        served.append(light_stream(str(client.base_url).rstrip("/"), body)[0])
        if not i % 2:
            raw.append(bare_rate(bare, tokens, n))
        if i % 4 == 0:  # the official client's own cost per chunk, for the record
            sdk.append(stream_chat(client, messages, args.tokens, repeat_penalty=1.0)[1])
    bare.close()
    s, b, o = statistics.median(served), statistics.median(raw), statistics.median(sdk)
    # each served run is paired with the bare run next to it: a neighbour's load on a shared
    # machine moves both, and the median of the pairs' ratios leaves it out
    paired = sorted(x / y for x, y in zip(served, raw, strict=True))
    print(
        f"1. decode, {args.tokens} tokens x {args.rounds} alternated runs: bare llama_cpp "
        f"{b:.1f} tokens/s (min {min(raw):.1f}, max {max(raw):.1f}), through the server "
        f"{s:.1f} tokens/s (min {min(served):.1f}, max {max(served):.1f}); ratio of medians "
        f"{s / b:.3f}, median of paired ratios {statistics.median(paired):.3f} (lowest "
        f"{paired[0]:.3f}; target >= 0.95); read with the openai client {o:.1f} tokens/s, "
        f"ratio {o / b:.3f}"
    )


def ttft_overhead(args, client, rt: ModelRuntime) -> None:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Explain tides in one sentence."},
    ]
    msgs = [Message(m["role"], m["content"]) for m in messages]
    sampling = SamplingOptions(temperature=0, seed=1, max_tokens=1)
    for _ in range(2):  # both caches now hold the prompt
        stream_chat(client, messages, 1)
        rt.stream(msgs, sampling).join()
    diffs, served, local = [], [], []
    for _ in range(args.rounds * 4):
        t_server = stream_chat(client, messages, 1)[0]
        started = time.perf_counter()
        stream = rt.stream(msgs, sampling)
        next(stream, None)
        t_local = time.perf_counter() - started
        stream.close()
        served.append(t_server)
        local.append(t_local)
        diffs.append(t_server - t_local)
    diffs.sort()
    p90 = diffs[int(0.9 * (len(diffs) - 1))]
    print(
        f"2. TTFT on a cached prompt, {len(diffs)} alternated runs: in-process "
        f"{statistics.median(local) * 1000:.1f} ms, server {statistics.median(served) * 1000:.1f}"
        f" ms; overhead median {statistics.median(diffs) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms,"
        f" max {max(diffs) * 1000:.1f} ms (target median <= 10 ms)"
    )


def conversation(client, args, drop_on_refusal: bool) -> dict:
    """The 40-turn script with a client resending the full history each turn. A turn's TTFT runs
    from its first attempt to its first token, refused attempts included."""
    messages = [{"role": "system", "content": SYSTEM}]
    ttfts, refusals, first_refusal, dropped = [], 0, None, 0
    CONTEXTS.clear()
    for turn in range(1, args.turns + 1):
        topic = TOPICS[turn % len(TOPICS)]
        messages.append({"role": "user", "content": f"Question {turn}: explain {topic}."})
        started, text = time.perf_counter(), None
        while True:
            attempt = time.perf_counter()
            try:
                ttft, _, _, text = stream_chat(client, messages, args.reply_tokens)
                ttfts.append(attempt - started + ttft)
                break
            except openai.BadRequestError:
                refusals += 1
                first_refusal = first_refusal or turn
                if not drop_on_refusal or len(messages) < 4:
                    break
                del messages[1:3]  # the oldest user message and its reply
                dropped += 2
        if text is None:
            messages.pop()  # refused: this client gives up on the turn
            continue
        messages.append({"role": "assistant", "content": text})
    drops = [c["dropped_messages"] for c in CONTEXTS]
    return {
        "ttfts": ttfts,
        "answered": len(ttfts),
        "refusals": refusals,
        "first_refusal": first_refusal,
        "dropped": dropped,
        "slides": sum(1 for a, b in zip(drops, drops[1:], strict=False) if b > a),
        "server_dropped": drops[-1] if drops else 0,
    }


def report(name: str, result: dict, turns: int) -> None:
    t = sorted(result["ttfts"])
    if not t:
        print(f"   {name}: no turn answered")
        return
    med, p90 = statistics.median(t), t[int(0.9 * (len(t) - 1))]
    print(
        f"   {name}: {result['answered']}/{turns} turns answered, TTFT median "
        f"{med * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {t[-1] * 1000:.0f} ms, "
        f"p90/median {p90 / med:.2f}; refusals {result['refusals']} (first at turn "
        f"{result['first_refusal']}), messages dropped by the client {result['dropped']}"
        + (
            f"; the server's window slid {result['slides']} times, "
            f"{result['server_dropped']} messages out of it at the end"
            if result["server_dropped"]
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument(
        "--llama-server",
        help="llama.cpp's llama-server binary for step 3, or 'auto' to build it from the "
        "llama-cpp-python source package (bench/build_llama_server.py; cached, never committed)",
    )
    args = parser.parse_args()
    if args.llama_server == "auto":
        from bench.build_llama_server import build

        try:
            args.llama_server = str(build())
        except (SystemExit, OSError, subprocess.CalledProcessError) as exc:
            print(f"llama-server could not be built ({exc}); step 3 runs without it")
            args.llama_server = None
    rt = ModelRuntime(embedded_model_path(), LoadOptions(n_ctx=args.ctx, n_threads=args.threads))
    with tempfile.TemporaryDirectory() as home:
        proc, url = start_ours(args, home)
        try:
            client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
            print(f"model {embedded_model_path().name}, {args.threads} threads, ctx {args.ctx}")
            decode_speed(args, client, rt)
            ttft_overhead(args, client, rt)
            print(
                f"3. {args.turns}-turn script, full history every turn, "
                f"{args.reply_tokens}-token replies, ctx {args.ctx}:"
            )
            report("assistant serve (drop policy)", conversation(client, args, False), args.turns)
        finally:
            proc.terminate()
            proc.wait(30)
    if args.llama_server:
        proc, url = start_llama_server(args, args.llama_server)
        try:
            client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
            report(
                "llama-server, client drops the oldest pair on each refusal",
                conversation(client, args, True),
                args.turns,
            )
            report("llama-server, plain client", conversation(client, args, False), args.turns)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
