"""Asking documents with the real model and real SQLite: whole documents when they fit, passages
when they do not, the window never overflowing, sources in replies and in `--json`, follow-ups,
summaries attaching their document, and a 10 MB document indexed in bounded memory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.conversation import attachments
from assistant.conversation import passage_index as index
from assistant.conversation.session import ChatSession
from assistant.conversation.store import Store
from assistant.documents.options import SummaryResult
from assistant.types import USER, Message, SamplingOptions

DATA = Path(__file__).parent / "data"
ENGLISH = DATA / "jargon_file_4.4.7_excerpt.txt"
CHINESE = DATA / "lunyu_analects.txt"
QUICK = SamplingOptions(max_tokens=12, temperature=0.0, seed=0)
MEMO = """# Harbour bridge committee, minutes of 3 March

Present: the chair, the treasurer and four members.

The treasurer reported that the repair budget for the harbour bridge is 48,250 euros, of which
12,000 euros are set aside for the new lighting. The work starts on 14 April and takes six weeks.

The committee agreed to close the bridge to cars during the work; bicycles may still cross.
"""


def where(text: str, answer: str) -> int:
    return re.search(r"\s+".join(map(re.escape, answer.split())), text).start()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "chat.sqlite3")
    yield s
    s.close()


def test_a_document_that_fits_is_sent_whole(runtime_factory, store):
    runtime = runtime_factory(2048)
    session = ChatSession(runtime, store, sampling=QUICK)
    attachments.attach(store, runtime, session.conversation_id, "minutes.md", MEMO, retitle=True)
    assert session.conversation.title == "Harbour bridge committee, minutes of 3 March"
    result = session.send("What is the repair budget of the bridge?").join()
    (source,) = result.sources
    assert (source.start, source.end, source.text) == (0, len(MEMO), MEMO)
    seen = session.prompt_text()
    assert MEMO.strip() in seen and "the whole document" in seen
    assert seen.index(MEMO.strip()) < seen.index("What is the repair budget")
    stored = store.messages(session.conversation_id)[-1].stats["sources"]
    assert stored == [{k: v for k, v in source.to_json().items() if k != "text"}]
    history = session._history() + [(None, Message(USER, "When does the work start?"))]
    following = session.preview(history).window  # the next question's window (pure)
    assert following.messages[0].content in seen, "a whole document is the same every turn"


def _block(prompt: str) -> str:
    """The context block inside a rendered prompt (ChatML system turn)."""
    return prompt.split("<|im_end|>", 1)[0]


def test_the_window_never_overflows_with_documents_at_1024(runtime_factory, store):
    """Two long documents at --ctx 1024: excerpts, a follow-up answered from the last exchange,
    and a long question that crowds the excerpts out of a part of the window."""
    runtime = runtime_factory(1024)
    session = ChatSession(runtime, store, sampling=QUICK)
    text = ENGLISH.read_text(encoding="utf-8")
    attachments.attach(store, runtime, session.conversation_id, ENGLISH.name, text)
    attachments.attach(
        store, runtime, session.conversation_id, CHINESE.name, CHINESE.read_text(encoding="utf-8")
    )
    story = [where(text, "‘magic' and ‘more magic'"), where(text, "promptly crashed")]
    questions = [
        "Why did the computer crash when they flipped the switch with one wire?",
        "What happened next?",  # no word of its own to search for: the last exchange decides
        "三人行的时候必定有什么？ Which computer did Mel rewrite the blackjack program for? " * 6,
    ]
    blocks = []
    for question in questions:
        result = session.send(question).join()
        assert result.context.used + result.context.reserve <= 1024
        assert result.stats.prompt_tokens + QUICK.max_tokens <= 1024
        assert result.sources, question
        blocks.append(_block(session.prompt_text()))
        for source in result.sources:
            assert source.text.strip() and f"[{source.number}] {source.document}" in blocks[-1]
    for reply in session.messages()[1:4:2]:  # the first question and its follow-up
        found = reply.stats["sources"][:3]
        assert any(s["start"] <= at < s["end"] for s in found for at in story), reply.content
    changed = sum(a != b for a, b in zip(blocks, blocks[1:], strict=False))
    print(f"the excerpt block changed in {changed} of {len(blocks) - 1} follow-ups")


def test_a_summary_attaches_its_document_and_a_cancelled_one_says_so(runtime_factory, store):
    runtime = runtime_factory(2048)
    session = ChatSession(runtime, store, sampling=QUICK)
    empty = SummaryResult("", (), 1, 1, 90, 14.2, partial=True)
    request, summary = session.record_summary("pasted text", MEMO, empty)
    assert summary.status == "cancelled" and "cancelled after 14 s" in summary.content
    assert "ask about it" in summary.content
    assert session.conversation.title == "Harbour bridge committee, minutes of 3 March"
    (doc,) = index.list_documents(store, session.conversation_id)
    assert summary.stats["summary"]["document_id"] == doc.id and doc.passages >= 1
    partial = SummaryResult("- The bridge budget is 48,250 euros.", (), 2, 1, 90, 3.0, True)
    _, second = session.record_summary("minutes.md", MEMO, partial)
    assert second.content.startswith("- The bridge budget is 48,250 euros.")
    assert "Partial summary" in second.content
    # what the model would see next: the summary goes with the document's excerpts
    assert "Summary of minutes.md:\n- The bridge budget" in session.prompt_text()
    assert session.preview().window.sources


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_ask_with_documents_prints_sources_in_json():
    fast = ["--max-tokens", "8", "--temperature", "0", "--ctx", "1024", "--json"]
    docs = ["--doc", str(ENGLISH), "--doc", str(CHINESE)]
    proc = run_cli("ask", *fast, *docs, "What did OS stand for among old-time ITS hackers?")
    reply = json.loads(proc.stdout)
    sources = reply["sources"]
    assert sources and {"document", "start", "end", "text", "score"} <= sources[0].keys()
    text = ENGLISH.read_text(encoding="utf-8")
    for s in sources:
        assert s["document"] in {ENGLISH.name, CHINESE.name}
        if s["document"] == ENGLISH.name:
            assert text[s["start"] : s["end"]] == s["text"]
    assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)
    answer = where(text, "it almost always meant ‘output spy’")
    assert any(s["start"] <= answer < s["end"] for s in sources[:3])
    assert reply["context"]["used"] + reply["context"]["reserve"] <= 1024
    assert "passages]" in proc.stderr  # the indexing line


def test_chat_with_a_document_is_titled_after_it_and_stored(assistant_home):
    fast = ["--max-tokens", "8", "--temperature", "0", "--ctx", "1024", "--json"]
    proc = run_cli("chat", *fast, "--doc", str(CHINESE), stdin="温故而知新有什么用？\n")
    reply = json.loads(proc.stdout.splitlines()[0])
    assert any("温故而知新" in s["text"] for s in reply["sources"][:3])
    listed = run_cli("history", "list").stdout
    assert "论语" in listed
    store = Store()
    (conversation,) = store.list_conversations()
    store.close()
    again = run_cli(
        "chat",
        *fast,
        "--conversation",
        str(conversation.id),
        "--doc",
        str(CHINESE),
        stdin="学而时习之是什么意思？\n",
    )  # resumed with the same document: not indexed a second time
    assert "already in this conversation" in again.stderr
    store = Store()
    try:
        assert len(index.list_documents(store, conversation.id)) == 1
    finally:
        store.close()


MEMORY_SCRIPT = r"""
import sys, time
from assistant.conversation.store import Store
from assistant.conversation import passage_index as index

