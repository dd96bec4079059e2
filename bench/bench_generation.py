"""Generation speed through the chat manager ÷ a bare llama_cpp generate loop (target ≥ 0.97).

Both run greedy on the embedded model with the same threads, prompt and token budget, alternated
in one process so machine noise hits both alike. Decode speed = (tokens - 1) / (last - first
token time), measured from the consumer's side for both.
Usage: python bench/bench_generation.py [--threads 2] [--tokens 200] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp  # noqa: E402

from assistant.conversation.session import ChatSession  # noqa: E402
from assistant.conversation.store import Store  # noqa: E402
from assistant.engine.runtime import ModelRuntime  # noqa: E402
from assistant.library.embedded import embedded_model_path  # noqa: E402
from assistant.types import LoadOptions, SamplingOptions  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def bare_loop(llm: llama_cpp.Llama, tokens: list[int], n: int) -> tuple[int, float]:
    times = []
    eos = llm.token_eos()
    for i, token in enumerate(
        llm.generate(tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
    ):
        times.append(time.perf_counter())
        if token == eos or i + 1 >= n:
            break
    return len(times), times[-1] - times[0]


def managed(session: ChatSession, n: int) -> tuple[int, float]:
    reply = session.send(PROMPT)
    times = [time.perf_counter() for _ in reply]
    return reply.result.stats.completion_tokens, times[-1] - times[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    path = embedded_model_path()
    rt = ModelRuntime(path, LoadOptions(n_ctx=2048, n_threads=args.threads))
    bare = llama_cpp.Llama(
        str(path), n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
    )
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "bench.sqlite3")
        sampling = SamplingOptions(temperature=0, max_tokens=args.tokens, repeat_penalty=1.0)
        rates_bare, rates_managed, prompt_tokens = [], [], 0
        for _ in range(args.reps):
            session = ChatSession(rt, store, sampling=sampling)
            n, dt = managed(session, args.tokens)
            rates_managed.append((n - 1) / dt)
            tokens = rt.prompt_tokens(session.last_plan.window.messages)
            prompt_tokens = len(tokens)
            bare.reset()
            n_bare, dt_bare = bare_loop(bare, tokens, args.tokens)
            rates_bare.append((n_bare - 1) / dt_bare)
    m, b = statistics.median(rates_managed), statistics.median(rates_bare)
    print(
        f"model: {path.name}, threads: {args.threads}, prompt: {prompt_tokens} tokens, "
        f"reply: {n} tokens (bare {n_bare}), {args.reps} alternated runs"
    )
    print(f"bare llama_cpp generate loop: {b:7.1f} tokens/s (median)")
    print(f"through the chat manager:     {m:7.1f} tokens/s (median)")
    print(f"ratio managed / bare: {m / b:.3f}  (target >= 0.97)")


if __name__ == "__main__":
    main()
