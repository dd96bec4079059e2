"""Reading documents: formats, encodings and every kind of bad input."""

from __future__ import annotations

import pytest

from assistant.documents.readers import from_text, html_to_text, load_document
from assistant.errors import InvalidInputError


def test_plain_text_and_markdown(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Title\r\n\r\nBody text.\r\n", encoding="utf-8")
    doc = load_document(path)
    assert doc.name == "notes.md" and doc.text == "# Title\n\nBody text.\n"


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("cp1252", "Café crème brûlée à la française, naïve façade."),
        ("utf-16", "Ünïcödé with a byte order mark"),
        ("gb18030", "长城是中国古代的军事防御工程，修建历史可上溯到西周时期。" * 4),
    ],
)
def test_encodings_are_detected(tmp_path, encoding, text):
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode(encoding))
    assert load_document(path).text == text


def test_html_keeps_text_and_drops_scripts(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Heading</h1><p>First &amp; para.</p><script>alert(1)</script>"
        "<ul><li>item</li></ul></body></html>",
        encoding="utf-8",
    )
    text = load_document(path).text
    assert text == "Heading\n\nFirst & para.\n\nitem"
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"


def test_docx(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph("First paragraph of the report.")
    document.add_paragraph("Second paragraph.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "cell A", "cell B"
    path = tmp_path / "report.docx"
    document.save(path)
    text = load_document(path).text
    assert (
        "First paragraph of the report.\n\nSecond paragraph." in text and "cell A | cell B" in text
    )


def _pdf_with_text(path, text: str) -> None:
    """A minimal one-page PDF with a text layer (hand-written objects, correct xref)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
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
    path.write_bytes(bytes(out))


def test_pdf_text_layer(tmp_path):
    path = tmp_path / "paper.pdf"
    _pdf_with_text(path, "Results show a clear improvement.")
    assert load_document(path).text == "Results show a clear improvement."


def test_encrypted_pdf_is_refused_clearly(tmp_path):
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    _pdf_with_text(plain, "Secret text.")
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="pw", owner_password="owner")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(InvalidInputError, match="locked.pdf is an encrypted PDF"):
        load_document(path)


def test_image_only_pdf_says_it_has_no_text_layer(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "scan.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(InvalidInputError, match="scan.pdf has no text layer.*OCR"):
        load_document(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", b"", "empty.txt has no text to summarize"),
        ("blank.txt", b" \n\t\n  ", "blank.txt has no text to summarize"),
        ("program.txt", bytes(range(256)) * 20, "program.txt looks like a binary file"),
        ("image.png", b"\x89PNG\r\n\x1a\n", "image.png: unsupported file type '.png'; supported:"),
        ("broken.pdf", b"%PDF-1.4 garbage", "broken.pdf is not a readable PDF"),
        ("broken.docx", b"not a zip", "broken.docx is not a readable Word document"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_document(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="Cannot read .*nope.txt"):
        load_document(tmp_path / "nope.txt")
    with pytest.raises(InvalidInputError, match="is a folder"):
        load_document(tmp_path)


def test_pasted_text():
    assert from_text("a\r\nb").text == "a\nb"
    with pytest.raises(InvalidInputError, match="pasted text has no text"):
        from_text("   ")


def test_ten_megabytes_of_text_are_accepted(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"All work and no play makes Jack a dull boy.\n\n" * 240_000)  # 10.8 MB
    assert len(load_document(path).text) > 10_000_000
