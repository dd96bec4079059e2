"""Documents: reading files into text, and summarizing text of any length.

Public entry points:
- `readers.load_document(path)`, `readers.from_text(text, name)`;
- `summarizer.Summarizer` / `summarizer.summarize(...)`: map-reduce summaries with progress,
  cancel and sources;
- `options`: `SummaryOptions`, `SummaryResult`, `Progress`, `LENGTHS` (plain data, cheap to
  import: no llama.cpp, no numpy);
- `chunking` (paragraphs, sentences, token-exact chunks), `points` (a reply's points, rendered
  and traced to their sources), `language` (the language a script tells);
- `passages.iter_passages(text)`: paragraph-aligned passages for retrieval; `titles.document_title`.
"""
