"""How the engine's stream ends: closed by its consumer, at the end-of-generation token, or
held to a length with `ignore_eos` (real model)."""

from __future__ import annotations

from assistant.types import SYSTEM, USER, Message, SamplingOptions

GREEDY = SamplingOptions(temperature=0, max_tokens=64, seed=1)
QUESTION = [Message(SYSTEM, "You are concise."), Message(USER, "Say hello in one short sentence.")]


def test_a_stream_closed_by_its_consumer_ends_cancelled_not_length(runtime):
    stream = runtime.stream(QUESTION, SamplingOptions(temperature=0, max_tokens=200))
    first = next(stream)
    stream.close()
    assert stream.finish_reason == "cancelled"
    assert stream.text == first and stream.stats.completion_tokens >= 1


def test_text_held_as_a_possible_stop_string_is_kept_at_end_of_generation(runtime):
    """A reply whose last characters begin a stop string, then ends at the model's own
    end-of-generation token: those characters are part of the reply, not dropped."""
    runtime._llm.reset()  # the same cache state for both greedy runs
    plain = runtime.stream(QUESTION, GREEDY)
    plain.join()
    assert plain.finish_reason == "stop" and len(plain.text) > 3
    tail = plain.text[-2:]
    runtime._llm.reset()
    held = runtime.stream(
        QUESTION, SamplingOptions(temperature=0, max_tokens=64, seed=1, stop=(tail + "\x00never",))
    )
    pieces = list(held)
    assert held.finish_reason == "stop"
    assert held.text == plain.text == "".join(pieces)


def test_ignore_eos_runs_to_max_tokens(runtime):
    runtime._llm.reset()
    short = runtime.stream(QUESTION, GREEDY)
    short.join()
    assert short.finish_reason == "stop" and short.stats.completion_tokens < 64
    forced = runtime.stream(
        QUESTION, SamplingOptions(temperature=0, max_tokens=64, seed=1, ignore_eos=True)
    )
    forced.join()
    assert forced.finish_reason == "length" and forced.stats.completion_tokens == 64


def test_sampling_out_of_range_never_reaches_llama_cpp(runtime):
    """Whoever built the options (a conversation stored by an older version, a request):
    max_tokens 0 is refused, not 'unlimited'."""
    import pytest

    from assistant.errors import OutOfRangeError

    for bad in ({"max_tokens": 0}, {"max_tokens": -5}, {"top_p": 2.0}, {"temperature": -1.0}):
        with pytest.raises(OutOfRangeError):
            runtime.stream(QUESTION, SamplingOptions(**bad))
