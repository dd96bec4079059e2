"""Real GGUF files for tests: foreign architectures, and the model minus its template."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_tiny_gguf(path: Path, arch: str) -> Path:
    """A well-formed GGUF for an architecture llama.cpp may not know."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(4)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def copy_without_chat_template(source: Path, target: Path) -> Path:
    from gguf.scripts.gguf_new_metadata import copy_with_new_metadata

    reader = gguf.GGUFReader(str(source), "r")
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(str(target), arch=arch, endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, {}, [gguf.Keys.Tokenizer.CHAT_TEMPLATE])
    return target


# -- hostile files: llama-shaped headers with chosen values, and edited copies of a real model --
def write_header_gguf(
    path: Path,
    n_layers: int = 1,
    *,
    attention: bool = False,
    tensors: int | None = None,
    values: dict | None = None,
) -> Path:
    """A small llama-shaped GGUF (4-wide embedding, `tensors` blocks with a norm each, and the
    attention projections when `attention`), with `values` (key -> int, str or list) replacing
    or adding header fields. Written with the `gguf` package, as a hostile file would be."""
    writer = gguf.GGUFWriter(str(path), "llama")
    fields = {
        "llama.block_count": n_layers,
        "llama.context_length": 64,
        "llama.embedding_length": 4,
        "llama.attention.head_count": 1,
        **(values or {}),
    }
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        else:
            writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    for i in range(n_layers if tensors is None else tensors):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.zeros((4,), dtype=np.float32))
        if attention:
            writer.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def copy_with_template(source: Path, target: Path, template: str) -> Path:
    """A copy of a model with its chat template replaced, in place: the new template is padded
    with a Jinja comment to the old one's length, so the file's layout does not change (a
    100 MB model is copied in a fraction of a second, no re-encoding)."""
    from assistant.library.gguf_header import read_gguf_info

    old = read_gguf_info(source).chat_template.encode()
    new = template.encode()
    pad = len(old) - len(new) - len(b"{##}")
    assert pad >= 0, "the new template must be shorter than the model's own"
    new += b"{#" + b" " * pad + b"#}"
    data = bytearray(source.read_bytes())
    at = data.find(old, 0, 8 << 20)
    assert at > 0 and data.find(old, at + 1, 8 << 20) < 0
    data[at : at + len(old)] = new
    target.write_bytes(data)
    return target


def copy_with_duplicate_token(source: Path, target: Path) -> tuple[Path, int, int]:
    """A copy of a model whose token list names one token twice (the later entry overwritten
    with an earlier token of the same length); returns (path, first index, repeated index)."""
    import struct

    from assistant.library.gguf_parse import parse_header

    data = bytearray(source.read_bytes())
    tokens = parse_header(data).fields[gguf.Keys.Tokenizer.LIST]
    pos, by_length = tokens.offset, {}
    for i in range(tokens.length):
        (n,) = struct.unpack_from("<Q", data, pos)
        if n >= 3 and n in by_length:
            first, first_pos = by_length[n]
            data[pos + 8 : pos + 8 + n] = data[first_pos + 8 : first_pos + 8 + n]
            target.write_bytes(data)
            return target, first, i
        by_length.setdefault(n, (i, pos))
        pos += 8 + n
    raise AssertionError("no two tokens of the same length")
