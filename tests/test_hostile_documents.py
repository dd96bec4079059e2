"""Hostile and broken documents: one clear InvalidInputError each, in bounded time and memory."""

from __future__ import annotations

import time
import tracemalloc
import zipfile

import pytest

from assistant.cli import main
from assistant.documents import readers
from assistant.documents.chunking import iter_chunks
from assistant.documents.options import SummaryOptions
from assistant.documents.readers import load_document
from assistant.documents.summarizer import Summarizer
from assistant.errors import InvalidInputError
from assistant.types import Message


# -- encodings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Les élèves sont allés à l'école près de la forêt.", "latin-1"),
        ("Où est la bibliothèque ? Ça dépend : très loin, à côté du théâtre.", "latin-1"),
        ("Die Bürger müssen größere Straßen über die Brücke fahren.", "latin-1"),
        ("Schöne Grüße aus München", "latin-1"),
        ("El niño comió paella en Córdoba, ¿verdad?", "latin-1"),
        ("È una città molto bella, però non c'è più tempo.", "latin-1"),
        ("He said “hello” — and left…", "cp1252"),
        # other single-byte encodings still go to the detector, and come out right
        (
            "Česká republika je vnitrozemský stát ve střední Evropě. Hlavní město je Praha.",
            "cp1250",
        ),
        ("Zażółć gęślą jaźń. Polska jest państwem położonym w Europie Środkowej.", "cp1250"),
        ("Árvíztűrő tükörfúrógép. Magyarország fővárosa Budapest.", "cp1250"),
        ("Пример текста на русском языке, который мы хотим прочитать правильно.", "cp1251"),
    ],
)
def test_short_western_texts_are_not_read_as_central_european(tmp_path, text, encoding):
    path = tmp_path / "note.txt"
    path.write_bytes(text.encode(encoding))
    assert load_document(path).text == text


# -- PDF ---------------------------------------------------------------------------------------
def _pdf(objects: list[bytes]) -> bytes:
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _page(parent: int, contents: int) -> bytes:
    return (
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources "
        b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        % (parent, contents)
    )


