"""Context shift: when turns leave the window, their tokens leave the KV cache and the kept
tokens move down, so only the new message is read (issue 12)."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from assistant.conversation.session import ChatSession
from assistant.conversation.store import Store
from assistant.engine import kv_cache, prompt_cache
from assistant.engine.kv_reuse import Chunk, plan_reuse
from assistant.types import Message, SamplingOptions

GREEDY = SamplingOptions(max_tokens=24, temperature=0.0, seed=1)


# -- planning (pure) -----------------------------------------------------------------------
def test_a_common_prefix_is_reused_in_place():
    plan = plan_reuse(list(range(100)), list(range(100)) + [7, 8])
    assert (plan.prefix, plan.chunks, plan.reused, plan.shifted) == (100, (), 100, 0)


def test_a_block_cut_from_the_middle_becomes_one_move():
    cached = list(range(200))
    prompt = cached[:20] + cached[70:200] + [900, 901, 902]
    plan = plan_reuse(cached, prompt)
    assert plan.prefix == 20
    assert plan.chunks == (Chunk(src=70, dst=20, length=130),)
    assert plan.reused == 150 and plan.shifted == 50 and plan.held == 150


def test_the_last_prompt_token_is_always_read():
    cached = list(range(50))
    assert plan_reuse(cached, cached).reused == 49  # its logits start the reply
    cut = cached[:10] + cached[30:]
    assert plan_reuse(cached, cut).reused == len(cut) - 1


def test_text_put_before_cached_tokens_cannot_reuse_them_and_says_so():
    """llama.cpp keeps positions consecutive: nothing can be inserted before cached tokens, so
    a grown summary in the system message means reading the kept turns again (`held`)."""
    cached = list(range(300))
    prompt = cached[:20] + [1000 + i for i in range(40)] + cached[100:300] + [5]
    plan = plan_reuse(cached, prompt)
    assert plan.reused == 20 and plan.chunks == ()
    assert plan.held == 20 + 200  # what a cache that could insert would have kept


def test_without_shifting_only_the_prefix_is_reused():
    cached = list(range(200))
    prompt = cached[:20] + cached[70:] + [900]
    plan = plan_reuse(cached, prompt, shift=False)
    assert (plan.reused, plan.chunks, plan.held) == (20, (), 150)


def test_short_coincidences_are_not_moved():
    cached = [1, 2, 3] * 40
    prompt = [9] + [1, 2, 3] * 2 + [8]
    assert plan_reuse(cached, prompt).reused == 0


# -- the real model --------------------------------------------------------------------------
def _conversation(runtime, turns: int, label: str) -> list[Message]:
    history = [Message("system", "You are a helpful assistant. Answer in one sentence.")]
    for i in range(turns):
        history.append(Message("user", f"Tell me one fact about the number {i * 7 + 3}."))
        history.append(Message("assistant", runtime.stream(history, GREEDY, label=label).join()))
    return history


def _last_logits(runtime) -> np.ndarray:
    """The logits of the last token llama.cpp evaluated (after a one-token reply: the prompt's
    last token, the distribution the reply's first token is drawn from)."""
    llm = runtime._llm
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def test_a_slide_reads_only_the_new_message_and_continues_correctly(runtime_factory, model_path):
    runtime = runtime_factory(1024)
    history = _conversation(runtime, 5, "shift-test")
    slid = [history[0], *history[5:], Message("user", "And what about the number 100?")]
    prompt = runtime.prompt_tokens(slid)
    stream = runtime.stream(prompt, GREEDY, label="shift-test")
    shifted_reply = stream.join()
    stats = stream.stats
    new_message = len(runtime.tokenize("And what about the number 100?"))
    assert stats.shifted_tokens > 50  # two whole turns left the cache
    assert stats.reread_tokens == 0
    # besides the message: the end of the previous turn and the role markers (ChatML: 10)
    assert len(prompt) - stats.cached_tokens <= new_message + 12
    llm = runtime._llm
    # the cache holds exactly the prompt then the reply, at consecutive positions
    assert list(kv_cache.cached_tokens(llm)[: len(prompt)]) == prompt
    assert llama_cpp.llama_memory_seq_pos_max(llm._ctx.memory, 0) == llm.n_tokens - 1
    # the same prompt read from scratch by a second model gives the same greedy reply
    from assistant.engine.runtime import ModelRuntime
    from assistant.types import LoadOptions

    fresh = ModelRuntime(model_path, LoadOptions(n_ctx=1024, n_threads=2))
    try:
        assert fresh.stream(prompt, GREEDY).join() == shifted_reply
    finally:
        fresh.close()


def test_a_model_that_cannot_shift_reads_again_and_says_so(runtime_factory, monkeypatch):
    runtime = runtime_factory(1024)
    history = _conversation(runtime, 4, "no-shift")
    monkeypatch.setattr(kv_cache, "can_shift", lambda llm: False)
    slid = [history[0], *history[5:], Message("user", "One more, please.")]
    stream = runtime.stream(slid, GREEDY, label="no-shift")
    stream.join()
    assert stream.stats.shifted_tokens == 0
    assert stream.stats.reread_tokens > 50  # the kept turns were read again, and reported


def test_exact_slide_reads_again_and_matches_a_fresh_read(runtime_factory):
    runtime = runtime_factory(1024)
    history = _conversation(runtime, 4, "exact")
    slid = [history[0], *history[5:], Message("user", "One more, please.")]
    one = SamplingOptions(max_tokens=1, temperature=0.0)
    stream = runtime.stream(slid, one, label="exact", exact=True)
    stream.join()
    assert stream.stats.shifted_tokens == 0 and stream.stats.reread_tokens > 50
    exact_logits = _last_logits(runtime)
    runtime._llm.reset()
    runtime.cache.forget_live()
    runtime.stream(slid, one).join()
    fresh_logits = _last_logits(runtime)
    assert np.isfinite(fresh_logits).all() and fresh_logits.std() > 0.1
    assert np.allclose(fresh_logits, exact_logits, atol=1e-3)


@pytest.mark.parametrize("policy", ["drop"])
def test_forty_turns_at_ctx_1024_slide_without_reading_the_window_again(runtime_factory, policy):
    runtime = runtime_factory(1024)
    session = ChatSession(
        runtime,
        Store(),
        system_prompt="You are a helpful assistant. Answer briefly.",
        policy=policy,
        sampling=SamplingOptions(max_tokens=40, temperature=0.7, seed=3),
    )
    slides, kept_previous = 0, 0
    for turn in range(40):
        place = ["forests", "rivers", "deserts"][turn % 3]
        text = f"Turn {turn}: name one animal that lives in {place} and say why."
        reply = session.send(text)
        result = reply.join()
        stats = result.stats
        new = len(runtime.tokenize(text))
        if turn > 0:
            # every follow-up, slide or not, reads about the new message only: its markers, and
            # at worst the end of the previous reply where its text tokenizes differently
            assert stats.reread_tokens <= new
            assert stats.prompt_tokens - stats.cached_tokens <= new + 12 + 40
        if stats.shifted_tokens:
            slides += 1
            # the exchange being answered is still in view
            window = session.last_plan.window.messages
            kept_previous += any(m.role == "assistant" for m in window)
    assert slides >= 5
    assert kept_previous == slides


def test_saving_is_skipped_for_tiny_caches(runtime_factory, tmp_path):
    from assistant.engine.state_cache import StateCache

    runtime = runtime_factory(1024)
    runtime.use_saved_states(StateCache(tmp_path / "states"))
    try:
        runtime.stream([Message("user", "Hi")], SamplingOptions(max_tokens=1), label="tiny").join()
        assert runtime._llm.n_tokens < prompt_cache.MIN_SAVED_TOKENS
        assert runtime.save_state() is False
    finally:
        runtime.use_saved_states(None)


def test_a_summary_fold_reads_the_kept_turns_once_and_says_why_the_wait(runtime_factory):
    """A grown summary goes before the kept turns, and llama.cpp cannot insert tokens before
    cached ones: the fold turn reads the window again (reported as reread_tokens, its wait
    explained), and the next turn is an ordinary follow-up again."""
    runtime = runtime_factory(512)
    session = ChatSession(
        runtime,
        Store(),
        system_prompt="You are a helpful assistant.",
        policy="summarize",
        sampling=SamplingOptions(max_tokens=24, temperature=0.0, seed=1),
    )
    statuses, stages = [], set()
    folded_at = None
    for turn in range(30):
        text = f"Turn {turn}: " + "tell me about rivers, lakes and the sea in a few words. " * 3
        result = session.send(text, on_status=statuses.append).join()
        stages.update(s.stage for s in statuses)
        if result.context.summarized_messages and folded_at is None:
            folded_at = turn
            fold = result.stats
            assert fold.reread_tokens > 20
            assert fold.summary_s > 0 and fold.wait_s >= fold.summary_s
            assert any(s.stage == "summarizing" and "older message" in s.text for s in statuses)
        elif folded_at is not None and turn == folded_at + 1:
            if not result.stats.reread_tokens:  # not another fold
                assert (
                    result.stats.prompt_tokens - result.stats.cached_tokens
                    <= len(runtime.tokenize(text)) + 12 + 24
                )
                break
        statuses.clear()
    assert folded_at is not None, "the conversation never folded"
    assert {"summarizing", "reading"} <= stages
