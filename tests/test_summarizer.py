"""Summarization: overflow invariants with a scripted word model, then the real embedded model."""

from __future__ import annotations

import random
import threading

import pytest

from assistant.documents.chunking import paragraph_spans, sentence_spans
from assistant.documents.language import detect_language
from assistant.documents.options import SummaryOptions
from assistant.documents.points import split_points
from assistant.documents.summarizer import Summarizer, summarize
from assistant.errors import InvalidInputError

WORDS = (
    "river bridge harvest council engineer library lighthouse coast winter map clock "
    "mountain geese market festival storm harbor orchard railway school painter violin "
    "glacier desert merchant treaty comet vineyard printing press fever vaccine canal "
    "monastery telescope weaver copper salt caravan ferry observatory drought flood "
    "senate orchestra chemist alloy quarry mill bakery archive census"
).split()


def document(paragraphs: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    paras = []
    for i in range(paragraphs):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize()
            + f" in {1700 + i}."
            for _ in range(rng.randint(3, 6))
        ]
        paras.append(" ".join(sentences))
    return "\n\n".join(paras)


class _Stream:
    def __init__(self, text):
        self.text, self.finish_reason = text, "stop"

    def join(self):
        return self.text


class WordModel:
    """Scripted model: a token is a word; a reply repeats the first words of each text line."""

    def __init__(self, n_ctx: int):
        self.n_ctx = n_ctx
        self.calls: list[int] = []  # prompt + reply budget of every call

    def tokenize(self, text):
        return text.split()

    def count_prompt(self, messages):
        return sum(len(m.content.split()) + 4 for m in messages) + 3

    def prompt_tokens(self, messages):
        self._last = messages[-1].content
        return list(range(self.count_prompt(messages)))

    def stream(self, tokens, sampling, cancel=None, on_progress=None):
        self.calls.append(len(tokens) + sampling.max_tokens)
        body = self._last.split(":\n", 1)[1]
        lines = [ln.strip("- ").split()[:6] for ln in body.splitlines() if ln.strip()][:5]
        reply, budget = [], sampling.max_tokens
        for words in lines:
            if len(words) + 1 > budget:
                break
            reply.append("- " + " ".join(words))
            budget -= len(words) + 1
        return _Stream("\n".join(reply))


class ScriptedModel(WordModel):
    """Replies the same text to every prompt, whatever it is asked for."""

    def __init__(self, n_ctx: int, reply: str):
        super().__init__(n_ctx)
        self.reply = reply
        self.prompts: list[str] = []

    def stream(self, tokens, sampling, cancel=None, on_progress=None):
        self.calls.append(len(tokens) + sampling.max_tokens)
        self.prompts.append(self._last)
        return _Stream(self.reply)


@pytest.mark.parametrize("n_ctx, paragraphs, min_levels", [(512, 400, 3), (8192, 3200, 2)])
def test_no_prompt_ever_overflows_the_window(n_ctx, paragraphs, min_levels):
    model = WordModel(n_ctx)
    text = document(paragraphs)
    windows = len(text.split()) / n_ctx
    assert windows >= 20
    result = Summarizer(model, SummaryOptions(bullets=True)).summarize(text)
    assert max(model.calls) <= n_ctx and result.max_prompt_tokens <= n_ctx
    assert result.levels >= min_levels and result.chunks >= 20
    assert result.points and all(
        0 <= s < e <= len(text) for p in result.points for s, e in p.sources
    )


def test_chunks_are_contiguous_within_budget_and_cut_at_boundaries():
    model = WordModel(512)
    text = document(60) + "\n\n" + "word " * 900 + "end."  # one paragraph larger than a chunk
    summarizer = Summarizer(model)
    summarizer._text = text
    chunks = summarizer.chunk(text, 300)
    assert all(n <= 300 and n == len(text[s:e].split()) for s, e, n in chunks)
    covered = " ".join(text[s:e] for s, e, _ in chunks)
    assert covered.split() == text.split(), "every word is in exactly one chunk, in order"
    starts = {s for s, _ in paragraph_spans(text)}
    assert sum(s in starts for s, _, _ in chunks) >= len(chunks) - 4


