"""Offline chat assistant core. No Qt here; `ui/` and `tools/` are its clients.

Packages, each depending only on those below it:
- `cli`: the `assistant` command, one module per command group (the only importer of ui/tools);
- `conversation`, `documents`: chat sessions, window fitting, the SQLite store; document
  readers and the summarizer;
- `engine`: the one llama.cpp owner (runtime, streaming, chat format, loading);
- `library`: model files (GGUF header, fit estimates, local library, Hub, catalog);
- plain modules `types`, `errors`, `paths`, `settings`, imported by everyone.
"""

__version__ = "0.1.0"
