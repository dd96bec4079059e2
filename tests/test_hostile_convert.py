"""Hostile converter inputs: refused up front with a ConversionError naming the file and field,
before anything allocates by what the file claims, and leaving no output file."""

from __future__ import annotations

import json
import pickle
import time
import tracemalloc
from pathlib import Path

import pytest

from assistant.errors import ConversionError
from tests.convert_models import write_random_llama
from tests.test_convert_errors import copy_model
from tools.convert import ConvertOptions, convert

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on this


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return write_random_llama(tmp_path_factory.mktemp("random_llama"))


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def refused(source: Path, out_dir: Path, match: str, **options) -> ConversionError:
    """Refused with `match`, quickly, in little memory, and nothing written."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConversionError, match=match) as info:
            convert(ConvertOptions(source, out_dir / "model.gguf", **options))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB allocated before refusing"
    assert list(out_dir.iterdir()) == [], "no output (and no temporary file) is left"
    assert "\n" not in str(info.value)
    return info.value


# -- config.json -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_hidden_layers": 10**6}, r"config\.json: num_hidden_layers is 1000000; .* to 512"),
        ({"num_hidden_layers": 10**30}, r"config\.json: num_hidden_layers is a 100-bit number"),
        ({"num_hidden_layers": -2}, r"num_hidden_layers is -2; it must be from 1"),
        ({"num_attention_heads": 0}, r"config\.json: num_attention_heads is 0; it must be from 1"),
        ({"num_attention_heads": "4"}, r"num_attention_heads is '4'; it must be a whole number"),
        ({"num_attention_heads": 4.5}, r"num_attention_heads is 4\.5; it must be a whole number"),
        ({"num_attention_heads": True}, r"num_attention_heads is True; it must be a whole"),
        ({"num_attention_heads": 5}, r"hidden_size 64 is not a multiple of num_attention_heads 5"),
        ({"num_key_value_heads": 3}, r"num_key_value_heads 3 does not divide num_attention_h"),
        ({"vocab_size": 10**12}, r"config\.json: vocab_size is 1000000000000; it must be from"),
        ({"hidden_size": 2**40}, r"config\.json: hidden_size is 1099511627776"),
        ({"max_position_embeddings": 0}, r"max_position_embeddings is 0"),
        ({"rms_norm_eps": "tiny"}, r"config\.json: rms_norm_eps is 'tiny'; it must be a number"),
        ({"rope_theta": -1.0}, r"rope_theta is -1\.0; it must be a positive number"),
        ({"rope_scaling": [2, 3]}, r"config\.json: rope_scaling is \[2, 3\]; it must be an obj"),
        ({"rope_scaling": {"rope_type": "linear"}}, r"rope scaling 'linear' needs factor"),
        ({"rope_scaling": {"type": "linear", "factor": "x"}}, r"rope_scaling\.factor is 'x'"),
    ],
)
def test_implausible_config_values(llama_dir, tmp_path, out_dir, change, match):
    src = copy_model(llama_dir, tmp_path / "bad", config=change)
    refused(src, out_dir, match)


def test_deeply_nested_config(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "nested")
    (src / "config.json").write_text('{"a": ' + DEEP + "}")
    refused(src, out_dir, r"config\.json is not valid JSON \(nested too deeply\)")


def test_deeply_nested_tokenizer_config(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "nested")
    (src / "tokenizer_config.json").write_text(DEEP)
    refused(src, out_dir, r"tokenizer_config\.json is not valid JSON \(nested too deeply\)")


def test_deeply_nested_safetensors_header(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "nested", skip=("model.safetensors",))
    header = DEEP.encode()
    (src / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    refused(src, out_dir, r"model\.safetensors has a corrupt safetensors header")


# -- meta.pkl ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stoi, match",
    [
        ({"a": 0, "b": 10**12}, r"meta\.pkl: 'stoi' gives 'b' the id 1000000000000; the ids"),
        ({"a": 0, "b": 2**200}, r"meta\.pkl: 'stoi' gives 'b' the id a 201-bit number"),
        ({"a": 0, "b": -1}, r"meta\.pkl: 'stoi' gives 'b' the id -1; the ids of its 2"),
        ({"a": 0, "b": "1"}, r"meta\.pkl: 'stoi' gives 'b' the id '1'"),
        ({"a": 0, "b": 1.0}, r"meta\.pkl: 'stoi' gives 'b' the id 1\.0"),
        ({}, r"meta\.pkl has no 'stoi' character table"),
    ],
)
def test_meta_pkl_ids(llama_dir, tmp_path, out_dir, stoi, match):
    meta = tmp_path / "meta.pkl"
    meta.write_bytes(pickle.dumps({"stoi": stoi, "itos": {}}))
    refused(llama_dir, out_dir, match, tokenizer=meta)


# -- tokenizer.json ----------------------------------------------------------------------------
def _tokenizer_json(path: Path, vocab, added=(), merges=()) -> Path:
    path.write_text(
        json.dumps(
            {
                "model": {"type": "BPE", "vocab": vocab, "merges": list(merges)},
                "pre_tokenizer": {"type": "ByteLevel", "use_regex": True},
                "added_tokens": list(added),
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "vocab, added, match",
    [
        ({"a": 0, "b": 10**12}, [], r"tokenizer\.json: the id of token 'b' is 1000000000000"),
        ({"a": 0, "b": -5}, [], r"tokenizer\.json: the id of token 'b' is -5; ids run from 0"),
        ({"a": 0, "b": "1"}, [], r"the id of token 'b' is '1'; ids are whole numbers"),
        ({"a": 0, "b": 1.5}, [], r"the id of token 'b' is 1\.5; ids are whole numbers"),
        (
            {"a": 0},
            [{"id": 2**64, "content": "<|x|>"}],
            r"the id of added token '<\|x\|>' is a 65-bit number",
        ),
        ({"a": 0}, [{"id": None, "content": "<|x|>"}], r"added token '<\|x\|>' is None"),
        ({"a": 0}, [{"id": 1, "content": 7}], r"added token 1 has no text"),
        ({"a": 0}, ["<|x|>"], r"added_tokens is not a list of tokens"),
        ([1, 2], [], r"the vocabulary is not a token → id mapping"),
        ({}, [], r"tokenizer\.json holds no tokens"),
    ],
)
def test_tokenizer_json_ids(llama_dir, tmp_path, out_dir, vocab, added, match):
    tokenizer = _tokenizer_json(tmp_path / "tokenizer.json", vocab, added)
    refused(llama_dir, out_dir, match, tokenizer=tokenizer)


def test_tokenizer_json_of_the_wrong_shape(llama_dir, tmp_path, out_dir):
    path = tmp_path / "tokenizer.json"
    path.write_text("[1, 2, 3]")
    refused(llama_dir, out_dir, r"tokenizer\.json does not hold a JSON object", tokenizer=path)
    path.write_text(json.dumps({"model": "BPE"}))
    refused(llama_dir, out_dir, r"tokenizer\.json: model is not an object", tokenizer=path)
    _tokenizer_json(path, {"a": 0, "b": 1}, merges=[["a"], 3])
    refused(llama_dir, out_dir, r"the merge \['a'\] is not a pair of tokens", tokenizer=path)
    path.write_text(DEEP)
    refused(llama_dir, out_dir, r"is not valid JSON \(nested too deeply\)", tokenizer=path)


def test_vocab_json_ids(llama_dir, tmp_path, out_dir):
    folder = tmp_path / "gpt2_tok"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps({"a": 0, "b": 10**15}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    refused(llama_dir, out_dir, r"vocab\.json: the id of token 'b' is", tokenizer=folder)


def test_cli_prints_one_line(llama_dir, tmp_path, capsys):
    from assistant.cli import main

    src = copy_model(llama_dir, tmp_path / "bad", config={"num_hidden_layers": 10**6})
    out = tmp_path / "model.gguf"
    assert main(["convert", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "num_hidden_layers is 1000000" in err
    assert not out.exists()
