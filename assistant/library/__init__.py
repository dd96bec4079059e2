"""Model files: what is on disk or on the Hub, and whether it fits this computer.

Public entry points:
- `gguf_header.read_gguf_info(path)`: the one GGUF header reader (a `GGUFInfo`; the runtime's
  `ModelInfo` wraps it); `gguf_parse` walks the header bytes;
- `memory.detect_memory()`: free RAM and VRAM; `fit`: memory estimates, fit verdicts and the
  automatic GPU-layer plan;
- `local`: the local library (embedded, downloaded, imported, converted models);
- `hub`: Hugging Face Hub search, listing and remote headers; `download`: resumable, verified
  downloads; `hub_cache`: the downloaded models; `hub_files`: quantization labels and shards;
- `catalog`: recommended models; `embedded`: the model shipped with the app;
- `sizes.format_bytes` / `format_params`: sizes in words.
Nothing here loads a model: that is `assistant.engine` (`engine.loading` plans and retries).
"""