def test_chunks_are_capped_below_a_large_window():
    model = WordModel(8192)
    text = document(800)
    summarizer = Summarizer(model, SummaryOptions(bullets=True, chunk_tokens=1000))
    assert summarizer.chunk_budget() == 1000
    result = summarizer.summarize(text)
    map_calls = model.calls[: result.chunks]
    assert result.chunks >= len(text.split()) // 1000
    assert max(map_calls) <= 1000 + summarizer.note_tokens + 60, "map prompts hold one chunk"
    wide = Summarizer(WordModel(8192), SummaryOptions(chunk_tokens=100_000))
    assert (
        wide.chunk_budget()
        == 8192 - wide.note_tokens - wide.rt.count_prompt(wide._map_prompt("")) - 8
    )
    with pytest.raises(InvalidInputError, match="too small"):
        SummaryOptions(chunk_tokens=10)


@pytest.mark.parametrize(
    "reply",
    [
        "",  # nothing useful: the points fall back on the head of each source paragraph
        "The bridge opened on Monday.\nIt cost\nthree million euros.",  # prose across lines
        "1. The bridge opened.\n2) It cost three million.\n* * Work starts in May.",
        "- - The bridge opened.   It cost three million.\n-   \n- ok",
    ],
)
def test_bullets_are_rendered_by_code_whatever_the_model_writes(reply):
    text = (
        "The committee met on Monday\nto discuss the new bridge over the river.\n\n"
        "They agreed on a budget\nof three million euros; construction starts in May."
    )
    bullets = summarize(ScriptedModel(2048, reply), text, SummaryOptions(bullets=True))
    assert bullets.points
    assert bullets.summary.splitlines() == [f"- {p.text}" for p in bullets.points]
    for point in bullets.points:
        assert point.text == " ".join(point.text.split()), "one line, single spaces"
        assert not point.text.startswith(("-", "*", "•")), "no bullet mark of the model's"
    prose = summarize(ScriptedModel(2048, reply), text, SummaryOptions(bullets=False))
    assert prose.summary == " ".join(p.text for p in prose.points) and "\n" not in prose.summary


def test_the_prompts_ask_for_the_language_of_the_text():
    chinese = (
        "长城是中国古代的军事防御工程，修建历史可上溯到西周时期。\n\n明朝对长城进行了大规模修缮。"
    )
    model = ScriptedModel(2048, "- 长城是军事防御工程。")
    result = summarize(model, chinese, SummaryOptions(length="short"))
    assert result.language == "Chinese" and result.to_json()["language"] == "Chinese"
    assert model.prompts and all("Write in Chinese." in p for p in model.prompts)
    model = ScriptedModel(2048, "- 長城は防御工事です。")
    result = summarize(model, chinese, SummaryOptions(language="Japanese"))
    assert all("Write in Japanese." in p for p in model.prompts), "an explicit language wins"
    model = ScriptedModel(512, "- A point.")
    result = summarize(model, document(60), SummaryOptions())
    assert result.language is None and result.chunks > 1
    assert all("Write in the same language as the text." in p for p in model.prompts)


def test_text_helpers():
    assert paragraph_spans("a\n\n  \n\nb") == [(0, 1), (7, 8)]
    text = "One. Two! 三。四？"
    assert [text[s:e].strip() for s, e in sentence_spans(text, 0, len(text))] == [
        "One.",
        "Two!",
        "三。",
        "四？",
    ]
    assert split_points("Intro\n- a point\n* b point\n1. c point\n- a point") == [
        "a point",
        "b point",
        "c point",
    ]
    assert split_points("First sentence. Second one.") == ["First sentence.", "Second one."]
    assert detect_language("长城是中国古代的军事防御工程") == "Chinese"
    assert detect_language("Пример текста на русском") == "Russian"
    assert detect_language("Plain English text") is None


# -- the real embedded model ---------------------------------------------------------------------
def test_short_document_in_one_pass(runtime_factory):
    text = (
        "The committee met on Monday to discuss the new bridge over the river.\n\n"
        "They agreed on a budget of three million euros; construction starts in May."
    )
    result = summarize(runtime_factory(2048), text, SummaryOptions(length="short"))
    assert result.chunks == 1 and result.levels == 1 and not result.partial
    assert result.summary.strip() and result.points
    assert all(0 <= s < e <= len(text) for p in result.points for s, e in p.sources)


