"""Summarization throughput: source tokens per second ÷ bare llama_cpp prompt evaluation speed.

Summarizes a generated ~50,000-token document on the embedded model (target ratio ≥ 0.8) and
reports the wall time. The bare speed is measured side by side, interleaved with the run: after
each chunk's model call, a second, plain `llama_cpp.Llama` (same model, threads, context and
batch) evaluates the very same prompt tokens from an empty cache. The time spent on those bare
evaluations is taken out of the summarizer's wall time. Interleaving matters on these machines:
sustained load slows both sides by 10% or more within minutes, so a bare figure measured only
before or after the run is biased.
`--chunk-tokens` changes the chunk cap (e.g. 8192 for chunks as large as the window).
Usage: python bench/bench_summarize.py [--ctx 8192] [--threads 2] [--tokens 50000]
       [--chunk-tokens 4096]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp  # noqa: E402

from assistant.documents.options import CHUNK_TOKENS, SummaryOptions  # noqa: E402
from assistant.documents.summarizer import Summarizer  # noqa: E402
from assistant.engine.runtime import ModelRuntime  # noqa: E402
from assistant.library.embedded import embedded_model_path  # noqa: E402
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


class BareSideBySide:
    """Evaluates each map prompt again on a plain Llama, between the summarizer's calls."""

    def __init__(self, path: Path, rt: ModelRuntime, n_ctx: int, threads: int):
        self.llm = llama_cpp.Llama(
            str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=rt.options.n_batch,
            verbose=False,
        )
        self.rt, self.prompt = rt, None
        self.tokens, self.seconds, self.overhead = 0, 0.0, 0.0
        real_stream = rt.stream

        def recording_stream(prompt, sampling=None, cancel=None):
            self.prompt = list(prompt)
            return real_stream(prompt, sampling, cancel)

        rt.stream = recording_stream

    def after_call(self, progress) -> None:
        t0 = time.perf_counter()
        if progress.stage == "map" and self.prompt:
            self.llm.reset()
            t1 = time.perf_counter()
            self.llm.eval(self.prompt)
            self.seconds += time.perf_counter() - t1
            self.tokens += len(self.prompt)
        self.overhead += time.perf_counter() - t0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--chunk-tokens", type=int, default=CHUNK_TOKENS)
    args = parser.parse_args()
    path = embedded_model_path()
    rt = ModelRuntime(path, LoadOptions(n_ctx=args.ctx, n_threads=args.threads))
    text = make_document(args.tokens, rt)
    options = SummaryOptions(length="medium", bullets=True, chunk_tokens=args.chunk_tokens)
    bare = BareSideBySide(path, rt, args.ctx, args.threads)
    summarizer = Summarizer(rt, options, progress=bare.after_call)
    result = summarizer.summarize(text)
    seconds = result.seconds - bare.overhead
    rate = result.source_tokens / seconds
    print(
        f"document: {result.source_tokens} tokens, n_ctx {args.ctx}, {args.threads} threads: "
        f"{result.chunks} chunks of at most {summarizer.chunk_budget()} tokens, "
        f"{result.levels} levels, notes of at most {summarizer.note_tokens} tokens"
    )
    print(f"wall time: {seconds:.1f} s for the whole summary (bare evaluations taken out)")
    print(
        f"summarizer: {rate:.1f} source tokens/s; bare llama_cpp prompt eval of the same "
        f"{result.chunks} map prompts ({bare.tokens} tokens), interleaved: {bare.rate:.1f} tokens/s"
    )
    print(f"ratio summarizer / bare prompt eval: {rate / bare.rate:.3f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
