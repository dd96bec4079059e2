"""Summarization throughput: source tokens per second ÷ bare llama_cpp prompt evaluation speed.

Summarizes a generated ~50,000-token document on the embedded model (target ratio ≥ 0.8) and
reports the wall time. The bare speed is measured on the same model, threads and context, on
prompts the size of the summarizer's chunks, before and after the run (averaged).
Usage: python bench/bench_summarize.py [--ctx 8192] [--threads 2] [--tokens 50000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp  # noqa: E402

from assistant.embedded import embedded_model_path  # noqa: E402
from assistant.runtime import ModelRuntime  # noqa: E402
from assistant.summarizer import Summarizer, SummaryOptions  # noqa: E402
from assistant.types import LoadOptions  # noqa: E402

SUBJECTS = [
    "The harbor authority",
    "A travelling botanist",
    "The city archive",
    "Local farmers",
    "The railway company",
    "A team of geologists",
    "The old observatory",
    "Two merchants",
]
VERBS = ["reported", "recorded", "debated", "rebuilt", "surveyed", "discovered", "financed"]
OBJECTS = [
    "a flooded canal",
    "the copper mines",
    "an early telescope",
    "the winter market",
    "a new school",
    "the salt caravans",
    "a forgotten treaty",
    "the glacier's retreat",
]


def make_document(target_tokens: int, rt: ModelRuntime) -> str:
    rng, paras = random.Random(5), []
    while True:
        for _ in range(50):
            year = rng.randint(1650, 1950)
            paras.append(
                " ".join(
                    f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} in {year}, "
                    f"which {rng.choice(VERBS)} {rng.choice(OBJECTS)} nearby."
                    for _ in range(5)
                )
            )
        text = "\n\n".join(paras)
        if len(rt.tokenize(text)) >= target_tokens:
            return text


def bare_prompt_speed(path: Path, n_ctx: int, threads: int, n_tokens: int, rt) -> float:
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        verbose=False,
    )
    tokens = rt.tokenize(make_document(n_tokens, rt))[:n_tokens]
    rates = []
    for _ in range(2):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        rates.append(len(tokens) / (time.perf_counter() - t0))
    llm.close()
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=50_000)
    args = parser.parse_args()
    path = embedded_model_path()
    rt = ModelRuntime(path, LoadOptions(n_ctx=args.ctx, n_threads=args.threads))
    text = make_document(args.tokens, rt)
    summarizer = Summarizer(rt, SummaryOptions(length="medium", bullets=True))
    chunk_tokens = args.ctx - summarizer.note_tokens - 150
    before = bare_prompt_speed(path, args.ctx, args.threads, chunk_tokens, rt)
    result = summarizer.summarize(text)
    after = bare_prompt_speed(path, args.ctx, args.threads, chunk_tokens, rt)
    bare = (before + after) / 2
    rate = result.source_tokens / result.seconds
    print(
        f"document: {result.source_tokens} tokens, n_ctx {args.ctx}, {args.threads} threads: "
        f"{result.chunks} chunks, {result.levels} levels"
    )
    print(f"wall time: {result.seconds:.1f} s for the whole summary")
    print(
        f"summarizer: {rate:.1f} source tokens/s; bare llama_cpp prompt eval on "
        f"{chunk_tokens}-token prompts: {bare:.1f} tokens/s "
        f"({before:.1f} before, {after:.1f} after)"
    )
    print(f"ratio summarizer / bare prompt eval: {rate / bare:.3f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
