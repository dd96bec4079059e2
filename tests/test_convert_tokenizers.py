"""The GGUF's tokenizer (llama.cpp) against the source tokenizer, and the tokenizer metadata."""

from __future__ import annotations

import pickle

import gguf
import pytest

from assistant.errors import ConversionError
from tests.convert_models import CHATML_TEMPLATE, SIMPLE_TEMPLATE, zoo_for
from tools.convert.verify import TOKENIZER_TEXTS, check_tokenization
from tools.convert.vocab.chars import END_TOKEN, load_meta_pkl
from tools.convert.vocab.pretokenizers import pre_tokenizer_name

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
EXTRA_TEXTS = (
    "the café by the harbour served coffee, tea and soup",  # a multi-byte char in the char vocab
    "Numbers: 12 ships in May, 31 ships in June.",
    "    return total\n",
)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


def _metadata(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}


@pytest.mark.parametrize(
    "name", ["llama-untied", "qwen2", "gpt2", "nanogpt", "nanogpt-nobias", "nanogpt-chars"]
)
def test_same_ids_as_source_tokenizer(zoo, name):
    model = zoo.get(name)
    path = zoo.convert(name, "f16").path
    check = check_tokenization(path, model.encode, (*TOKENIZER_TEXTS, *EXTRA_TEXTS))
    assert check.passed, check.mismatches[:2]
    if name == "nanogpt-chars":  # most test strings have characters outside its alphabet
        assert check.checked >= len(EXTRA_TEXTS)
    else:
        assert check.checked == len(TOKENIZER_TEXTS) + len(EXTRA_TEXTS)


def test_sentencepiece_metadata(zoo):
    zoo.get("llama-untied")
    md = _metadata(zoo.convert("llama-untied", "f16").path)
    assert md["tokenizer.ggml.model"] == "llama"
    assert (md["tokenizer.ggml.bos_token_id"], md["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert md["tokenizer.ggml.add_bos_token"] is True
    assert md["tokenizer.ggml.add_space_prefix"] is True
    assert md["tokenizer.chat_template"] == SIMPLE_TEMPLATE
    types = md["tokenizer.ggml.token_type"]
    assert types[0] == gguf.TokenType.UNKNOWN and types[1] == gguf.TokenType.CONTROL
    assert gguf.TokenType.BYTE in types  # byte fallback pieces <0x00>…<0xFF>
    assert md["general.name"] == "llama-untied"


def test_bpe_metadata_with_added_tokens_and_padding(zoo):
    model = zoo.get("qwen2")
    md = _metadata(zoo.convert("qwen2", "f16").path)
    tokens = md["tokenizer.ggml.tokens"]
    assert md["tokenizer.ggml.model"] == "gpt2" and md["tokenizer.ggml.pre"] == "qwen2"
    assert len(tokens) == model.model.config.vocab_size  # padded past the tokenizer
    assert tokens[-1].startswith("[PAD") and md["tokenizer.ggml.merges"]
    im_end = tokens.index("<|im_end|>")
    assert md["tokenizer.ggml.eos_token_id"] == im_end
    assert md["tokenizer.ggml.token_type"][im_end] == gguf.TokenType.CONTROL
    assert md["tokenizer.ggml.add_bos_token"] is False
    assert md["tokenizer.chat_template"] == CHATML_TEMPLATE
    assert _metadata(zoo.convert("gpt2", "f16").path)["tokenizer.ggml.pre"] == "gpt-2"


def test_char_vocab_has_an_end_token_outside_the_alphabet(zoo):
    md = _metadata(zoo.convert("nanogpt-chars", "f16").path)
    tokens = md["tokenizer.ggml.tokens"]
    assert tokens[-1] == END_TOKEN and md["tokenizer.ggml.eos_token_id"] == len(tokens) - 1
    assert md["tokenizer.ggml.add_bos_token"] is False


def test_char_vocab_merges_join_multibyte_characters(tmp_path):
    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps({"stoi": {"a": 0, "é": 1, "日": 2}, "itos": {}}))
    vocab = load_meta_pkl(path)
    assert vocab.tokens[:3] == ["a", "Ã©", "æĹ¥"]
    assert vocab.merges == ["Ã ©", "æ Ĺ", "æĹ ¥"]
    assert vocab.encoder("aé日") == [0, 1, 2]


def test_meta_pkl_must_be_a_character_table(tmp_path):
    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps({"stoi": {"ab": 0}}))
    with pytest.raises(ConversionError, match="one-to-one character table"):
        load_meta_pkl(path)


@pytest.mark.parametrize(
    ("pre", "name"),
    [
        ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": True},
                    {"type": "ByteLevel", "use_regex": True},
                ],
            },
            "smollm",
        ),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {
                        "type": "Split",
                        "pattern": {"Regex": LLAMA3_SPLIT},
                    },
                    {"type": "ByteLevel", "use_regex": False},
                ],
            },
            "llama-bpe",
        ),
        ({"type": "Whitespace"}, None),
        ({"type": "Metaspace", "replacement": "▁"}, None),
    ],
)
def test_pre_tokenizer_names(pre, name):
    assert pre_tokenizer_name(pre) == name
