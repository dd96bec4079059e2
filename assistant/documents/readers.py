"""Reading documents to summarize: text, Markdown, HTML, PDF (text layer) and Word files."""

from __future__ import annotations

import codecs
import re
import zipfile
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from assistant.errors import InvalidInputError

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 32 * 1024 * 1024  # well above the 10 MB of text the app promises to take
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".log", ".csv", ".json", ".text", ""}
# A .docx is a zip archive: its parts are checked before anything is inflated or parsed. Word's
# XML compresses 5 to 40 times, a zip bomb (1.2 MB growing to gigabytes) about 1000 times, and
# python-docx holds about 10 bytes per byte of XML (29 MB of XML, 21 million characters of
# text: 300 MB), so 96 MB unpacked keeps a document under about 1 GB.
MAX_DOCX_UNCOMPRESSED = 96 * 1024 * 1024  # all parts together, as the archive declares them
MAX_DOCX_RATIO = 100  # uncompressed / compressed size of one part ...
DOCX_RATIO_CHECK_BYTES = 8 * 1024 * 1024  # ... checked for parts larger than this
MAX_DOCX_MEMBERS = 10_000
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED = sorted(TEXT_SUFFIXES - {""} | HTML_SUFFIXES | {".pdf", ".docx"})


@dataclass(frozen=True)
class Document:
    name: str
    text: str  # normalized: '\n' line ends; source ranges index into this text


def from_text(text: str, name: str = "pasted text") -> Document:
    text = normalize(text)
    check_text(text, name)
    return Document(name, text)


def load_document(path: str | Path) -> Document:
    """Read a file into text, or raise InvalidInputError naming the file and the reason."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; choose a document file.")
    if size > MAX_FILE_BYTES:
        raise InvalidInputError(
            f"{path.name} is {size / 2**20:.0f} MB; documents up to "
            f"{MAX_FILE_BYTES // 2**20} MB can be summarized."
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            text = _read_pdf(path)
        elif suffix == ".docx":
            text = _read_docx(path)
        elif suffix in HTML_SUFFIXES:
            text = html_to_text(decode_bytes(path.read_bytes(), path.name))
        elif suffix in TEXT_SUFFIXES:
            text = decode_bytes(path.read_bytes(), path.name)
        else:
            raise InvalidInputError(
                f"{path.name}: unsupported file type '{suffix}'; supported: {', '.join(SUPPORTED)}."
            )
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    text = normalize(text)
    check_text(text, path.name)
    return Document(path.name, text)


def normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def check_text(text: str, name: str) -> None:
    if not text.strip():
        raise InvalidInputError(f"{name} has no text to summarize.")
    if len(text) > MAX_TEXT_CHARS:
        raise _too_long(name, len(text))


def _too_long(name: str, chars: int) -> InvalidInputError:
    return InvalidInputError(
        f"{name} holds {chars / 2**20:.1f} million characters; the limit is "
        f"{MAX_TEXT_CHARS // 2**20} million."
    )


def decode_bytes(data: bytes, name: str) -> str:
    """Decode text of unknown encoding; refuse binary data.

    UTF-8 first (with or without a byte order mark), then Windows-1252 (Latin-1) when the
    result reads as one Western European language, then charset-normalizer's guess. Its guess
    alone is not enough: on a short text Windows-1250 and Windows-1252 score the same and it
    picks the first (a French Latin-1 "élèves" came out as "élčves"), and short German came out
    as Mac Icelandic.
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if looks_binary(data):
        raise InvalidInputError(f"{name} looks like a binary file, not text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    western = _as_western(data)
    if western is not None:
        return western
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 4 * 2**20]).best()
    if best is None:
        raise InvalidInputError(f"{name}: the text encoding could not be recognized.")
    return data.decode(best.encoding, errors="replace")


# The accented letters commonly written in each Western European language (rare ones left out:
# they are what tells Czech or Hungarian read as Windows-1252 from the real thing).
_ALPHABETS = [
    set("àâæçéèêëîïôœùûüÿ"),  # French
    set("äöüßé"),  # German
    set("áéíóúñüºª"),  # Spanish
    set("áâãàçéêíóôõúºª"),  # Portuguese
    set("àèéìíîòóùºª"),  # Italian
    set("àèéíïòóúüç"),  # Catalan
    set("éëïèöü"),  # Dutch
    set("æøåé"),  # Danish, Norwegian
    set("åäöé"),  # Swedish, Finnish
    set("áðéíóúýþæö"),  # Icelandic
]
_WESTERN_MARKS = set("«»‹›€£¥¢–—‘’‚“”„…•·°§©®™¶†‡‰¿¡×\xa0\xad")


