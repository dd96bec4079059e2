"""Numbers from the user (command line, settings file, the app's dialog) are checked against one
table of ranges (`assistant.types.RANGES`) before llama.cpp sees them: a bad one is one line
naming the option, the value and the range (exit code 1, never a signal), a bad value in the
settings file is replaced by its default with a notice, and a value fitted to the model or the
computer says so."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from assistant.cli import main
from assistant.engine import loading
from assistant.engine.loading import load_with_fallback, refuse_if_too_large
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ModelLoadError, OutOfRangeError
from assistant.library.fit import estimate
from assistant.library.gguf_header import read_gguf_info
from assistant.library.memory import GIB, SystemMemory
from assistant.library.sizes import format_bytes
from assistant.settings import Settings
from assistant.types import (
    CTX_MAX,
    CTX_MIN,
    RANGES,
    LoadOptions,
    SamplingOptions,
)

ASSISTANT = [sys.executable, "-m", "assistant"]
NO_GPU = SystemMemory(16 * GIB, 8 * GIB)

# Each crashed llama.cpp (SIGSEGV), meant "unlimited", or was silently replaced before.
BAD_ASK_OPTIONS = [
    ("--batch", "-1"),
    ("--batch", "0"),
    ("--threads", "1000000"),
    ("--threads", "0"),
    ("--max-tokens", "0"),
    ("--max-tokens", "-5"),
    ("--ctx", "0"),
    ("--ctx", "1"),
    ("--temperature", "nan"),
    ("--top-p", "2"),
    ("--seed", "-1"),
    ("--gpu-layers", "-7"),
    ("--ctx", "4k"),
]


def test_bad_numbers_on_the_command_line_are_one_line_and_exit_1():
    """Real processes (a crash in llama.cpp would be a signal, not an exception)."""
    procs = [
        (
            option,
            value,
            subprocess.Popen(
                [*ASSISTANT, "ask", option, value, "hello"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=os.environ.copy(),
            ),
        )
        for option, value in BAD_ASK_OPTIONS
    ]
    for option, value, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (option, value, proc.returncode, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"error: {option} {value} ") and ": use " in err, err
        assert out == ""


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["chat", "--top-k", "-1"], "--top-k -1 is too small: use 0 to"),
        (["chat", "--repeat-penalty", "0"], "--repeat-penalty 0 is too small"),
        (["chat", "--min-p", "inf"], "--min-p inf is not a finite number"),
        (["info", "--threads", "513"], "--threads 513 is too large: use 1 to 512"),
        (["info", "--batch", "1.5"], "--batch 1.5 is not a whole number"),
        (["summarize", "-", "--chunk-tokens", "0"], "--chunk-tokens 0 is too small: use 256"),
        (["summarize", "-", "--ctx", str(CTX_MAX + 1)], f"--ctx {CTX_MAX + 1} is too large"),
        (["models", "fit", "embedded", "--ctx", "-4"], "--ctx -4 is too small: use 256"),
        (["models", "list", "--ctx", "0"], "--ctx 0 is too small"),
        (["models", "search", "llama", "--limit", "0"], "--limit 0 is too small: use 1"),
    ],
)
def test_every_numeric_option_is_checked(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # refused before any input is read
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1, err


def test_options_in_range_pass_through_unchanged():
    assert LoadOptions(n_ctx=CTX_MIN, n_threads=1, n_batch=1, n_gpu_layers=-1).validated() == (
        LoadOptions(n_ctx=CTX_MIN, n_threads=1, n_batch=1, n_gpu_layers=-1)
    )
    s = SamplingOptions(temperature=0, top_p=1, top_k=0, min_p=0, seed=0, max_tokens=1)
    assert s.validated() == s
    assert RANGES["n_gpu_layers"].check("auto") == -2 and RANGES["n_gpu_layers"].check("ALL") == -1


def _hostile_values():
    """Small, generated: every kind of wrong a JSON file or an API request can hold."""
    return [
        None, True, False, "", " ", "12abc", "0x10", "1e3", "nan", "-inf", [], {}, [4096],
        math.nan, math.inf, -math.inf, -0.0, 0.5, -1, 0, 1, 2**31, 2**32, 2**63, 2**70,
        10**5000, -(10**30), 1e308, 5e-324,
    ]  # fmt: skip


@pytest.mark.parametrize("field", sorted(RANGES))
def test_a_checked_number_is_in_range_or_names_its_field(field):
    spec = RANGES[field]
    for value in _hostile_values():
        try:
            number = spec.check(value)
        except OutOfRangeError as exc:
            assert exc.field == field and str(exc).startswith(f"{field} ")
            assert "\n" not in str(exc) and len(str(exc)) < 200
            continue
        assert isinstance(number, int if spec.integer else float) and not isinstance(number, bool)
        special = {v for _, v in spec.special}
        assert number in special or spec.low <= number <= spec.high, (value, number)
        assert not (spec.low_open and number == spec.low)


def test_validated_options_name_the_bad_field():
    for bad, field in (
        (LoadOptions(n_batch=-1), "n_batch"),
        (LoadOptions(n_threads=10**6), "n_threads"),
        (LoadOptions(n_ctx=1), "n_ctx"),
        (LoadOptions(n_gpu_layers=-3), "n_gpu_layers"),
    ):
        with pytest.raises(OutOfRangeError) as info:
            bad.validated()
        assert info.value.field == field
    for bad, field in (
        (SamplingOptions(max_tokens=0), "max_tokens"),
        (SamplingOptions(temperature=math.nan), "temperature"),
        (SamplingOptions(top_p=0.0), "top_p"),
        (SamplingOptions(seed=-1), "seed"),
        (SamplingOptions(repeat_penalty=-1.0), "repeat_penalty"),
        (SamplingOptions(stop=("ok", 5)), "stop"),  # type: ignore[arg-type]
    ):
        with pytest.raises(OutOfRangeError) as info:
            bad.validated()
        assert info.value.field == field


def test_the_runtime_refuses_what_would_crash_llama_cpp(model_path):
    """Whoever builds the options (a benchmark, the server), llama.cpp never sees them."""
    for options in (LoadOptions(n_batch=-1), LoadOptions(n_threads=1_000_000)):
        with pytest.raises(OutOfRangeError):
            ModelRuntime(model_path, options)


# -- the settings file --------------------------------------------------------------------------
BAD_SETTINGS = {
    "n_ctx": 0,
    "n_threads": 1e9,
    "n_batch": -1,
    "n_gpu_layers": "lots",
    "flash_attn": 1,
    "model": 42,
    "policy": "forget",
    "sampling": {
        "temperature": "NaN",
        "top_p": 2,
        "top_k": 2**70,
        "max_tokens": 0,
        "seed": -1,
        "stop": "###",
        "ignore_eos": "no",
        "min_p": 0.1,
    },
    "summary_bullets": "yes",
    "unknown": [1, 2, 3],
}


def test_bad_values_in_the_settings_file_load_as_defaults_with_a_notice(assistant_home):
    path = assistant_home / "settings.json"
    text = json.dumps(BAD_SETTINGS).replace('"NaN"', "NaN")  # a real NaN, as Python writes it
    path.write_text(text, encoding="utf-8")
    settings = Settings.load()
    defaults = Settings()
    for name in ("n_ctx", "n_threads", "n_batch", "n_gpu_layers", "flash_attn", "model"):
        assert getattr(settings, name) == getattr(defaults, name), name
    assert settings.policy == "drop" and settings.summary_bullets is True
    sampling = settings.sampling_options()
    assert sampling == replace(SamplingOptions(), min_p=0.1), "the one good value is kept"
    assert settings.load_options() == defaults.load_options()
    problems = settings.problems
    assert len(problems) == 15, problems
    assert all(p.startswith(f"Settings file {path}: ") and "default" in p for p in problems)
    assert any("n_ctx 0 is too small: use 256" in p for p in problems)
    assert any("sampling.temperature nan is not a finite number" in p for p in problems)
    # saving writes clean values and no notices
    settings.save()
    again = Settings.load()
    assert again.problems == [] and "problems" not in json.loads(path.read_text())


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "cannot be read"),
        ("[1, 2]", "is not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "cannot be read"),
        ('{"n_ctx": ' + "9" * 5000 + "}", "cannot be read"),
        ('{"n_ctx": 1e999}', "n_ctx inf is not a finite number"),
        (b"\xff\xfe{}", "cannot be read"),
    ],
)
def test_a_broken_settings_file_loads_defaults_with_a_notice(assistant_home, text, reason):
    path = assistant_home / "settings.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    settings = Settings.load()
    assert settings.load_options() == Settings().load_options()
    assert len(settings.problems) == 1 and reason in settings.problems[0]


def test_the_cli_prints_the_settings_notices_and_carries_on(assistant_home, capsys):
    (assistant_home / "settings.json").write_text('{"n_ctx": -5}', encoding="utf-8")
    assert main(["models", "fit", "embedded", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_ctx"] == Settings().n_ctx
    assert captured.err.count("\n") == 1 and "n_ctx -5 is too small" in captured.err


# -- values fitted to the model and the computer say so -----------------------------------------
def _loads(calls):
    def loader(path, options):
        calls.append(options)
        return "runtime"

    return loader


def test_context_above_the_trained_one_is_lowered_and_says_so(model_path):
    calls = []
    _, choice = load_with_fallback(
        model_path,
        LoadOptions(n_ctx=100_000, n_batch=50_000),
        memory=NO_GPU,
        loader=_loads(calls),
    )
    assert calls[0].n_ctx == 8192 and calls[0].n_batch == 8192  # SmolLM2: trained on 8192
    assert choice.adjustments == (
        "Context 100000 is more than the 8192 tokens the model was trained on: using 8192.",
        "Batch 50000 is larger than the 8192-token context: using 8192.",
    )


def test_threads_above_the_cpus_and_a_context_rounded_up_say_so(model_path, monkeypatch):
    monkeypatch.setattr(loading.os, "cpu_count", lambda: 4)
    calls = []
    _, choice = load_with_fallback(
        model_path, LoadOptions(n_ctx=300, n_threads=64), memory=NO_GPU, loader=_loads(calls)
    )
    assert calls[0].n_threads == 4 and calls[0].n_batch == 300
    assert choice.adjustments == (
        "Threads 64 is more than this computer's 4 CPUs: using 4.",
        "Context 300 is rounded up to 512 tokens (llama.cpp allocates it in steps of 256).",
    ), "the default batch lowered to the context is nobody's choice: no line for it"
    calls.clear()
    _, choice = load_with_fallback(model_path, LoadOptions(n_ctx=1024), loader=_loads(calls))
    assert choice.adjustments == () and calls[0] == LoadOptions(n_ctx=1024)


def test_the_cli_says_when_it_adjusts_the_context(assistant_home):
    proc = subprocess.run(
        [*ASSISTANT, "ask", "--ctx", "300", "--max-tokens", "1", "--threads", "1", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "[Context 300 is rounded up to 512 tokens" in proc.stderr


# -- a context too large for the computer: the refusal counts everything -------------------------
def test_a_huge_context_is_refused_with_the_compute_buffer_in_the_breakdown(
    model_path, monkeypatch
):
    info = replace(read_gguf_info(model_path), n_ctx_train=CTX_MAX)  # a long-context model
    monkeypatch.setattr(loading, "read_gguf_info", lambda path: info)
    computer = SystemMemory(ram_total=32 * GIB, ram_available=16 * GIB)
    calls = []
    with pytest.raises(ModelLoadError) as refused:
        load_with_fallback(
            model_path, LoadOptions(n_ctx=CTX_MAX), memory=computer, loader=_loads(calls)
        )
    assert calls == [], "llama.cpp is never asked"
    est = estimate(info, CTX_MAX)
    message = str(refused.value)
    assert est.compute_bytes > 8 * GIB  # the KQ matrix at a million tokens: not negligible
    assert f"compute buffer {format_bytes(est.compute_bytes, binary=True)}" in message
    assert f"needs {format_bytes(est.total_bytes, binary=True)}" in message
    assert est.total_bytes == est.weights_bytes + est.kv_bytes + est.compute_bytes
    # the same refusal when called on its own
    with pytest.raises(ModelLoadError, match="compute buffer"):
        refuse_if_too_large(model_path, info, LoadOptions(n_ctx=CTX_MAX), computer)


# -- the app's dialog offers exactly the accepted ranges ----------------------------------------
def test_settings_dialog_spin_boxes_use_the_same_ranges(qtbot):
    from ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), gpu_supported=False)
    qtbot.addWidget(dialog)
    for spin, field in (
        (dialog.ctx_spin, "n_ctx"),
        (dialog.top_k, "top_k"),
        (dialog.max_tokens, "max_tokens"),
        (dialog.temperature, "temperature"),
        (dialog.min_p, "min_p"),
    ):
        assert (spin.minimum(), spin.maximum()) == (RANGES[field].low, RANGES[field].high)
    assert dialog.gpu_spin.maximum() == RANGES["n_gpu_layers"].high
    assert dialog.seed.maximum() == RANGES["seed"].high and dialog.seed.minimum() == -1
    assert dialog.top_p.minimum() > 0 and dialog.top_p.maximum() == 1
    assert dialog.repeat_penalty.minimum() > 0
    assert 1 <= dialog.threads_spin.maximum() <= RANGES["n_threads"].high
    # whatever the user picks at the extremes is accepted by the core
    for spin in (dialog.ctx_spin, dialog.max_tokens, dialog.top_p, dialog.repeat_penalty):
        spin.setValue(spin.minimum())
    dialog.seed.setValue(dialog.seed.maximum())
    edited = dialog.settings()
    edited.load_options()
    edited.sampling_options()
