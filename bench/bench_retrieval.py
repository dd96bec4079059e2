"""Asking documents: retrieval recall, query time, indexing speed and excerpt-block stability.

Questions about the two bundled texts (tests/data: the Jargon File in English, the Analects in
Chinese), with the passage holding each answer located by hand (tests/data/
retrieval_questions.json), are asked as one conversation, in order:

- recall@3 and recall@8 of the ranking (the passage holding the answer among the first 3 or 8),
  for BM25 on the question alone and BM25 with the last exchange (the previous question and the
  start of its answer passage, standing in for the model's reply), side by side;
- recall among the passages sent, first 3 and all, when the excerpts are packed for a window of
  --ctx tokens (counted with the embedded model's tokenizer);
- how often the excerpt block changes from one question to the next, and how much of it stays a
  common prefix (what the model's cache keeps), for the block in document order (as sent) and,
  side by side, the same passages in order of relevance: over those questions (most change the
  subject) and over a follow-up script of questions on one subject ('conversation');
- the time of one ranking (median, p90, max), and the indexing speed in MB/s for the two texts
  and a generated 10 MB text, without and with the model counting the document's tokens.

BM25 alone: there is no embedding model here (none in the library, no Hub), so no hybrid
figure. Usage: python bench/bench_retrieval.py [--ctx 2048] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.conversation import passage_index as index  # noqa: E402
from assistant.conversation.retrieval import (  # noqa: E402
    DOC_SHARE,
    excerpts,
    rank,
    render,
)
from assistant.conversation.store import Store  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def locate(text: str, answer: str) -> int:
    return re.search(r"\s+".join(map(re.escape, answer.split())), text).start()


def tails(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {statistics.median(values):.2f} · p90 {p90:.2f} · max {values[-1]:.2f}"


def load_questions(store: Store, conversation_id: int) -> tuple[list[dict], list[str]]:
    spec = json.loads((DATA / "retrieval_questions.json").read_text(encoding="utf-8"))
    docs = {}
    for key, name in spec["documents"].items():
        text = (DATA / name).read_text(encoding="utf-8")
        docs[key] = (index.add_document(store, conversation_id, name, text), text)
    for q in spec["questions"]:
        info, text = docs[q["doc"]]
        q["document_id"] = info.id
        q["at"] = [locate(text, a) for a in q["answers"]]
    return spec["questions"], spec["conversation"]


def position(ranked, q) -> int | None:
    for i, hit in enumerate(ranked):
        if hit.document_id == q["document_id"] and any(hit.start <= a < hit.end for a in q["at"]):
            return i
    return None


def recall(positions: list[int | None], k: int) -> float:
    return sum(p is not None and p < k for p in positions) / len(positions)


def common_prefix(a: str, b: str) -> float:
    n = len(os.path.commonprefix([a, b]))
    return n / max(len(b), 1)


def bench_retrieval(store: Store, conversation_id: int, questions, count, ctx: int) -> None:
    docs = index.list_documents(store, conversation_id)
    budget = int(DOC_SHARE * (ctx - ctx // 4))  # the session's default reserve is ctx/4
    alone, followed, sent3, sent_all, times = [], [], [], [], []
    blocks, by_score, previous = [], [], ""
    for q in questions:
        started = time.perf_counter()
        ranked = rank(store, conversation_id, q["question"], previous)
        times.append((time.perf_counter() - started) * 1000)
        alone.append(position([h for h, _ in rank(store, conversation_id, q["question"])], q))
        followed.append(position([h for h, _ in ranked], q))
        grounding = excerpts(docs, ranked, budget, count)
        sent = list(grounding.sources)  # most relevant first
        hits = [_as_hit(s) for s in sent]
        p = position(hits, q)
        sent3.append(p if p is not None and p < 3 else None)
        sent_all.append(p)
        blocks.append(grounding.block)
        by_score.append(
            render("", [], [f"[{i}] {s.document}:\n{s.text}" for i, s in enumerate(sent, 1)])
        )
        best = next((h for h, _ in ranked[:1]), None)
        previous = q["question"] + " " + (best.text[:200] if best else "")
    n = len(questions)
    print(f"{n} questions (English {sum(q['doc'] == 'en' for q in questions)}, Chinese "
          f"{sum(q['doc'] == 'zh' for q in questions)}; "
          f"{sum(bool(q.get('follow_up')) for q in questions)} follow-ups)")  # fmt: skip
    print(
        f"BM25, question alone:       recall@3 {recall(alone, 3):.2f}  recall@8 "
        f"{recall(alone, 8):.2f}"
    )
    print(
        f"BM25 + last exchange:       recall@3 {recall(followed, 3):.2f}  recall@8 "
        f"{recall(followed, 8):.2f}"
    )
    for name, pos in (("alone", alone), ("with last exchange", followed)):
        follow = [p for p, q in zip(pos, questions, strict=True) if q.get("follow_up")]
        print(f"  follow-ups only, {name}: found at {follow}")
    per_question = statistics.mean(len(re.findall(r"^\[\d+\] ", b, re.M)) for b in blocks)
    print(
        f"sent for --ctx {ctx} ({budget} tokens of excerpts): answer in the first 3 sent "
        f"{recall(sent3, 3):.2f}, in any sent {recall(sent_all, 99):.2f}; passages sent "
        f"per question {per_question:.1f}"
    )
    print(f"ranking time (ms): {tails(times)}")
    print("excerpt block over the questions above (most change subject):")
    stability(blocks, by_score)


def stability(blocks: list[str], by_score: list[str]) -> None:
    for name, series in (("document order (sent)", blocks), ("relevance order", by_score)):
        changed = sum(a != b for a, b in zip(series, series[1:], strict=False))
        kept = [common_prefix(a, b) for a, b in zip(series, series[1:], strict=False)]
        print(
            f"  in {name}: changed in {changed} of {len(series) - 1} turns; common prefix "
            f"kept {tails(kept)} (share of the block)"
        )


def bench_script(store: Store, conversation_id: int, script: list[str], count, ctx: int) -> None:
    """One subject, question after question: how much of the block stays the same."""
    docs = index.list_documents(store, conversation_id)
    budget = int(DOC_SHARE * (ctx - ctx // 4))
    blocks, by_score, previous = [], [], ""
    for question in script:
        ranked = rank(store, conversation_id, question, previous)
        grounding = excerpts(docs, ranked, budget, count)
        blocks.append(grounding.block)
        sent = list(grounding.sources)
        by_score.append(
            render("", [], [f"[{i}] {s.document}:\n{s.text}" for i, s in enumerate(sent, 1)])
        )
        previous = question + " " + (sent[0].text[:200] if sent else "")
    print(f"excerpt block over a {len(script)}-question follow-up script on one subject:")
    stability(blocks, by_score)


def _as_hit(source):
    return index.PassageHit(
        0, source.document_id, source.document, source.start, source.end, 0, "", 0.0
    )


def bench_indexing(runs: int, count) -> None:
    texts = {
        name: (DATA / name).read_text(encoding="utf-8")
        for name in ("jargon_file_4.4.7_excerpt.txt", "lunyu_analects.txt")
    }
    both = "\n\n".join(texts.values())
    parts, size, i = [], 0, 0
    while size < 10_000_000:  # distinct copies, so the index is not of one repeated text
        part = f"Copy {i}\n\n" + both.replace("Mel", f"Mel{i}")
        parts.append(part)
        size += len(part.encode("utf-8"))
        i += 1
    big = "\n\n".join(parts)
    cases = [("the two texts", both), ("10 MB text", big)]
    for label, text in cases:
        mb = len(text.encode("utf-8")) / 1e6
        plain, counted = [], []
        for _ in range(runs):  # interleaved, so drifting load hits both alike
            for series, counter in ((plain, None), (counted, count)):
                with tempfile.TemporaryDirectory() as tmp:
                    store = Store(Path(tmp) / "bench.sqlite3")
                    conv = store.create_conversation()
                    started = time.perf_counter()
                    index.add_document(store, conv.id, "doc.txt", text, count=counter)
                    series.append(mb / (time.perf_counter() - started))
                    store.close()
        print(f"indexing {label} ({mb:.1f} MB), MB/s without counting tokens: {tails(plain)}")
        print(f"  with the model counting its tokens: {tails(counted)}; ratio of medians "
              f"{statistics.median(counted) / statistics.median(plain):.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from assistant.engine.runtime import ModelRuntime
    from assistant.library.embedded import embedded_model_path
    from assistant.types import LoadOptions

    runtime = ModelRuntime(embedded_model_path(), LoadOptions(n_ctx=args.ctx, n_threads=2))

    def count(text: str) -> int:
        return len(runtime.tokenize(text))

    print(f"machine load (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3")
        conversation = store.create_conversation()
        questions, script = load_questions(store, conversation.id)
        bench_retrieval(store, conversation.id, questions, count, args.ctx)
        bench_script(store, conversation.id, script, count, args.ctx)
        store.close()
    bench_indexing(args.runs, count)
    runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
