"""Time to first token across a 40-turn conversation at --ctx 2048 (target: late/early ≤ 1.5).

Median TTFT of turns 30-40 ÷ median of turns 2-8, through the chat manager with KV-cache prefix
reuse; the same conversation replayed with the cache cleared before each turn shows what the
ratio would be without reuse.
Usage: python bench/bench_ttft.py [--threads 2] [--ctx 2048] [--turns 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.conversation.session import ChatSession  # noqa: E402
from assistant.conversation.store import Store  # noqa: E402
from assistant.engine.runtime import ModelRuntime  # noqa: E402
from assistant.library.embedded import embedded_model_path  # noqa: E402
from assistant.types import LoadOptions, SamplingOptions  # noqa: E402
from bench.conversation_script import SYSTEM, TOPICS  # noqa: E402


def run(rt: ModelRuntime, store: Store, turns: int, reuse: bool) -> list:
    session = ChatSession(
        rt,
        store,
        system_prompt=SYSTEM,
        sampling=SamplingOptions(temperature=0, max_tokens=64, seed=1),
    )
    out = []
    for turn in range(1, turns + 1):
        if not reuse:
            rt._llm.reset()  # forget the KV cache: every prompt is evaluated from scratch
        result = session.send(f"Question {turn}: explain {TOPICS[turn % len(TOPICS)]}.").join()
        out.append(result)
    return out


def ratio(results: list) -> float:
    early = statistics.median(r.stats.ttft_s for r in results[1:8])  # turns 2-8
    late = statistics.median(r.stats.ttft_s for r in results[29:40])  # turns 30-40
    return late / early, early, late


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    rt = ModelRuntime(embedded_model_path(), LoadOptions(n_ctx=args.ctx, n_threads=args.threads))
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "bench.sqlite3")
        with_reuse = run(rt, store, args.turns, reuse=True)
        without = run(rt, store, args.turns, reuse=False)
    slides = sum("left the context window" in r.notice for r in with_reuse)
    print(
        f"{args.turns} turns at n_ctx {args.ctx}, {args.threads} threads; "
        f"window slid {slides} times;"
        f" last prompt {with_reuse[-1].stats.prompt_tokens} tokens, "
        f"{with_reuse[-1].context.dropped_messages} messages dropped"
    )
    for name, results in (("with prefix reuse", with_reuse), ("cache cleared each turn", without)):
        r, early, late = ratio(results)
        print(
            f"{name:24}: median TTFT turns 2-8 {early * 1000:6.1f} ms, turns 30-40 "
            f"{late * 1000:6.1f} ms, ratio {r:.2f}"
        )
    print(f"ratio with reuse: {ratio(with_reuse)[0]:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
