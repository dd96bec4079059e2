"""Asking documents, the parts without a model: passages, the FTS5 index in real SQLite,
ranking, the excerpt block, titles and the weak-source rule of summaries."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from assistant.conversation import passage_index as index
from assistant.conversation import writers
from assistant.conversation.retrieval import (
    EXCERPTS_HEADER,
    excerpts,
    exchange_of,
    query_terms,
    rank,
)
from assistant.conversation.store import Store
from assistant.documents.options import SummaryPoint
from assistant.documents.passages import MAX_TOKENS, estimate_tokens, iter_passages
from assistant.documents.points import best_sources
from assistant.documents.titles import document_title
from assistant.types import ASSISTANT, USER, Message

DATA = Path(__file__).parent / "data"
ENGLISH = (DATA / "jargon_file_4.4.7_excerpt.txt").read_text(encoding="utf-8")
CHINESE = (DATA / "lunyu_analects.txt").read_text(encoding="utf-8")


def where(text: str, answer: str) -> int:
    """Where a hand-located answer starts (its spaces may be any whitespace in the text)."""
    return re.search(r"\s+".join(map(re.escape, answer.split())), text).start()


def words(text: str) -> int:  # a word tokenizer, for packing without a model
    return len(text.split()) + len(re.findall(r"[\u4e00-\u9fff]", text))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "docs.sqlite3")
    yield s
    s.close()


@pytest.mark.parametrize("text", [ENGLISH, CHINESE], ids=["english", "chinese"])
def test_passages_cover_the_text_paragraph_aligned(text):
    passages = list(iter_passages(text))
    assert passages[0].start == text.index(text.strip()[0])
    breaks = [m.start() for m in re.finditer(r"\n[ \t]*\n", text)] + [len(text)]
    for a, b in zip(passages, passages[1:], strict=False):
        assert a.end <= b.start and not text[a.end : b.start].strip(), "only whitespace between"
        if text[a.end : b.start].count("\n") < 2:  # inside a paragraph: only one too long
            after = min(i for i in breaks if i >= b.start)
            before = max([i for i in breaks if i < a.end] or [0])
            assert estimate_tokens(text[before:after]) > MAX_TOKENS
    assert not text[passages[-1].end :].strip()
    assert all(1 <= p.tokens <= MAX_TOKENS for p in passages)
    for p in passages:  # the size is the sum of its paragraphs' estimates
        assert abs(p.tokens - estimate_tokens(text[p.start : p.end])) <= 3 + p.tokens // 10


def test_passages_of_text_without_breaks_stay_small():
    one_line = "word " * 20_000 + "x" * 5000  # no paragraph, no sentence; then no space at all
    passages = list(iter_passages(one_line))
    assert all(p.tokens <= MAX_TOKENS for p in passages)
    assert "".join(one_line[p.start : p.end] for p in passages).replace(
        " ", ""
    ) == one_line.replace(" ", "")


def test_index_ranks_the_answer_in_english_and_chinese(store):
    conv = store.create_conversation()
    en = index.add_document(store, conv.id, "jargon.txt", ENGLISH)
    zh = index.add_document(store, conv.id, "lunyu.txt", CHINESE)
    assert en.passages > 100 and zh.passages > 50 and en.tokens > 20_000
    for doc, text, question, answer in [
        (
            en,
            ENGLISH,
            "What was the counterspy program on ITS called?",
            "program was called JEDGAR",
        ),
        (zh, CHINESE, "温故而知新有什么用？", "温故而知新，可以为师矣"),
    ]:
        top = [hit for hit, _ in rank(store, conv.id, question)[:3]]
        at = where(text, answer)
        assert any(h.document_id == doc.id and h.start <= at < h.end for h in top), question


def test_query_terms_drop_stop_words_and_pair_cjk_characters():
    assert query_terms("What was the budget of the Bridge project?") == [
        "budget",
        "bridge",
        "project",
    ]
    assert query_terms("温故而知新") == ["温故", "故而", "而知", "知新"]
    assert index.match_expression(['a"b', "c"]) == '"a""b" OR "c"'


def test_the_last_exchange_is_used_for_follow_ups(store):
    conv = store.create_conversation()
    doc = index.add_document(store, conv.id, "jargon.txt", ENGLISH)
    history = [
        Message(USER, "Tell me about the switch labelled magic in the AI Lab."),
        Message(ASSISTANT, "A switch on the PDP-10 cabinet had one wire; flipping it crashed it."),
        Message(USER, "What happened next?"),
    ]
    question, previous = exchange_of(history)
    assert question == history[-1].content and "PDP-10 cabinet" in previous
    story = [where(ENGLISH, "I called another hacker over"), where(ENGLISH, "promptly crashed")]

    def found(ranked) -> bool:
        return any(
            h.document_id == doc.id and h.start <= at < h.end for h, _ in ranked[:3] for at in story
        )

    assert not found(rank(store, conv.id, question)), "the question alone does not find it"
    assert found(rank(store, conv.id, question, previous))


def test_excerpts_fit_the_budget_in_document_order_and_stay_stable(store):
    conv = store.create_conversation()
    index.add_document(store, conv.id, "jargon.txt", ENGLISH)
    docs = index.list_documents(store, conv.id)
    ranked = rank(store, conv.id, "Mel RPC-4000 blackjack program drum")
    grounding = excerpts(docs, ranked, 600, words)
    assert grounding.mode == "passages" and words(grounding.block) <= 600
    assert grounding.block.startswith(EXCERPTS_HEADER)
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", grounding.block, re.M)]
    assert numbers == list(range(1, len(grounding.sources) + 1))
    by_position = sorted(grounding.sources, key=lambda s: s.start)
    assert [s.number for s in by_position] == numbers, "numbered by position, not by score"
    scores = [s.score for s in grounding.sources]
    assert scores == sorted(scores, reverse=True), "sources: most relevant first"
    for s in grounding.sources:
        assert ENGLISH[s.start : s.end] == s.text
    # the same passages in another order of relevance: the very same block (the cache holds)
    sent = {s.start for s in grounding.sources}
    again = excerpts(docs, [r for r in reversed(ranked) if r[0].start in sent], 600, words)
    assert again.block == grounding.block
    # a budget below one passage: the best one shortened, never over the budget
    tiny = excerpts(docs, ranked, 90, words)
    assert len(tiny.sources) == 1 and words(tiny.block) <= 90


def test_removing_a_document_removes_its_passages(store):
    conv = store.create_conversation()
    keep = index.add_document(store, conv.id, "lunyu.txt", CHINESE)
    gone = index.add_document(store, conv.id, "jargon.txt", ENGLISH)
    rows, indexed = index.count_passages(store)
    assert rows == indexed == keep.passages + gone.passages
    index.remove_document(store, gone.id)
    assert index.count_passages(store) == (keep.passages, keep.passages)
    assert [d.id for d in index.list_documents(store, conv.id)] == [keep.id]
    assert index.search(store, conv.id, index.match_expression(["jedgar"])) == []
    store.delete_conversation(conv.id)  # the conversation's documents go with it
    assert index.count_passages(store) == (0, 0)


def test_the_index_is_stored_and_reopened_without_indexing_again(tmp_path):
    path = tmp_path / "docs.sqlite3"
    first = Store(path)
    conv = first.create_conversation()
    index.add_document(first, conv.id, "jargon.txt", ENGLISH)
    first.close()
    second = Store(path)
    try:
        (doc,) = index.list_documents(second, conv.id)
        hits = rank(second, conv.id, "counterspy program JEDGAR")
        assert doc.name == "jargon.txt" and hits and hits[0][0].document_id == doc.id
    finally:
        second.close()


def test_cancelled_indexing_keeps_nothing_and_reports_progress(store):
    conv = store.create_conversation()
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.done_chars)
        cancel.set()  # stop after the first batch

    with pytest.raises(index.IndexingCancelledError):
        index.add_document(
            store, conv.id, "big.txt", ENGLISH * 20, progress=progress, cancel=cancel
        )
    assert seen and 0 < seen[0] < len(ENGLISH) * 20
    assert index.list_documents(store, conv.id) == [] and index.count_passages(store) == (0, 0)


def test_a_dead_indexer_leaves_nothing_behind(store, tmp_path):
    conv = store.create_conversation()
    db = sqlite3.connect(tmp_path / "docs.sqlite3")
    me = writers.process_identity()
    gone = json.dumps({**me, "pid": 2**22 + 7, "start": "1", "token": "x"})  # no such process
    db.execute(
        "INSERT INTO documents (conversation_id, name, text, created_at, indexer)"
        " VALUES (?, 'half.txt', 'half', 'now', ?)",
        (conv.id, gone),
    )
    db.commit()
    db.close()
    assert index.list_documents(store, conv.id) == []  # hidden while being indexed
    index.add_document(store, conv.id, "next.txt", "Another document.")
    with store._lock:
        names = [r[0] for r in store._db.execute("SELECT name FROM documents")]
    assert names == ["next.txt"]


def test_titles_come_from_the_document():
    assert document_title("pasted text", "# Budget 2024\n\nThe budget was…") == "Budget 2024"
    assert document_title("pasted text", CHINESE) == "论语"
    assert document_title("minutes.txt", "The meeting opened at nine. Members attended.") == (
        "minutes.txt"
    )
    first_words = document_title("pasted text", "The meeting opened at nine, as planned, and " * 5)
    assert first_words.startswith("The meeting opened at nine") and first_words.endswith("…")


def test_a_point_without_a_matching_passage_gets_no_source():
    candidates = [
        SummaryPoint("The council approved the new bridge over the river in March.", ((0, 60),)),
        SummaryPoint("Budget figures were presented by the treasurer.", ((61, 110),)),
    ]
    assert best_sources("The council approved the bridge.", candidates) == ((0, 60),)
    assert best_sources("Markus Lichtenstein won $205,483.17 at poker.", candidates) == ()


def test_documents_summarized_before_the_index_are_indexed_on_upgrade(tmp_path):
    from assistant.conversation.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:5]:  # the schema before passages
        step(db)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 'x', 'x')")
    db.execute(
        "INSERT INTO documents (conversation_id, name, text, created_at)"
        " VALUES (1, 'a.txt', ?, 'x')",
        (CHINESE,),
    )
    db.commit()
    db.close()
    store = Store(path)
    try:
        (doc,) = index.list_documents(store, 1)
        assert doc.passages > 50 and doc.chars == len(CHINESE)
        assert store.get_document(doc.id) == ("a.txt", CHINESE)
        top = rank(store, 1, "温故而知新")[0][0]
        assert "温故而知新" in top.text
    finally:
        store.close()
