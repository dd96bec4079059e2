"""The model runtime on the real embedded model (llama.cpp through llama-cpp-python)."""

from __future__ import annotations

import threading

import pytest

from assistant.engine.chat_format import FALLBACK_NAME, JinjaChatFormat, PlainChatFormat
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ContextOverflowError, ModelLoadError
from assistant.types import ASSISTANT, SYSTEM, USER, LoadOptions, Message, SamplingOptions

from .gguf_files import copy_without_chat_template, write_tiny_gguf

GREEDY = SamplingOptions(temperature=0, max_tokens=40, seed=1)
QUESTION = [Message(SYSTEM, "You are concise."), Message(USER, "Name three colors.")]


def test_metadata(runtime):
    info = runtime.info
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.n_ctx_train == 8192 and info.n_layers == 30
    assert 130e6 < info.n_params < 140e6
    assert "<|im_start|>" in info.chat_template and "tokenizer.chat_template" in info.template_name
    assert info.runs_on == "CPU"


def test_prompt_uses_the_models_own_chat_template(runtime):
    text = runtime.render(QUESTION)
    assert text == (
        "<|im_start|>system\nYou are concise.<|im_end|>\n"
        "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n"
    )
    tokens = runtime.prompt_tokens(QUESTION)
    assert tokens[0] == runtime.tokenize("<|im_start|>", special=True)[0], "special tokens parsed"
    assert runtime.count_prompt(QUESTION) == len(tokens)


def test_streams_pieces_with_statistics(runtime):
    stream = runtime.stream(QUESTION, GREEDY)
    pieces = list(stream)
    assert len(pieces) > 3 and "".join(pieces) == stream.text
    s = stream.stats
    assert s.prompt_tokens == runtime.count_prompt(QUESTION)
    assert s.finish_reason in {"stop", "length"} and 0 < s.completion_tokens <= 40
    assert s.ttft_s > 0 and s.tokens_per_s > 0
    assert "<|im_end|>" not in stream.text


def test_follow_up_reuses_the_kv_cache_prefix(runtime):
    first = runtime.stream(QUESTION, GREEDY)
    first.join()
    follow = QUESTION + [Message(ASSISTANT, first.text), Message(USER, "And three more?")]
    second = runtime.stream(follow, GREEDY)
    second.join()
    assert second.stats.cached_tokens >= first.stats.prompt_tokens, "the whole first turn is reused"
    assert second.stats.cached_tokens < second.stats.prompt_tokens


def test_max_tokens_gives_length(runtime):
    stream = runtime.stream(QUESTION, SamplingOptions(temperature=0, max_tokens=5))
    stream.join()
    assert stream.stats.finish_reason == "length" and stream.stats.completion_tokens == 5
    assert not stream.context_full


def test_end_of_window_gives_length_and_context_full(runtime_factory):
    rt = runtime_factory(256)
    prompt = [Message(USER, "Write a very long story about a dragon. " * 10)]
    stream = rt.stream(
        prompt, SamplingOptions(temperature=0, max_tokens=10_000, repeat_penalty=1.3)
    )
    stream.join()
    if stream.stats.finish_reason == "length":
        assert stream.context_full
        assert stream.stats.prompt_tokens + stream.stats.completion_tokens == 256
    with pytest.raises(ContextOverflowError):
        rt.stream([Message(USER, "word " * 400)], GREEDY).join()


def test_stop_strings_end_the_reply_without_emitting_them(runtime):
    full = runtime.stream(QUESTION, GREEDY)
    full.join()
    word = full.text.split()[2]
    cut = runtime.stream(QUESTION, SamplingOptions(temperature=0, max_tokens=40, stop=(word,)))
    cut.join()
    assert cut.stats.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(word)]


def test_cancel_between_tokens_keeps_what_was_generated(runtime):
    cancel = threading.Event()
    stream = runtime.stream(QUESTION, SamplingOptions(temperature=0, max_tokens=200), cancel)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3, "no token after the flag is set"
    assert stream.stats.finish_reason == "cancelled" and stream.text == "".join(pieces)


