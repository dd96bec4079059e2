"""The points of a summary: read out of a model's reply, rendered by code, traced to sources.

The model is asked for bullet points but may write prose, number its lines or loop; the
summary's form is decided here, not by what it happened to write: with bullets, every point is
one "- point" line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from assistant.documents.chunking import sentence_spans
from assistant.documents.language import STOPWORDS, is_cjk
from assistant.documents.options import Span, SummaryPoint

# A point sharing less than this share of its words (stop words aside) with every candidate
# passage (or note) is shown without a source: the nearest passage would be unrelated.
# Measured (bench/bench_sources.py, 34 points SmolLM2-135M wrote about 8 sections): matched to
# an unrelated section, points share median 0.00 and p90 0.20 of their words; matched to their
# own section, median 0.44. At 0.25, 6% of the unrelated matches would still give a link.
WEAK_SOURCE = 0.25
_BULLET_LINE = re.compile(r"^([-*•]|\d+[.)])\s*")
_LEADING_MARKS = re.compile(r"^(?:[-*•]\s+)+")


def clean_point(text: str) -> str:
    """One line, without the bullet marks a model (or a source paragraph) put in front."""
    return _LEADING_MARKS.sub("", " ".join(text.split()))


def split_points(reply: str) -> list[str]:
    """Bullet lines if there are any, else sentences; duplicates (a small model loops) dropped."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    bullets = [_BULLET_LINE.sub("", ln) for ln in lines if _BULLET_LINE.match(ln)]
    items = bullets or [reply[s:e] for s, e in sentence_spans(reply, 0, len(reply))]
    seen, out = set(), []
    for item in map(clean_point, items):
        key = item.lower()
        if len(item) > 2 and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def render_points(points: Iterable[SummaryPoint], bullets: bool) -> str:
    """Bullets: one "- point" line per point; prose: the points joined as one paragraph."""
    texts = [p.text for p in points]
    return "\n".join(f"- {t}" for t in texts) if bullets else " ".join(texts)


def best_sources(
    text: str,
    candidates: Sequence[SummaryPoint],
    source: str = "",
    keep: int = 3,
    max_spans: int = 4,
) -> tuple[Span, ...]:
    """The sources of the candidates that share the most words with this point; when they add
    up to many passages, the ones of the source text closest to the point; none when even the
    best candidate shares less than WEAK_SOURCE of the point's words."""
    if not candidates:
        return ()
    feats = _features(text)

    def score(other: str) -> float:
        return len(feats & _features(other)) / (len(feats) or 1)

    scored = sorted(((score(c.text), i) for i, c in enumerate(candidates)), reverse=True)
    best = scored[0][0]
    if best < WEAK_SOURCE:  # nothing the point was written from: no link to an unrelated one
        return ()
    chosen = [candidates[i] for sc, i in scored[:keep] if sc > 0 and sc >= best * 0.6]
    chosen = chosen or [candidates[scored[0][1]]]
    spans = merge_spans(s for c in chosen for s in c.sources)
    if len(spans) > max_spans and source:
        ranked = sorted(spans, key=lambda sp: score(source[sp[0] : sp[1]]), reverse=True)
        spans = tuple(sorted(ranked[:max_spans]))
    return spans


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted ranges, those that touch or overlap (two characters apart at most) merged."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 2:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)


def _features(text: str) -> set[str]:
    """Words of three letters or more that are not stop words; for CJK text, which has no
    spaces, character pairs."""
    words = re.findall(r"\w+", text.lower())
    feats = {w for w in words if len(w) >= 3 and w not in STOPWORDS and not is_cjk(w)}
    for w in words:
        if is_cjk(w):
            feats.update(w[i : i + 2] for i in range(len(w) - 1))
    return feats
