"""Where a summary point's source link stops meaning anything: the weak-source threshold.

Summarizes sections of the bundled English text (tests/data) on the embedded model, then, for
every point the model wrote, measures the share of its words found in the best-matching
paragraph (a) of the section it summarized and (b) of an unrelated section, which is what an
invented point would get at best. `points.WEAK_SOURCE` is set between the two: a point below
it cannot be told from one matched to an unrelated passage, so it is shown without a source.
Usage: python bench/bench_sources.py [--sections 6] [--chars 2500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.documents.chunking import paragraph_spans  # noqa: E402
from assistant.documents.options import SummaryOptions, SummaryPoint  # noqa: E402
from assistant.documents.points import WEAK_SOURCE, _features  # noqa: E402
from assistant.documents.summarizer import Summarizer  # noqa: E402

TEXT = Path(__file__).resolve().parents[1] / "tests" / "data" / "jargon_file_4.4.7_excerpt.txt"


def sections(text: str, count: int, chars: int) -> list[str]:
    """`count` stretches of about `chars` characters, cut at paragraphs, spread over the text."""
    spans = paragraph_spans(text)
    step = max(1, len(spans) // count)
    out = []
    for first in range(0, len(spans), step):
        start, end = spans[first][0], spans[first][1]
        for _start, e in spans[first + 1 :]:
            if e - start > chars:
                break
            end = e
        out.append(text[start:end])
        if len(out) == count:
            break
    return out


def best_share(point: str, section: str) -> float:
    feats = _features(point)
    units = [SummaryPoint(section[s:e], ((s, e),)) for s, e in paragraph_spans(section)]
    return max((len(feats & _features(u.text)) / (len(feats) or 1) for u in units), default=0.0)


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=6)
    parser.add_argument("--chars", type=int, default=2500)
    args = parser.parse_args()
    from assistant.engine.runtime import ModelRuntime
    from assistant.library.embedded import embedded_model_path
    from assistant.types import LoadOptions

    runtime = ModelRuntime(embedded_model_path(), LoadOptions(n_ctx=2048, n_threads=2))
    parts = sections(TEXT.read_text(encoding="utf-8"), args.sections, args.chars)
    own, unrelated = [], []
    for i, part in enumerate(parts):
        result = Summarizer(runtime, SummaryOptions(length="short", bullets=True)).summarize(part)
        other = parts[(i + len(parts) // 2) % len(parts)]
        for point in result.points:
            own.append(best_share(point.text, part))
            unrelated.append(best_share(point.text, other))
        print(f"section {i + 1}: {len(result.points)} points in {result.seconds:.1f} s")
    runtime.close()
    for name, values in (("own section", own), ("unrelated section", unrelated)):
        print(
            f"{name:18} best share of a point's words: median {statistics.median(values):.2f}"
            f" · p10 {quantile(values, 0.1):.2f} · p90 {quantile(values, 0.9):.2f}"
            f" · max {max(values):.2f}  ({len(values)} points)"
        )
    for threshold in sorted({0.2, 0.25, 0.3, WEAK_SOURCE, 0.4, 0.45, 0.5}):
        below = sum(v < threshold for v in own) / len(own)
        above = sum(v >= threshold for v in unrelated) / len(unrelated)
        mark = "  <- WEAK_SOURCE" if threshold == WEAK_SOURCE else ""
        print(
            f"threshold {threshold:.2f}: own-section points without a source {below:4.0%}; "
            f"unrelated sections that would still give a link {above:4.0%}{mark}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
