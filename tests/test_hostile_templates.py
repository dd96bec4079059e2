"""Chat templates from a GGUF are code we run: bounded in time, steps, depth and size; every
failure is one line naming the model (ModelLoadError at load, ChatFormatError at render); the
plain transcript only when the user chooses it; a failed render changes no conversation."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistant.engine.chat_format import CHOSEN_PLAIN_NAME, JinjaChatFormat
from assistant.errors import ChatFormatError, ModelLoadError
from assistant.types import ASSISTANT, SYSTEM, USER, LoadOptions, Message, SamplingOptions
from tests.gguf_files import copy_with_template

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A template that works until a message says "boom" (passes the load-time probe).
BOOM = (
    "{% for m in messages %}{% if 'boom' in m.content %}"
    "{{ raise_exception('boom is not allowed') }}{% endif %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
)
NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HOSTILE = {  # case: (template, what the error says)
    "range_1e9": ("{% for i in range(10**9) %}x{% endfor %}", "range() is given 1,000,000,000"),
    "nested_loops": (NESTED_LOOPS, "loop steps and calls (a runaway loop?)"),
    "string_repeat_1e10": ("{{ 'x' * 10**10 }}", "a repetition would be 10,000,000,000"),
    "recursive_macro": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "nests calls more than 64 deep",
    ),
    "macro_fork_bomb": (
        "{% macro f(n) %}{% if n < 40 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}"
        "{{ f(0) }}",
        "it was stopped: it runs",  # longer than 2 s or more steps, whichever comes first
    ),
    "syntax_error": ("{% for m in messages %}{{ m.content }", "syntax error on line 1"),
    "empty_result": ("{% for m in messages %}{% endfor %}", "produced an empty prompt"),
    "doubling_in_a_loop": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "a ~ concatenation would be",
    ),
    "wide_filter": ("{{ 'x'|center(10**10) }}", "the center filter is given"),
    "buffered_output": (
        "{% set x %}{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}{% endset %}{{ x }}",
        "its output is larger than",
    ),
    "refuses": ("{{ raise_exception('no thanks') }}", "it refuses the conversation: no thanks"),
    "leaves_messages_out": ("Hello there", "leaves the messages out of the prompt"),
}


def _conversation(n: int, system: bool = True) -> list[Message]:
    msgs = [Message(SYSTEM, "You are helpful.")] if system else []
    roles = (USER, ASSISTANT)
    return msgs + [Message(roles[i % 2], f"message {i} " + "words " * 40) for i in range(n)]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_templates_are_one_line_errors_within_seconds(case):
    template, reason = HOSTILE[case]
    start = time.perf_counter()
    with pytest.raises(ChatFormatError) as error:
        JinjaChatFormat(template, bos_token="", eos_token="", model="hostile.gguf").probe()
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert message.startswith("The chat template of hostile.gguf ")
    assert reason in message and "\n" not in message


def test_template_features_real_models_use_still_work():
    """namespace, selectattr, tojson, loop.last, macros, slicing, strftime_now, and a template
    that refuses a system role (its system prompt is folded into the first user message)."""
    template = (
        "{%- set ns = namespace(n=0) -%}{%- set users = messages|selectattr('role', 'equalto', "
        "'user')|list -%}{% macro tag(r) %}[{{ r|upper }}]{% endmacro %}"
        "{%- for m in messages -%}{%- if m.role == 'system' -%}"
        "{{ raise_exception('System role not supported') }}{%- endif -%}"
        "{%- set ns.n = ns.n + 1 -%}{{ tag(m.role) }}{{ m.content|trim }}"
        "{{ ' ' + ({'n': ns.n}|tojson) }}{% if not loop.last %}\n{% endif %}{%- endfor -%}"
        "{{ ' ' ~ users|length ~ ' ' ~ strftime_now('%Y')[:2] }}"
    )
    fmt = JinjaChatFormat(template, bos_token="", eos_token="", model="m.gguf")
    fmt.probe()
    text = fmt.render([Message(SYSTEM, "Be brief."), Message(USER, " Hi ")])
    assert text.startswith('[USER]Be brief.\n\n Hi {"n": 1} 1 ')


def test_embedded_template_renders_the_same_and_about_as_fast(model_path):
    """The bounded sandbox renders exactly what llama-cpp-python's formatter renders, at a
    small cost (measured side by side on 40 messages; the README gives the figures)."""
    from assistant.library.gguf_header import read_gguf_info

    template = read_gguf_info(model_path).chat_template
    ours = JinjaChatFormat(template, bos_token="<|im_start|>", eos_token="<|im_end|>")
    theirs = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="<|im_start|>")
    msgs = _conversation(39)  # 40 messages with the system prompt, ending with the user

    def reference():
        return theirs(messages=[m.as_llama() for m in msgs]).prompt

    assert ours.render(msgs) == reference()
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(7):
        for name, render in (("ours", lambda: ours.render(msgs)), ("theirs", reference)):
            start = time.process_time()
            for _ in range(50):
                render()
            times[name].append(time.process_time() - start)
    ratio = statistics.median(times["ours"]) / statistics.median(times["theirs"])
    assert ratio < 2.5, ratio  # measured: about 1.2


@pytest.fixture(scope="module")
def nested_loop_model(model_path, tmp_path_factory):
    return copy_with_template(model_path, tmp_path_factory.mktemp("t") / "loops.gguf", NESTED_LOOPS)


@pytest.fixture(scope="module")
def boom_model(model_path, tmp_path_factory):
    return copy_with_template(model_path, tmp_path_factory.mktemp("t") / "boom.gguf", BOOM)


def test_a_failing_template_refuses_the_model_at_load(nested_loop_model):
    from assistant.engine.runtime import ModelRuntime

    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as error:
        ModelRuntime(nested_loop_model, LoadOptions(n_ctx=512, n_threads=2))
    assert time.perf_counter() - start < 30
    message = str(error.value)
    assert "The chat template of loops.gguf failed: it was stopped" in message
    assert "--chat-format plain" in message and "\n" not in message


def test_the_plain_format_only_when_chosen(nested_loop_model):
    from assistant.engine.runtime import ModelRuntime

    options = LoadOptions(n_ctx=512, n_threads=2, chat_format="plain")
    runtime = ModelRuntime(nested_loop_model, options)
    try:
        assert runtime.chat_format.name == runtime.info.template_name == CHOSEN_PLAIN_NAME
        assert runtime.render([Message(USER, "Hi")]) == "User: Hi\n\nAssistant:"
        reply = runtime.complete([Message(USER, "Hi")], SamplingOptions(max_tokens=4))
        assert isinstance(reply, str)
    finally:
        runtime.close()


def test_a_template_error_leaves_the_conversation_unchanged(boom_model):
    from assistant.conversation.session import ChatSession
    from assistant.conversation.store import Store
    from assistant.engine.runtime import ModelRuntime

    runtime = ModelRuntime(boom_model, LoadOptions(n_ctx=512, n_threads=2))
    try:
        session = ChatSession(runtime, Store(":memory:"), sampling=SamplingOptions(max_tokens=4))
        with pytest.raises(ChatFormatError, match="boom.gguf failed: it refuses the conv"):
            session.send("say boom")
        assert session.messages() == []
        for _ in session.send("hello"):
            pass
        assert [m.role for m in session.messages()] == [USER, ASSISTANT]
    finally:
        runtime.close()


def _assistant(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


def test_cli_ask_refuses_with_one_line_or_uses_plain_when_chosen(nested_loop_model):
    fast = ["--max-tokens", "4", "--ctx", "512", "--temperature", "0"]
    refused = _assistant("ask", "--model", str(nested_loop_model), *fast, "hi")
    assert refused.returncode == 1, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "chat template of loops.gguf failed" in lines[0]
    plain = _assistant(
        "ask", "--model", str(nested_loop_model), "--chat-format", "plain", *fast, "hi"
    )
    assert plain.returncode == 0, plain.stderr[-2000:]


def test_cli_chat_survives_a_template_error_without_storing_it(boom_model):
    from assistant.conversation.store import Store

    args = ["chat", "--model", str(boom_model), "--max-tokens", "4", "--ctx", "512"]
    result = _assistant(*args, stdin="say boom\nhello\n")
    assert result.returncode == 0, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "boom is not allowed" in errors[0]
    store = Store()
    (conversation,) = store.list_conversations()
    assert [m.content for m in store.messages(conversation.id)][:1] == ["hello"]
