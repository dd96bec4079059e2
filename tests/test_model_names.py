"""One name for a model everywhere, honest badges and plain-words errors (no model loaded)."""

from __future__ import annotations

import pytest

from assistant.conversation.titles import title_from
from assistant.errors import ModelLoadError
from assistant.library import local
from assistant.library.catalog import display_name
from assistant.library.fit import fit
from assistant.library.gguf_header import read_gguf_info
from assistant.library.memory import GpuMemory, SystemMemory
from assistant.library.naming import clean_model_name

GIB = 1 << 30


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Smollm2 135M 8k Lc100K Mix1 Ep2", "Smollm2 135M"),
        ("Phi 3 Mini 4k Instruct", "Phi 3 Mini 4k Instruct"),
        ("Lighthouse", "Lighthouse"),
        ("", "model-file"),
    ],
)
def test_training_tags_are_cleaned_from_the_gguf_name(raw, clean):
    assert clean_model_name(raw, "/x/model-file.gguf") == clean


def test_the_embedded_model_has_its_catalog_name_everywhere(model_path):
    info = read_gguf_info(model_path)
    assert info.metadata["general.name"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert info.name == "Smollm2 135M", "cleaned, when the catalog does not know the file"
    assert display_name(info) == "SmolLM2 135M Instruct"
    embedded = next(m for m in local.list_models() if m.id == local.EMBEDDED_ID)
    assert embedded.name == "SmolLM2 135M Instruct"


def test_cpu_only_says_why(model_path):
    info = read_gguf_info(model_path)
    no_gpu = SystemMemory(16 * GIB, 8 * GIB, ())
    assert fit(info, 2048, no_gpu).badge == "CPU only (no GPU found)"
    gpu = SystemMemory(16 * GIB, 8 * GIB, (GpuMemory(0, "Card", 8 * GIB, 8 * GIB, "cuda"),))
    built_without = fit(info, 2048, gpu, offload_supported=False).badge
    assert built_without == "CPU only (this llama.cpp build has no GPU support)"
    assert fit(info, 2048, gpu, offload_supported=True).badge == "fits on the GPU"


def test_a_file_that_is_not_gguf_is_named_in_plain_words(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("this is a text file")
    with pytest.raises(ModelLoadError) as info:
        read_gguf_info(text)
    assert "begins with “this”" in str(info.value) and "b'" not in str(info.value)
    binary = tmp_path / "blob.gguf"
    binary.write_bytes(b"\x00\x01\x02\x03rest")
    with pytest.raises(ModelLoadError, match="the bytes 00 01 02 03"):
        read_gguf_info(binary)


@pytest.mark.parametrize(
    "text, title",
    [
        ("# Minutes of the meeting\nAgenda", "Minutes of the meeting"),
        ("**Bold** and `code` [link](http://x)", "Bold and code link"),
        ("```python\nprint(1)\n```", "print(1)"),
        ("- first item\n- second", "first item"),
        ("x" * 70, "x" * 60 + "…"),
    ],
)
def test_chat_titles_are_plain_words(text, title):
    assert title_from(text) == title