def test_cancel_while_a_long_prompt_is_read_stops_between_batches(runtime):
    words = "harbor museum lighthouse amphora council winter tourists quay".split()
    text = " ".join(words[i * 7 % 8] + f" {i}," for i in range(280))
    prompt = runtime.prompt_tokens([Message(USER, f"Summarize: {text}")])
    assert len(prompt) > 3 * runtime._llm.n_batch // 2 and len(prompt) < 2000
    runtime.stream([Message(USER, "unrelated")], GREEDY).join()  # nothing of it cached
    cancel, batches = threading.Event(), []
    real_eval = runtime._llm.eval

    def eval_then_stop(tokens):  # the user presses Stop while the first batch is read
        batches.append(len(tokens))
        real_eval(tokens)
        cancel.set()

    runtime._llm.eval = eval_then_stop
    try:
        stream = runtime.stream(prompt, SamplingOptions(temperature=0, max_tokens=8), cancel)
        assert list(stream) == []
    finally:
        del runtime._llm.eval
    n_batch = runtime._llm.n_batch
    assert stream.stats.finish_reason == "cancelled" and stream.text == ""
    assert stream.stats.completion_tokens == 0 and batches[-1] <= n_batch
    cached = runtime.reusable_prefix(prompt)
    assert 0 < cached < len(prompt) - n_batch, "stopped after a batch, not at the end"
    again = runtime.stream(prompt, SamplingOptions(temperature=0, max_tokens=8))
    assert again.join() and again.stats.cached_tokens == cached, "what was read is reused"
    assert again.stats.finish_reason in {"stop", "length"}


def test_same_seed_same_reply(runtime):
    # Same cache state before each run: llama.cpp's logits depend slightly on how the prompt was
    # split between cache and new batch, which can flip a sampled token at high temperature.
    sampling = SamplingOptions(temperature=0.9, max_tokens=30, seed=42)
    replies = []
    for _ in range(2):
        runtime.stream([Message(USER, "unrelated")], GREEDY).join()
        replies.append(runtime.stream(QUESTION, sampling).join())
    assert replies[0] == replies[1]
    runtime.stream([Message(USER, "unrelated")], GREEDY).join()
    other = runtime.stream(QUESTION, SamplingOptions(temperature=0.9, max_tokens=30, seed=7)).join()
    assert other != replies[0], "a different seed samples differently"


def test_model_without_template_uses_the_named_fallback(model_path, tmp_path):
    path = copy_without_chat_template(model_path, tmp_path / "no-template.gguf")
    rt = ModelRuntime(path, LoadOptions(n_ctx=512, n_threads=2))
    try:
        assert rt.info.chat_template is None and rt.info.template_name == FALLBACK_NAME
        assert rt.render(QUESTION).endswith("User: Name three colors.\n\nAssistant:")
        stream = rt.stream(QUESTION, GREEDY)
        stream.join()
        assert "\nUser:" not in stream.text
    finally:
        rt.close()


def test_template_refusing_system_role_gets_it_folded_into_the_first_user_message():
    template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    )
    fmt = JinjaChatFormat(template, bos_token="<s>", eos_token="</s>")
    assert fmt.render(QUESTION) == "[user] You are concise.\n\nName three colors.\n[assistant]"
    assert fmt.stop_strings == ("</s>",)


def test_continuation_appends_the_partial_reply():
    text = PlainChatFormat().render([Message(USER, "hi"), Message(ASSISTANT, "Hel")])
    assert text.endswith("User: hi\n\nAssistant:Hel")


# -- load failures: the message names the file and llama.cpp's actual reason ---------------------
def _load_error(path) -> str:
    with pytest.raises(ModelLoadError) as info:
        ModelRuntime(path, LoadOptions(n_ctx=256))
    return str(info.value)


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "nope.gguf")
    assert "not found" in message and "nope.gguf" in message


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 pytorch zip")
    message = _load_error(path)
    assert "model.bin is not a GGUF model file" in message and "assistant convert" in message


def test_empty_file_and_folder(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a GGUF model file" in _load_error(empty)
    assert "is a folder" in _load_error(tmp_path)


def test_truncated_gguf(model_path, tmp_path):
    path = tmp_path / "truncated.gguf"
    with open(model_path, "rb") as src:
        path.write_bytes(src.read(5_000_000))
    message = _load_error(path)
    assert "truncated.gguf" in message
    assert "not within the file bounds" in message or "corrupted or incomplete" in message


def test_corrupt_gguf_header(model_path, tmp_path):
    path = tmp_path / "corrupt.gguf"
    with open(model_path, "rb") as src:
        data = bytearray(src.read(2_000_000))
    data[8:16] = b"\xff" * 8  # absurd tensor count
    path.write_bytes(bytes(data))
    message = _load_error(path)
    assert "corrupt.gguf" in message and message != f"Could not load the model {path}: ."
    assert "failed to load model" not in message.lower() or ";" in message


def test_unsupported_architecture(tmp_path):
    path = write_tiny_gguf(tmp_path / "alien.gguf", "alienformer")
    message = _load_error(path)
    assert "alien.gguf" in message and "unknown model architecture: 'alienformer'" in message