def status(field):  # kB of the process's resident memory: now (VmRSS) or its peak (VmHWM)
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

line = "The committee met on day {} and agreed on item {}; the budget line {} was approved.\n"
text = "".join(line.format(i, i * 7, i * 13) + ("\n" if i % 5 == 0 else "") for i in range(125_000))
store = Store(sys.argv[1])
conversation = store.create_conversation()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from here (Linux)
before = status("VmRSS")
reports = []
start = time.perf_counter()
info = index.add_document(store, conversation.id, "big.txt", text, progress=reports.append)
seconds = time.perf_counter() - start
grew = status("VmHWM") - before
hits = index.search(store, conversation.id, index.match_expression(["124999"]))
found = any("met on day 124999 " in hit.text for hit in hits)
print(len(text), grew, info.passages, len(reports), seconds, found)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_10_mb_document_indexes_holding_its_text_at_most_twice(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "big.sqlite3")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    chars, grew, passages, reports, seconds, found = proc.stdout.split()
    chars, grew = int(chars), int(grew)
    assert chars > 10_000_000 and int(passages) > 10_000 and int(reports) > 10
    # the text is held once before indexing; indexing may add at most one more copy
    assert grew <= chars, f"indexing grew the process by {grew / chars:.2f}x the text"
    assert found == "True", "the last passage is searchable"
    print(f"10 MB indexed in {float(seconds):.1f} s, memory +{grew / chars:.2f}x the text")
