"""Reading documents to summarize: text, Markdown, HTML, PDF (text layer) and Word files."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from assistant.errors import InvalidInputError

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 32 * 1024 * 1024  # well above the 10 MB of text the app promises to take
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".log", ".csv", ".json", ".text", ""}
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
        raise InvalidInputError(
            f"{name} holds {len(text) / 2**20:.1f} million characters; the limit is "
            f"{MAX_TEXT_CHARS // 2**20} million."
        )


def decode_bytes(data: bytes, name: str) -> str:
    """Decode text of unknown encoding; refuse binary data."""
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
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 4 * 2**20]).best()
    if best is None:
        raise InvalidInputError(f"{name}: the text encoding could not be recognized.")
    return data.decode(best.encoding, errors="replace")


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
    from pypdf.errors import PdfReadError

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
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path.name} is not a readable PDF ({exc}).") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise InvalidInputError(
            f"{path.name} has no text layer (it looks like scanned images); "
            "run it through OCR first."
        )
    return text


def _read_docx(path: Path) -> str:
    import zipfile

    from docx import Document as DocxDocument
    from docx.opc.exceptions import OpcError

    try:
        doc = DocxDocument(str(path))
    except (OpcError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInputError(f"{path.name} is not a readable Word document ({exc}).") from None
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n\n".join(p for p in parts if p.strip())
