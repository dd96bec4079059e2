"""Which cached tokens a new prompt can reuse, and how: pure planning over two token lists.

After a slide, a conversation's prompt is the old prompt with a block of old turns cut out of
the middle (and the new message appended): `cached[:prefix] + cached[src:src+length] + new`.
llama.cpp can drop the block from the KV cache and move the kept tokens down
(`llama_memory_seq_rm` + `llama_memory_seq_add`, re-rotating their keys), so only the new
tokens are read. The plan is a list of such moves; applying it lives in `kv_cache`.

llama.cpp keeps each sequence's positions consecutive (a batch must start right after the last
cached position), so tokens can be cut out but never inserted before cached ones: a prompt that
puts new text in front of cached text (a running summary grown in the system message) reuses
only what comes before the new text. `held` counts what the old cache held all the same, so the
caller can report the tokens read again (`reread`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Runs shorter than this are not worth a move (a role marker repeated in every message would
# otherwise match everywhere); slides cut whole turns, whose kept runs are hundreds of tokens.
MIN_CHUNK = 16


@dataclass(frozen=True)
class Chunk:
    """cached[src:src+length] moves down to prompt position `dst` (dst < src)."""

    src: int
    dst: int
    length: int


@dataclass(frozen=True)
class ReusePlan:
    prefix: int  # cached[:prefix] == prompt[:prefix], kept where it is
    chunks: tuple[Chunk, ...]  # later runs of the cache moved down, in order
    reused: int  # prompt[:reused] is in the cache once the plan is applied
    held: int  # prompt tokens the old cache held in order (reusable or not)
    n_cached: int  # tokens in the cache before the plan

    @property
    def shifted(self) -> int:
        """Cached tokens cut out from between the kept runs (removed by the moves)."""
        cut, end = 0, self.prefix
        for chunk in self.chunks:
            cut, end = cut + chunk.src - end, chunk.src + chunk.length
        return cut


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def plan_reuse(
    cached: Sequence[int], prompt: Sequence[int], *, shift: bool = True, min_chunk: int = MIN_CHUNK
) -> ReusePlan:
    """The moves that make the cache hold the longest possible start of `prompt`.

    At most `len(prompt) - 1` tokens are reused: the last prompt token is always evaluated, for
    the logits of the first reply token. With `shift=False` (a model that cannot shift, or the
    user asked for exact re-reading) only the common prefix is reused."""
    c = np.asarray(cached, dtype=np.int64)
    p = np.asarray(prompt, dtype=np.int64)
    limit = max(0, len(p) - 1)
    prefix = common_prefix(c, p[:limit])
    index = _RunIndex(c, prefix, min_chunk)
    chunks: list[Chunk] = []
    head_c = head_p = prefix
    if shift:
        while head_p + min_chunk <= limit:
            src = index.find(p[head_p : head_p + min_chunk], head_c)
            if src is None:
                break
            length = min_chunk + common_prefix(c[src + min_chunk :], p[head_p + min_chunk : limit])
            chunks.append(Chunk(src, head_p, length))
            head_c, head_p = src + length, head_p + length
    reused = head_p
    held = reused + _held_after(index, c, p, head_c, head_p, limit, min_chunk)
    return ReusePlan(prefix, tuple(chunks), reused, held, len(c))


def _held_after(index, c, p, head_c: int, head_p: int, limit: int, k: int) -> int:
    """Prompt tokens after `head_p` found in the cache after `head_c`, in order, skipping prompt
    text the cache never held (what a cache that could insert would have reused)."""
    held = 0
    while head_p + k <= limit and head_c < len(c):
        src = index.find(p[head_p : head_p + k], head_c)
        if src is None:
            head_p += 1
            continue
        length = k + common_prefix(c[src + k :], p[head_p + k : limit])
        held += length
        head_c, head_p = src + length, head_p + length
    return held


class _RunIndex:
    """Positions of every `k`-token run of the cache (from `start` on), by content."""

    def __init__(self, cached: np.ndarray, start: int, k: int):
        self._runs: dict[bytes, list[int]] = {}
        self._k = k
        if len(cached) - start < k:
            return
        windows = np.lib.stride_tricks.sliding_window_view(cached[start:], k)
        for offset, window in enumerate(windows):
            self._runs.setdefault(window.tobytes(), []).append(start + offset)

    def find(self, run: np.ndarray, at_least: int) -> int | None:
        """The first position >= at_least where the cache holds `run`."""
        positions = self._runs.get(np.ascontiguousarray(run, dtype=np.int64).tobytes())
        if not positions:
            return None
        i = bisect.bisect_left(positions, at_least)
        return positions[i] if i < len(positions) else None
