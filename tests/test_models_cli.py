"""`assistant models ...` in-process, through add_models_parser (cli.py wires it the same way)."""

from __future__ import annotations

import argparse
import json
import sys

import pytest

from assistant.cli.models import add_models_parser
from assistant.errors import AssistantError
from tests.hub_server import write_model_gguf
from tests.test_models_hub import SMOL_FILE, SMOL_REPO, TINY_REPO, fake_hub, tiny_files  # noqa: F401


@pytest.fixture(autouse=True)
def own_hub_cache(monkeypatch):
    """The Hub cache under this test's ASSISTANT_HOME, whatever the machine's HF_* settings."""
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Like cli.main: errors are printed as one line, never a traceback."""
    parser = argparse.ArgumentParser(prog="assistant")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_models_parser(sub)
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys, model_path):
    code, out, _ = run(["models", "list"], capsys)
    assert code == 0 and out.splitlines()[1].startswith("embedded ")
    assert "Q4_1" in out and "FIT AT 4096 TOKENS" in out
    code, out, _ = run(["models", "list", "--json", "--ctx", "2048"], capsys)
    data = json.loads(out)
    assert data[0]["id"] == "embedded" and data[0]["fit"]["n_ctx"] == 2048
    assert data[0]["fit"]["verdict"] in {"gpu", "partial", "cpu"}


def test_list_catalog(capsys):
    code, out, _ = run(["models", "list", "--catalog", "--json"], capsys)
    data = json.loads(out)
    ids = [d["id"] for d in data]
    assert "qwen2.5-7b-instruct" in ids and "smollm2-135m-instruct" in ids
    assert all(d["fit"]["verdict"] in {"gpu", "partial", "cpu", "too_large"} for d in data)
    assert next(d for d in data if d["embedded"])["status"] == "embedded"
    code, out, _ = run(["models", "list", "--catalog"], capsys)
    assert "mistral-7b-instruct-v0.3" in out and "Apache 2.0; needs 8 GB" in out


def test_search_files_pull_info_fit_remove(fake_hub, capsys, assistant_home):  # noqa: F811
    code, out, _ = run(["models", "search", "smol", "--json"], capsys)
    assert json.loads(out)[0]["id"] == SMOL_REPO
    code, out, _ = run(["models", "files", TINY_REPO], capsys)
    assert "Q8_0" in out and "(vision projector)" in out and "shards)" in out
    code, out, err = run(["models", "pull", SMOL_REPO, "--quant", "Q4_1"], capsys)
    model_id = f"{SMOL_REPO}/{SMOL_FILE}"
    assert code == 0 and out.startswith(f"downloaded: {model_id}") and "checksum verified" in out
    assert "93.8M/93.8M" in err and "B/s" in err  # tqdm's bar on stderr: bytes and speed
    code, out, _ = run(["models", "pull", SMOL_REPO, "--quant", "Q4_1", "--json"], capsys)
    assert json.loads(out)["already_present"] is True
    code, out, _ = run(["models", "info", model_id, "--json"], capsys)
    assert json.loads(out)["layers"] == 30 and json.loads(out)["kind"] == "downloaded"
    code, out, _ = run(["models", "fit", SMOL_FILE, "--ctx", "2048"], capsys)
    assert "at 2048 tokens of context" in out and "KV cache" in out
    code, out, _ = run(["models", "fit", TINY_REPO, "--quant", "Q8_0", "--json"], capsys)
    assert json.loads(out)["model"] == f"{TINY_REPO}/tiny-Q8_0.gguf"
    code, out, _ = run(["models", "remove", model_id], capsys)
    assert out.startswith(f"Removed {model_id} (98 MB freed)")
    code, out, _ = run(["models", "list", "--json"], capsys)
    assert [d["id"] for d in json.loads(out)] == ["embedded"]


def test_user_mistakes_are_one_line_errors(fake_hub, capsys):  # noqa: F811
    for argv, message in [
        (["models", "pull", "nobody/nothing"], "no repository nobody/nothing"),
        (["models", "pull", TINY_REPO, "--quant", "Q2_K"], "no Q2_K file"),
        (["models", "pull", "qwen"], "neither a catalog id nor a repository"),
        (["models", "pull", "smollm2-135m-instruct"], "already installed"),
        (["models", "info", "nope"], "No model 'nope'"),
        (["models", "fit", "embedded", "--ctx", "4"], "--ctx 4 is too small: use 256"),
        (["models", "remove", "embedded"], "cannot be removed"),
    ]:
        code, _, err = run(argv, capsys)
        assert code == 1 and message in err and "Traceback" not in err, argv
        assert err.count("\n") == 1


def test_fit_catalog_entry_offline(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run(
        ["models", "fit", "qwen2.5-7b-instruct", "--quant", "Q8_0", "--json"], capsys
    )
    data = json.loads(out)
    assert data["model"].endswith("Qwen2.5-7B-Instruct-Q8_0.gguf")
    assert data["estimate"]["weights_cpu"] + data["estimate"]["weights_gpu"] > 7e9


def test_import_and_remove(tmp_path, capsys):
    src = write_model_gguf(tmp_path / "mine-F16.gguf")
    code, out, _ = run(["models", "import", str(src)], capsys)
    assert code == 0 and out.strip().startswith("imported: local/mine-F16.gguf")
    code, out, _ = run(["models", "info", "local/mine-F16.gguf"], capsys)
    assert "quantization     F16" in out
    code, out, _ = run(["models", "remove", "local/mine-F16.gguf", "--json"], capsys)
    assert json.loads(out)["removed"] == "local/mine-F16.gguf"
    code, out, _ = run(["models", "import", str(src), "--link"], capsys)
    assert out.startswith("linked: local/mine-F16.gguf")


def test_offline_list_says_what_needs_a_connection(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, _ = run(["models", "list"], capsys)
    assert "offline mode" in out and "pull need a connection" in out
    code, _, err = run(["models", "search", "qwen"], capsys)
    assert code == 1 and "needs a connection" in err


@pytest.mark.parametrize(
    "action", ["list", "search", "files", "pull", "info", "fit", "import", "remove"]
)
def test_every_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(["models", action, "--help"], capsys)
    assert exit_.value.code == 0


def test_a_gguf_the_reader_rejects_is_listed_as_unusable(capsys, model_path):
    """One such file in the models folder must not break `models list` or any `--model ID`."""
    from assistant import paths
    from assistant.library import local as library
    from tests.test_models_gguf_info import HOSTILE, write_gguf_with

    write_gguf_with(paths.models_dir() / "broken.gguf", HOSTILE["file_type_array"][0])
    code, out, err = run(["models", "list", "--all"], capsys)
    assert code == 0 and not err
    row = next(line for line in out.splitlines() if line.startswith("local/broken.gguf"))
    assert "unusable:" in row and "general.file_type is an array of 2 values" in row
    code, out, _ = run(["models", "list", "--all", "--json"], capsys)
    broken = next(m for m in json.loads(out) if m["id"] == "local/broken.gguf")
    assert not broken["usable"] and "general.file_type" in broken["problem"]
    code, out, _ = run(["models", "list"], capsys)
    assert code == 0 and "broken.gguf" not in out and "embedded" in out
    code, _, err = run(["models", "info", "local/broken.gguf"], capsys)
    assert code == 1 and err.count("\n") == 1 and "general.file_type" in err
    assert library.model_path("embedded") == model_path