def _as_western(data: bytes) -> str | None:
    """The text as Windows-1252 when it reads as one Western European language, else None.

    Text in another single-byte encoding does not: Polish bytes become symbols (¹ ³), Czech,
    Hungarian or Romanian ones letters no one language uses together (ø with è and š, õ with
    û, þ with â), Cyrillic or Greek ones a text made almost only of accented letters.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are not Windows-1252
        return None
    accented = {ch for ch in set(text) if ord(ch) > 127}
    letters = {ch.lower() for ch in accented if ch.isalpha()}
    if accented - {ch for ch in accented if ch.isalpha()} - _WESTERN_MARKS:
        return None
    if letters and not any(letters <= alphabet for alphabet in _ALPHABETS):
        return None
    sample = text[: 2**20]
    n_accented = sum(1 for ch in sample if ord(ch) > 127 and ch.isalpha())
    n_letters = sum(1 for ch in sample if ch.isalpha())
    return text if n_accented <= 0.3 * max(n_letters, 1) else None


def looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return bool(sample) and control / len(sample) > 0.1


class _TextExtractor(HTMLParser):
    BLOCKS = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
    }
    SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n\s*\n\s*", "\n\n", text).strip()


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise InvalidInputError(
                        f"{path.name} is an encrypted PDF; open it and save "
                        "an unprotected copy to summarize it."
                    )
            except (NotImplementedError, PdfReadError):
                raise InvalidInputError(
                    f"{path.name} is an encrypted PDF that cannot be opened here."
                ) from None
        pages, size = [], 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            size += len(text)
            if size > MAX_TEXT_CHARS:  # stop reading: what is left would be refused anyway
                raise _too_long(path.name, size)
            pages.append(text)
    # pypdf reports its own limits (page tree depth and size, stream lengths) as PyPdfError,
    # and some malformed structures as built-in errors, or as recursion on a deep object tree.
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        zlib.error,
    ) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else _one_line(exc)
        raise InvalidInputError(f"{path.name} is not a readable PDF ({reason}).") from None
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise InvalidInputError(
            f"{path.name} has no text layer (it looks like scanned images); "
            "run it through OCR first."
        )
    return text


def check_docx_archive(path: Path) -> None:
    """Refuse a .docx whose parts would expand past the limits (a zip bomb) before parsing.

    The sizes checked are those the archive declares; Python's zipfile never inflates a member
    past its declared size (it fails the CRC check instead), so they bound what parsing reads.
    """
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    if len(members) > MAX_DOCX_MEMBERS:
        raise InvalidInputError(
            f"{path.name} holds {len(members)} files; a Word document this reader accepts holds "
            f"at most {MAX_DOCX_MEMBERS}."
        )
    total = sum(m.file_size for m in members)
    if total > MAX_DOCX_UNCOMPRESSED:
        raise InvalidInputError(
            f"{path.name} would expand to {total / 2**20:,.0f} MB when unpacked; Word documents up "
            f"to {MAX_DOCX_UNCOMPRESSED // 2**20} MB unpacked can be summarized."
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > DOCX_RATIO_CHECK_BYTES and ratio > MAX_DOCX_RATIO:
            raise InvalidInputError(
                f"{path.name} looks like a zip bomb: its part {m.filename} expands {ratio:,.0f} "
                f"times, to {m.file_size / 2**20:,.0f} MB (at most {MAX_DOCX_RATIO} times is "
                "accepted)."
            )


def _read_docx(path: Path) -> str:
    from docx import Document as DocxDocument
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        check_docx_archive(path)
        doc = DocxDocument(str(path))
        parts = [p.text for p in doc.paragraphs]
        for table in doc.tables:
            for row in table.rows:
                parts.append(" | ".join(cell.text for cell in row.cells))
    # python-docx lets the archive's and the XML parser's errors through: a damaged zip, a
    # missing part, malformed XML inside a part.
    except (
        OpcError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        LxmlError,
        KeyError,
        ValueError,
        NotImplementedError,
        EOFError,
        zlib.error,
    ) as exc:
        raise InvalidInputError(
            f"{path.name} is not a readable Word document ({_one_line(exc)})."
        ) from None
    return "\n\n".join(p for p in parts if p.strip())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "…" if len(text) > 200 else text) or type(exc).__name__
