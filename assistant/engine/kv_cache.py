"""The one adapter to llama.cpp's KV cache through a `llama_cpp.Llama`: applying a reuse plan
(cut a block out of the middle, move the kept tokens down) and copying a sequence's state out
and back in. `Llama`'s own record of the cached tokens (`input_ids`, `n_tokens`) is kept equal
to what the cache holds, so that its prefix matching in `generate` reuses the moved tokens.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp
import numpy as np

from assistant.engine.kv_reuse import ReusePlan

SEQ = 0  # llama-cpp-python keeps one conversation in sequence 0


def cached_tokens(llm: llama_cpp.Llama) -> np.ndarray:
    """The tokens the KV cache holds, in position order (a copy)."""
    return np.array(llm.input_ids[: llm.n_tokens], dtype=np.int64)


def can_shift(llm: llama_cpp.Llama) -> bool:
    """False for memories that cannot move cells (recurrent and hybrid models)."""
    memory = llm._ctx.memory
    return memory is not None and bool(llama_cpp.llama_memory_can_shift(memory))


def apply_plan(llm: llama_cpp.Llama, plan: ReusePlan, prompt: Sequence[int]) -> int:
    """Make the cache hold prompt[:n] and return n: `plan.reused` when every step succeeds; the
    plain prefix when a move is refused; 0 (an empty cache) when even a cut is refused."""
    memory = llm._ctx.memory
    if memory is None:
        llm.reset()
        return 0
    kept = plan.prefix
    try:
        for chunk in plan.chunks:
            if not llama_cpp.llama_memory_seq_rm(memory, SEQ, chunk.dst, chunk.src):
                raise _Refused
            llama_cpp.llama_memory_seq_add(
                memory, SEQ, chunk.src, chunk.src + chunk.length, chunk.dst - chunk.src
            )
            kept = chunk.dst + chunk.length
    except _Refused:
        pass
    if not llama_cpp.llama_memory_seq_rm(memory, SEQ, kept, -1):
        llm.reset()
        return 0
    if kept > plan.prefix:
        llm.input_ids[plan.prefix : kept] = np.asarray(prompt[plan.prefix : kept])
    llm.n_tokens = kept
    llm._requires_eval = True  # the logits in hand belong to the old last token
    return kept


class _Refused(Exception):
    pass


def state_size(llm: llama_cpp.Llama) -> int:
    return int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, SEQ))


def snapshot(llm: llama_cpp.Llama) -> tuple[np.ndarray, bytes]:
    """The cached tokens and the sequence's KV state (a copy llama.cpp can take back)."""
    size = state_size(llm)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, buffer, size, SEQ)
    return cached_tokens(llm), bytes(memoryview(buffer)[:written])


def restore(llm: llama_cpp.Llama, tokens: np.ndarray, data: bytes) -> bool:
    """Put a snapshot back as the whole cache. False (and an empty cache) if llama.cpp refuses
    the data: another model, another context size, a damaged state."""
    if len(tokens) >= llm.n_ctx() or not data:
        return False
    llm.reset()
    llm._ctx.kv_cache_clear()
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    read = llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(data), SEQ)
    memory = llm._ctx.memory
    held = llama_cpp.llama_memory_seq_pos_max(memory, SEQ) + 1 if memory is not None else 0
    if read != len(data) or held != len(tokens):
        llm._ctx.kv_cache_clear()
        llm.reset()
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    llm._requires_eval = True
    return True
