"""What a summary is asked to be and what comes back: plain data, no model.

The settings dialog reads `LENGTHS` from here, so importing this module must stay cheap: no
llama.cpp, no numpy (the window pays for every import at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.errors import InvalidInputError

if TYPE_CHECKING:
    from assistant.settings import Settings

# Summary lengths: (most tokens of the final summary, how many points or sentences to ask for).
LENGTHS = {"short": (128, "3 to 5"), "medium": (256, "5 to 8"), "detailed": (512, "8 to 14")}
# Most tokens a chunk's (or a merge's) notes may take, by summary length.
NOTE_TOKENS = {"short": 96, "medium": 128, "detailed": 192}
# Chunks of the source are at most this long (when the window is larger). On CPU without
# flash attention, prompt evaluation slows as the prompt grows (SmolLM2-135M, 2 threads: 187
# tokens/s at 4096, 127 at 7800) and decoding the notes at the end of a long prompt slows more
# (51 vs 27 tokens/s), so 4096-token chunks read a long document about 1.5x faster than
# window-sized ones; small models also keep more of a shorter text.
CHUNK_TOKENS = 4096
Span = tuple[int, int]  # a character range [start, end) of the source text


@dataclass(frozen=True)
class SummaryOptions:
    length: str = "medium"  # short | medium | detailed
    bullets: bool = False
    focus: str | None = None
    language: str | None = None  # None: the document's own language
    chunk_tokens: int = CHUNK_TOKENS  # largest chunk of the source read in one model call

    def __post_init__(self):
        if self.length not in LENGTHS:
            raise InvalidInputError(
                f"Unknown summary length {self.length!r}; choose one of {', '.join(LENGTHS)}."
            )
        if self.chunk_tokens < 256:
            raise InvalidInputError(
                f"Chunks of {self.chunk_tokens} tokens are too small; use at least 256."
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> SummaryOptions:
        """How the app summarizes documents (an unknown length in the file reads as medium)."""
        length = settings.summary_length if settings.summary_length in LENGTHS else "medium"
        return cls(length=length, bullets=bool(settings.summary_bullets))


@dataclass(frozen=True)
class Progress:
    stage: str  # map | reduce | final
    done: int  # model calls finished
    total: int  # model calls expected (an estimate while reducing)
    tokens_processed: int  # source tokens read so far
    source_tokens: int
    elapsed_s: float
    eta_s: float | None
    # within the current model call, while its prompt is read (0 of 0 once it writes): so that
    # a long first chunk shows movement before any call has finished
    prompt_done: int = 0
    prompt_total: int = 0


@dataclass(frozen=True)
class SummaryPoint:
    text: str  # one line, without a bullet mark
    sources: tuple[Span, ...]  # character ranges of the source text


@dataclass(frozen=True)
class SummaryResult:
    summary: str  # with bullets: exactly one "- point" line per point, rendered by code
    points: tuple[SummaryPoint, ...]
    chunks: int
    levels: int
    source_tokens: int
    seconds: float
    partial: bool = False
    max_prompt_tokens: int = 0
    length: str = "medium"
    bullets: bool = False
    language: str | None = None  # what the summary was asked to be written in (None: as the text)

    def to_json(self) -> dict:
        return {
            "summary": self.summary,
            "length": self.length,
            "bullets": self.bullets,
            "language": self.language,
            "chunks": self.chunks,
            "levels": self.levels,
            "source_tokens": self.source_tokens,
            "seconds": round(self.seconds, 2),
            "partial": self.partial,
            "sources": [
                {"point": p.text, "ranges": [list(s) for s in p.sources]} for p in self.points
            ],
        }
