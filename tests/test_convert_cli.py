"""`assistant convert` as the CLI registers it, and `assistant ask` on what it wrote."""

from __future__ import annotations

import argparse

import pytest

from assistant.cli import main as assistant_main
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ConversionError
from assistant.types import LoadOptions
from tests.convert_models import CHATML_TEMPLATE, zoo_for
from tools.convert import verify, verify_metrics
from tools.convert.cli import add_convert_parser


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


def run_convert_cli(argv: list[str]) -> int:
    """Parse and run exactly as assistant/cli.py does for its subcommands."""
    parser = argparse.ArgumentParser(prog="assistant")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_convert_parser(sub)
    args = parser.parse_args(["convert", *argv])
    return args.run(args)


def test_convert_with_verify_prints_figures(zoo, tmp_path, capsys):
    model = zoo.get("llama-untied")
    out = tmp_path / "llama.gguf"
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}")
    argv = [
        str(model.source),
        "--out",
        str(out),
        "--type",
        "q8_0",
        "--verify",
        "--name",
        "Lighthouse",
        "--threads",
        "2",
        "--chat-template",
        str(template),
    ]
    rc = run_convert_cli(argv)
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert out.is_file() and f"Wrote {out}" in stdout
    assert "NMSE" in stdout and "top-1" in stdout and "tokenization: " in stdout
    runtime = ModelRuntime(out, LoadOptions(n_ctx=256, n_threads=2))
    try:
        assert runtime.info.name == "Lighthouse" and runtime.info.quantization == "Q8_0"
        assert runtime.info.chat_template == template.read_text()
    finally:
        runtime.close()


def test_failed_verification_exits_non_zero_and_keeps_the_file(zoo, tmp_path, capsys, monkeypatch):
    model = zoo.get("gpt2")
    # no file can pass NMSE < 0
    monkeypatch.setitem(verify.THRESHOLDS, "f16", verify_metrics.Limits(max_nmse=0.0))
    out = tmp_path / "gpt2.gguf"
    rc = run_convert_cli([str(model.source), "--out", str(out), "--verify"])
    captured = capsys.readouterr()
    assert rc == 1 and out.is_file()
    assert "FAILED" in captured.out and "verification failed" in captured.err


def test_parser_is_light_and_lists_every_type():
    import subprocess
    import sys

    from tools.convert import cli, pipeline

    assert cli.OUT_TYPES == pipeline.OUT_TYPES
    code = "import sys, tools.convert.cli; print('numpy' in sys.modules, 'gguf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_errors_are_conversion_errors(tmp_path):
    """assistant/cli.py prints AssistantError subclasses without a traceback and exits 1."""
    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"]}')
    (tmp_path / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ConversionError, match="unsupported architecture BertModel"):
        run_convert_cli([str(tmp_path), "--out", str(tmp_path / "x.gguf")])


@pytest.mark.parametrize(
    ("name", "out_type", "template"),
    [
        ("qwen2", "q4_k_m", "jinja"),
        ("llama-untied", "f16", "jinja"),
        ("nanogpt-chars", "q8_0", None),
    ],
)
def test_assistant_ask_runs_the_converted_model(zoo, name, out_type, template, capsys):
    path = zoo.convert(name, out_type).path
    rc = assistant_main(
        [
            "ask",
            "--model",
            str(path),
            "--max-tokens",
            "12",
            "--temperature",
            "0",
            "--ctx",
            "256",
            "--threads",
            "2",
            "Question: what does the market sell?",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.strip(), "the model answered nothing"
    runtime = ModelRuntime(path, LoadOptions(n_ctx=256, n_threads=2))
    try:
        if template is None:
            assert runtime.info.chat_template is None
        else:
            assert runtime.info.chat_template
        if name == "qwen2":
            assert runtime.info.chat_template == CHATML_TEMPLATE
            prompt = runtime.prompt_tokens([])  # the template's generation prompt
            assert prompt[:1] == runtime.tokenize("<|im_start|>", special=True)
            assert runtime.detokenize(prompt[1:]) == "assistant\n"
    finally:
        runtime.close()