def _text_stream(text: bytes) -> bytes:
    data = b"BT /F1 18 Tf 72 720 Td (%s) Tj ET" % text
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _pdf_pages(texts: list[bytes], depth: int = 0) -> bytes:
    """A catalog, `depth` nested /Pages nodes above one /Pages node, and a page per text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        me = 2 + level
        parent = b"/Parent %d 0 R " % (me - 1) if level else b""
        objects.append(b"<< /Type /Pages %s/Kids [%d 0 R] /Count %d >>" % (parent, me + 1, 1))
    node = 2 + depth
    first_page = node + 1
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(texts)))
    parent = b"/Parent %d 0 R " % (node - 1) if depth else b""
    objects.append(b"<< /Type /Pages %s/Kids [%s] /Count %d >>" % (parent, kids, len(texts)))
    for i, text in enumerate(texts):
        objects.append(_page(node, first_page + 2 * i + 1))
        objects.append(_text_stream(text))
    return _pdf(objects)


def test_pdf_past_pypdfs_page_tree_limit_is_one_clear_error(tmp_path):
    path = tmp_path / "deep.pdf"
    path.write_bytes(_pdf_pages([b"Deep text."], depth=120))
    with pytest.raises(InvalidInputError, match=r"deep\.pdf is not a readable PDF \(.*depth"):
        load_document(path)
    shallow = tmp_path / "shallow.pdf"
    shallow.write_bytes(_pdf_pages([b"First page.", b"Second page."], depth=3))
    assert load_document(shallow).text == "First page.\n\nSecond page."


def test_pdf_text_past_the_limit_stops_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_TEXT_CHARS", 30)
    path = tmp_path / "long.pdf"
    path.write_bytes(_pdf_pages([b"Twenty characters..."] * 50))
    calls = []
    from pypdf import PageObject

    real = PageObject.extract_text
    monkeypatch.setattr(
        PageObject, "extract_text", lambda self, *a, **k: calls.append(1) or real(self)
    )
    with pytest.raises(InvalidInputError, match="long.pdf holds .* million characters"):
        load_document(path)
    assert len(calls) == 2, "pages past the limit are not read"


# -- Word --------------------------------------------------------------------------------------
def _docx(path, document_xml: bytes | None = None) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("A paragraph.")
    document.save(path)
    if document_xml is None:
        return
    with zipfile.ZipFile(path) as src:
        parts = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in parts:
            out.writestr(info, document_xml if info.filename == "word/document.xml" else data)


def test_docx_with_malformed_xml_is_one_clear_error(tmp_path):
    path = tmp_path / "torn.docx"
    _docx(path, b'<?xml version="1.0"?>\n<w:document xmlns:w="x"><w:body><w:p>')
    with pytest.raises(InvalidInputError, match=r"torn\.docx is not a readable Word document"):
        load_document(path)


def forbid_parsing(monkeypatch):
    """python-docx must not be reached: the archive is refused before anything is inflated."""
    import docx

    def refuse(*_a, **_k):
        raise AssertionError("the document was parsed")

    monkeypatch.setattr(docx, "Document", refuse)


def test_docx_zip_bomb_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "bomb.docx"
    _docx(path)
    with zipfile.ZipFile(path) as src:
        parts = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in parts:
            if info.filename != "word/document.xml":
                out.writestr(info, data)
        with out.open("word/document.xml", "w") as member:  # 40 MB of XML in about 40 KB
            block = b"<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 30_000
            for _ in range(40 * 2**20 // len(block)):
                member.write(block)
    assert path.stat().st_size < 2**20
    forbid_parsing(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"bomb\.docx looks like a zip bomb.*document\.xml"):
        load_document(path)
    assert time.perf_counter() - started < 2


def test_docx_declaring_gigabytes_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "huge.docx"
    _docx(path)
    data = bytearray(path.read_bytes())
    # Rewrite the declared size of every part in the central directory to 1 GB.
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        data[pos + 24 : pos + 28] = (2**30).to_bytes(4, "little")
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))
    forbid_parsing(monkeypatch)
    with pytest.raises(InvalidInputError, match=r"huge\.docx would expand to .* MB when unpacked"):
        load_document(path)


def test_cli_prints_one_line_for_a_bad_document(tmp_path, capsys):
    path = tmp_path / "torn.docx"
    _docx(path, b"<w:document")
    assert main(["summarize", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: torn.docx is not a readable Word")


# -- one long line ---------------------------------------------------------------------------
class CountingTokenizer:
    """About four characters a token, and a record of how much text was counted."""

    def __init__(self):
        self.calls = 0
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return (len(text) + 3) // 4


def _single_line(chars: int) -> str:
    words = "river bridge harvest council engineer library lighthouse coast".split()
    line = " ".join(words[i % len(words)] for i in range(chars // 6))
    return line[:chars]


def test_a_five_million_character_line_is_chunked_in_linear_time_and_small_memory():
    text = _single_line(5_000_000)
    count = CountingTokenizer()
    tracemalloc.start()
    started = time.perf_counter()
    chunks = iter_chunks(text, 4096, count)
    first = next(chunks)
    first_chunk_s = time.perf_counter() - started
    assert count.chars < 4 * 4096 * 4, "the first chunk counts about one window, not the text"
    chunks = [first, *chunks]
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert first_chunk_s < 0.5 and elapsed < 20
    assert peak < 4 * 2**20, f"chunking held {peak / 2**20:.1f} MB beside a 5 MB text"
    assert count.chars < 2 * len(text), "each stretch of the text is counted about once"
    assert all(n <= 4096 and n == count(text[s:e]) for s, e, n in chunks[:50])
    assert all(n > 0.8 * 4096 for _, _, n in chunks[:-1]), "chunks are full"
    assert all(text[e] == " " for _, e, _ in chunks[:-1]), "cut at word boundaries"
    assert "".join(text[s:e] + " " for s, e, _ in chunks).strip() == text


def test_a_line_without_spaces_is_cut_by_length():
    text = "x" * 300_000
    chunks = list(iter_chunks(text, 1000, CountingTokenizer()))
    assert all(850 <= n <= 1000 for _, _, n in chunks[:-1]), "hard cuts, yet full chunks"
    assert "".join(text[s:e] for s, e, _ in chunks) == text


def test_a_character_larger_than_a_chunk_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="single character"):
        list(iter_chunks("abc", 2, lambda t: 10 * len(t)))


class _Stream:
    def __init__(self, text):
        self.text, self.finish_reason = text, "stop"

    def join(self):
        return self.text


class WordRuntime:
    """A model whose tokens are four characters; replies repeat the head of the prompt's text."""

    n_ctx = 2048

    def __init__(self):
        self.tokenized_chars = 0
        self.chars_before_first_call = None
        self.calls = 0

    def tokenize(self, text):
        self.tokenized_chars += len(text)
        return [0] * ((len(text) + 3) // 4)

    def count_prompt(self, messages: list[Message]) -> int:
        return sum(len(self.tokenize(m.content)) + 4 for m in messages) + 3

    def prompt_tokens(self, messages):
        self._last = messages[-1].content
        return [0] * self.count_prompt(messages)

    def stream(self, tokens, sampling, cancel=None, on_progress=None):
        if self.chars_before_first_call is None:
            self.chars_before_first_call = self.tokenized_chars
        self.calls += 1
        return _Stream("- " + " ".join(self._last.split(":\n", 1)[1].split()[:8]))


def test_summarizing_a_long_line_calls_the_model_after_one_chunk_with_progress():
    text = _single_line(1_500_000)
    runtime = WordRuntime()
    events = []
    result = Summarizer(runtime, SummaryOptions(), progress=events.append).summarize(text)
    assert runtime.chars_before_first_call < 50_000, "the whole text is not counted first"
    assert result.chunks > 100 and result.points
    map_events = [e for e in events if e.stage == "map"]
    assert len(map_events) == result.chunks
    assert [e.done for e in events] == list(range(1, len(events) + 1))
    assert abs(map_events[0].total - map_events[-1].total) <= 0.05 * map_events[-1].total
    assert map_events[-1].tokens_processed == result.source_tokens
    assert abs(result.source_tokens - len(text) / 4) < 0.01 * len(text) / 4
    assert runtime.tokenized_chars < 4 * len(text)


# -- imported conversations: deep JSON, and 100,000 messages ----------------------------------
def test_history_import_of_deeply_nested_json_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert main(["history", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deep.json is not valid JSON (nested too deeply)" in err


def test_app_import_of_deeply_nested_json_is_one_line(tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from assistant.conversation.store import Store
    from ui.export_import import import_chat

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    errors: list[str] = []
    assert import_chat(None, Store(), errors.append) is None
    assert errors == [f"{path} is not valid JSON (nested too deeply)."]


class CountingWords:
    """Tokens are words (3 more per message, 2 for the generation prompt); counts the work."""

    def __init__(self):
        self.words = 0

    def count_prompt(self, messages):
        n = sum(len(m.content.split()) + 3 for m in messages) + 2
        self.words += n
        return n

    def tokenize(self, text):
        self.words += len(text.split())
        return text.split()

    def detokenize(self, tokens):
        return " ".join(tokens)


def test_a_100k_message_history_is_fitted_counting_only_what_can_fit():
    from assistant.conversation.window import fit_window
    from assistant.errors import ContextFullError
    from assistant.types import ASSISTANT, USER, Policy

    history = []
    for i in range(50_000):
        history.append(Message(USER, f"question {i} " + "word " * 8))
        history.append(Message(ASSISTANT, f"answer {i} " + "word " * 8))
    counter = CountingWords()
    n_ctx, reserve = 4096, 512
    started = time.perf_counter()
    w = fit_window(history, system="be brief", counter=counter, n_ctx=n_ctx, reserve=reserve)
    assert time.perf_counter() - started < 1.0
    assert counter.words < 20 * n_ctx, f"{counter.words} words counted for a {n_ctx} window"
    budget = n_ctx - reserve
    # The same window as counting everything: the first turn whose prompt fits a third below.
    exact = CountingWords().count_prompt
    assert w.used == exact(w.messages) <= budget - int(0.33 * budget)
    assert history[w.start].role == USER and w.messages[-1] == history[-1]
    assert exact(w.messages[:1] + tuple(history[w.start - 2 :])) > budget - int(0.33 * budget)
    # The next reply keeps the start (sticky) and costs as little.
    history += [Message(ASSISTANT, "short answer"), Message(USER, "and then?")]
    counter = CountingWords()
    again = fit_window(
        history, system="be brief", counter=counter, n_ctx=n_ctx, reserve=reserve, start=w.start
    )
    assert again.start == w.start and counter.words < 3 * n_ctx
    with pytest.raises(ContextFullError, match="more than"):
        fit_window(
            history,
            system="be brief",
            counter=CountingWords(),
            n_ctx=n_ctx,
            reserve=reserve,
            policy=Policy.STOP,
        )
