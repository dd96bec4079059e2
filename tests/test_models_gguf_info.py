"""GGUF header metadata without loading weights: real files, hand-computed sizes, broken files."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from assistant.errors import ModelLoadError
from assistant.library.gguf_header import read_gguf_info, shard_paths
from assistant.library.gguf_parse import parse_header
from tests.hub_server import Shape, write_model_gguf

# Per block of Shape(): norms 2 x 64 x 4 B, q and o 64 x 64 x 2 B, k and v 64 x 32 x 2 B,
# gate, up and down 64 x 128 x 2 B.
LAYER_BYTES = 2 * 256 + 2 * 8192 + 2 * 4096 + 3 * 16384  # 74240
EMBD_BYTES = 256 * 64 * 2  # 32768


def test_embedded_model_matches_gguf_reader(model_path):
    info = read_gguf_info(model_path)
    reader = gguf.GGUFReader(str(model_path), "r")
    assert info.n_params == sum(int(t.n_elements) for t in reader.tensors) == 134_515_008
    assert info.weights_bytes == sum(int(t.n_bytes) for t in reader.tensors)
    assert (info.architecture, info.quantization) == ("llama", "Q4_1")
    assert (info.n_layers, info.n_embd, info.n_head, info.n_ff) == (30, 576, 9, 1536)
    assert info.n_head_kv == (3,) * 30 and info.head_dim_k == info.head_dim_v == 64
    assert (info.n_ctx_train, info.n_vocab) == (8192, 49152)
    assert info.has_chat_template and info.tied_output
    assert info.file_size == model_path.stat().st_size
    assert info.layer_bytes == (2_216_448,) * 30
    assert info.embedding_bytes == info.input_bytes == 30_081_024  # Q8_0 576 x 49152
    assert info.output_bytes == 576 * 4  # output_norm only: the head is tied to token_embd


def test_written_model_hand_computed(tmp_path):
    path = write_model_gguf(tmp_path / "tiny.gguf")
    info = read_gguf_info(path)
    assert info.name == "Tiny Test Model"
    assert info.quantization == "F16"
    assert info.layer_bytes == (LAYER_BYTES, LAYER_BYTES)
    assert info.input_bytes == info.embedding_bytes == EMBD_BYTES
    assert info.output_bytes == EMBD_BYTES + 256 and not info.tied_output
    assert (info.n_head_kv, info.head_dim_k, info.n_vocab) == ((2, 2), 16, 256)
    assert info.n_params == 2 * 256 * 64 + 64 + 2 * (2 * 64 + 2 * 4096 + 2 * 2048 + 3 * 8192)
    assert info.has_chat_template


def test_no_chat_template_and_tied(tmp_path):
    info = read_gguf_info(write_model_gguf(tmp_path / "t.gguf", tied=True, chat_template=False))
    assert info.tied_output and not info.has_chat_template
    assert info.output_bytes == 256


def test_split_model_is_one_model(tmp_path):
    first = write_model_gguf(tmp_path / "split.gguf", Shape(n_layers=3), split_max_tensors=10)
    files = shard_paths(first)
    assert [f.name for f in files] == [f"split-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    info = read_gguf_info(files[1])  # any shard names the whole model
    assert info.path == str(first) and len(info.shards) == 3
    assert info.layer_bytes == (LAYER_BYTES,) * 3
    assert info.file_size == sum(f.stat().st_size for f in files)
    files[2].unlink()
    with pytest.raises(ModelLoadError, match="split-00003-of-00003.gguf is missing"):
        read_gguf_info(first)


def test_truncated_file_is_named(tmp_path):
    path = write_model_gguf(tmp_path / "cut.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match=r"cut.gguf is truncated: its header promises"):
        read_gguf_info(path)
    path.write_bytes(data[:100])
    with pytest.raises(ModelLoadError, match=r"cut.gguf is truncated: it ends inside"):
        read_gguf_info(path)


def test_not_gguf(tmp_path):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="safetensors is not a GGUF model file.*convert"):
        read_gguf_info(bad)
    with pytest.raises(ModelLoadError, match="not found"):
        read_gguf_info(tmp_path / "missing.gguf")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        read_gguf_info(tmp_path / "empty.gguf")


def test_parse_header_of_a_prefix(model_path):
    """The header is all the parser needs: a fit estimate can read it before downloading."""
    with model_path.open("rb") as handle:
        head = handle.read(4 << 20)
    header = parse_header(head)
    assert len(header.tensors) == 272 and header.data_end == model_path.stat().st_size


# -- hostile headers: one clear ModelLoadError naming the file and the field, never a traceback ---
def write_gguf_with(path, edit, n_layers: int = 1):
    """A small llama-shaped GGUF; `edit(writer)` adds or replaces metadata before it is written."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(n_layers)
    writer.add_context_length(64)
    writer.add_embedding_length(4)
    writer.add_head_count(1)
    edit(writer)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.zeros((4,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _replace(key, add):
    def edit(writer):
        writer.kv_data[0].pop(key, None)
        add(writer)

    return edit


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = {  # case: (edit, layers, the reason the error must give)
    "file_type_array": (
        lambda w: w.add_array("general.file_type", [1, 2]),
        1,
        "general.file_type is an array of 2 values, not a whole number",
    ),
    "alignment_zero": (
        lambda w: w.add_uint32("general.alignment", 0),
        1,
        "general.alignment is 0; it must be a power of two",
    ),
    "block_count_text": (
        _replace("llama.block_count", lambda w: w.add_string("llama.block_count", "thirty")),
        1,
        "llama.block_count is 'thirty', not a whole number",
    ),
    "block_count_absurd": (
        _replace("llama.block_count", lambda w: w.add_uint32("llama.block_count", 50_000_000)),
        1,
        "llama.block_count is 50000000, but the model has only 2 tensors",
    ),
    "head_count_float": (
        _replace(
            "llama.attention.head_count",
            lambda w: w.add_float32("llama.attention.head_count", 1.5),
        ),
        1,
        "llama.attention.head_count is 1.5, not a whole number",
    ),
    "kv_heads_per_layer_too_short": (
        lambda w: w.add_array("llama.attention.head_count_kv", [1]),
        2,
        "head_count_kv is an array of 1 values; it needs a whole number for each of 2 layers",
    ),
    "nested_arrays": (
        lambda w: w.add_array("test.nested", _nested(12)),
        1,
        "arrays nested more than 8 deep",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_values_are_one_named_error(tmp_path, case):
    edit, layers, reason = HOSTILE[case]
    path = write_gguf_with(tmp_path / f"{case}.gguf", edit, n_layers=layers)
    with pytest.raises(ModelLoadError) as error:
        read_gguf_info(path)
    assert f"{case}.gguf is not a usable GGUF model file" in str(error.value)
    assert reason in str(error.value)


def test_odd_tensor_names_are_not_errors(tmp_path):
    """A tensor named like a block but without a number is counted with the inputs."""

    def edit(writer):
        writer.add_tensor("blk.x.weight", np.zeros((4,), dtype=np.float32))

    info = read_gguf_info(write_gguf_with(tmp_path / "odd.gguf", edit))
    assert info.n_layers == 1 and info.layer_bytes == (16,)
    assert info.input_bytes == 8 * 4 * 4 + 16