def test_long_document_in_several_levels_at_ctx_512(runtime_factory):
    rt = runtime_factory(512)
    text = document(135, seed=7)
    source_tokens = len(rt.tokenize(text))
    assert source_tokens >= 20 * 512
    calls = []
    real_stream = rt.stream

    def recording_stream(prompt, sampling=None, cancel=None, **kwargs):
        stream = real_stream(prompt, sampling, cancel, **kwargs)
        calls.append(stream)
        return stream

    rt.stream = recording_stream
    events = []
    try:
        result = summarize(rt, text, SummaryOptions(bullets=True), progress=events.append)
    finally:
        del rt.stream
    assert result.levels >= 3 and result.chunks >= 20 and result.source_tokens == source_tokens
    assert all(c.stats.prompt_tokens + c.stats.completion_tokens <= 512 for c in calls)
    assert result.max_prompt_tokens <= 512
    shared = rt.count_prompt(Summarizer(rt, SummaryOptions(bullets=True))._map_prompt("")) - 8
    map_calls = calls[1 : result.chunks]
    assert all(c.stats.cached_tokens >= shared for c in map_calls), "instruction prefix reused"
    assert result.points
    assert result.summary.splitlines() == [f"- {p.text}" for p in result.points]
    assert [e.done for e in events] == list(range(1, len(calls) + 1))
    assert events[-1].done == events[-1].total and events[-1].eta_s == 0
    assert events[result.chunks - 1].tokens_processed == source_tokens
    data = result.to_json()
    assert {"summary", "chunks", "levels", "source_tokens", "seconds", "sources"} <= data.keys()
    assert all(r[0] < r[1] for s in data["sources"] for r in s["ranges"])


def test_chunk_counts_are_exact_with_the_model_tokenizer(runtime_factory):
    rt = runtime_factory(512)
    text = document(40, seed=3) + "\n\n" + "长城是中国古代的军事防御工程。" * 60
    summarizer = Summarizer(rt)
    summarizer._text = text
    chunks = summarizer.chunk(text, 200)
    assert all(n == len(rt.tokenize(text[s:e])) <= 200 for s, e, n in chunks)
    assert [c[0] for c in chunks[1:]] == [
        next(i for i in range(e, len(text)) if not text[i].isspace()) for _, e, _ in chunks[:-1]
    ], "contiguous: each chunk starts where the previous one's trailing blank ends"
    assert min(n for _, _, n in chunks[:-1]) > 100, "packed, not one paragraph per chunk"


def test_cancel_mid_run_returns_a_partial_summary(runtime_factory):
    cancel = threading.Event()
    events = []

    def on_progress(p):
        events.append(p)
        if p.done == 2:
            cancel.set()

    result = summarize(
        runtime_factory(512),
        document(90, seed=3),
        SummaryOptions(),
        progress=on_progress,
        cancel=cancel,
    )
    assert result.partial and result.summary.strip()
    assert len(events) <= 3, "it stops within the current model call"


def test_summary_goes_into_the_conversation_with_its_sources(runtime_factory, assistant_home):
    from assistant.conversation.session import ChatSession
    from assistant.conversation.store import Store

    rt = runtime_factory(2048)
    text = (
        "The museum reopened in March after a two-year renovation.\n\n"
        "Its new wing shows Roman coins found near the harbor."
    )
    result = summarize(rt, text, SummaryOptions(length="short"))
    store = Store()
    session = ChatSession(rt, store, sampling=None)
    request, message = session.record_summary("museum.txt", text, result)
    stored = store.messages(session.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"] and "museum.txt" in stored[0].content
    assert [request, message] == stored
    info = message.stats["summary"]
    name, source = store.get_document(info["document_id"])
    assert name == "museum.txt" and source == text
    for point in info["sources"]:
        assert all(source[s:e].strip() for s, e in point["ranges"]), "ranges point into the text"
    follow_up = session.send("When did the museum reopen?").join()
    assert result.summary.strip()[:20] in session.prompt_text(), "the model sees the summary"
    assert follow_up.stats.finish_reason in {"stop", "length"}
    assert len(store.messages(session.conversation_id)) == 4
