"""The Hub client against a real local HTTP server speaking the Hub's API (tests/hub_server.py)."""

from __future__ import annotations

import threading

import pytest

from assistant.library import download as downloads
from assistant.library import hub, hub_cache, hub_files
from assistant.library import local as library
from assistant.library.embedded import SHA256, embedded_model_path
from assistant.library.gguf_header import read_gguf_info
from assistant.library.hub_errors import (
    ChecksumError,
    DownloadCancelledError,
    GatedRepoError,
    HubConnectionError,
    OfflineModeError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
)
from tests.hub_server import FakeHub, Shape, write_model_gguf

SMOL_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
TINY_REPO = "test/Tiny-GGUF"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    files = {
        "tiny-Q8_0.gguf": write_model_gguf(folder / "tiny-Q8_0.gguf").read_bytes(),
        "tiny-F16.gguf": write_model_gguf(folder / "tiny-F16.gguf", Shape(n_layers=3)).read_bytes(),
        "mmproj-tiny-f16.gguf": write_model_gguf(folder / "mm.gguf").read_bytes(),
        "README.md": b"# Tiny\n",
    }
    first = write_model_gguf(folder / "big-Q4_K_M.gguf", Shape(n_layers=4), split_max_tensors=20)
    for shard in sorted(folder.glob("big-Q4_K_M-*-of-*.gguf")):
        files[f"split/{shard.name}"] = shard.read_bytes()
    assert first.exists()
    return files


@pytest.fixture
def fake_hub(monkeypatch, tiny_files):
    server = FakeHub()
    server.add_repo(
        SMOL_REPO,
        {SMOL_FILE: embedded_model_path(), "README.md": b"# SmolLM2\n"},
        downloads=500,
        sha256={SMOL_FILE: SHA256},
    )
    server.add_repo(TINY_REPO, tiny_files, downloads=7)
    server.add_repo(
        "meta/Gated-GGUF",
        {"gated-Q4_K_M.gguf": tiny_files["tiny-Q8_0.gguf"]},
        gated=True,
        downloads=3,
    )
    server.add_repo("someone/no-gguf", {"model.safetensors": b"\0" * 10}, downloads=1)
    server.repos["someone/no-gguf"].tags = ("safetensors",)
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)  # no stored token
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.01)
    yield server
    server.stop()


def test_cache_lives_in_assistant_home(fake_hub, assistant_home, monkeypatch, tmp_path):
    assert hub_cache.cache_dir() == assistant_home / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache.cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache.cache_dir() == tmp_path / "c"


def test_search(fake_hub):
    found = hub.search("gguf")
    assert [r.id for r in found] == [SMOL_REPO, TINY_REPO, "meta/Gated-GGUF"]
    assert found[0].downloads == 500 and found[2].gated
    assert [r.id for r in hub.search("smollm")] == [SMOL_REPO]
    request = next(r for r in fake_hub.requests if r.path == "/api/models")
    assert request.method == "GET"
    assert all(
        r.path.startswith(("/api/models", "/bartowski", "/test", "/cdn", "/meta"))
        for r in fake_hub.requests
    )  # no telemetry call (huggingface_hub's agent list)


def test_list_files_groups_shards_and_labels_quants(fake_hub):
    models = hub.list_gguf_files(TINY_REPO)
    by_name = {m.name: m for m in models}
    assert set(by_name) == {
        "tiny-Q8_0.gguf",
        "tiny-F16.gguf",
        "mmproj-tiny-f16.gguf",
        "split/big-Q4_K_M",
    }
    split = by_name["split/big-Q4_K_M"]
    assert split.quant == "Q4_K_M" and len(split.files) > 1
    assert split.size == sum(f.size for f in split.files)
    assert by_name["tiny-Q8_0.gguf"].files[0].sha256 is not None
    assert by_name["mmproj-tiny-f16.gguf"].is_projector and models[-1].is_projector


@pytest.mark.parametrize(
    "name, label",
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),
        ("Phi-3.5-mini-instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("gemma-2-2b-it-f16.gguf", "F16"),
        ("model.gguf", ""),
    ],
)
def test_quant_label(name, label):
    assert hub_files.quant_label(name) == label


def test_download_with_progress_then_listed(fake_hub):
    seen = []
    result = downloads.download(SMOL_REPO, quant="Q4_1", progress=seen.append)
    assert result.verified and not result.already_present and result.resumed_from == 0
    assert result.size == embedded_model_path().stat().st_size
    assert read_gguf_info(result.path).n_layers == 30
    assert seen[-1].done == seen[-1].total == result.size
    assert all(b.done >= a.done for a, b in zip(seen, seen[1:], strict=False))
    assert any(p.speed > 0 for p in seen) and seen[-1].eta == 0
    ids = [m.id for m in library.list_models()]
    assert f"{SMOL_REPO}/{SMOL_FILE}" in ids
    again = downloads.download(SMOL_REPO, quant="Q4_1")
    assert again.already_present and again.path == result.path
    assert len(fake_hub.gets(SMOL_FILE)) == 1  # not fetched twice


def test_dropped_connection_resumes_with_range(fake_hub):
    fake_hub.drop_once[SMOL_FILE] = 30_000_000
    result = downloads.download(SMOL_REPO, quant="Q4_1")
    gets = fake_hub.gets(SMOL_FILE)
    assert len(gets) == 2 and gets[0].range is None
    start = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 30_000_000
    assert result.verified and hub_cache.cached_models()[0].size == result.size


def test_cancel_keeps_the_part_and_the_next_pull_resumes(fake_hub):
    cancel = threading.Event()

    def progress(p):
        if p.done > 20_000_000:
            cancel.set()

    with pytest.raises(DownloadCancelledError, match="next pull resumes"):
        downloads.download(SMOL_REPO, quant="Q4_1", progress=progress, cancel=cancel)
    parts = list(hub_cache.cache_dir().rglob("*.incomplete"))
    assert len(parts) == 1 and parts[0].stat().st_size > 20_000_000
    assert hub_cache.cached_models() == []  # never offered while half-downloaded
    assert all(m.kind != "downloaded" for m in library.list_models(include_unusable=True))
    kept = parts[0].stat().st_size
    result = downloads.download(SMOL_REPO, quant="Q4_1")
    assert result.resumed_from == kept and result.verified
    assert fake_hub.gets(SMOL_FILE)[-1].range == f"bytes={kept}-"
    assert not list(hub_cache.cache_dir().rglob("*.incomplete"))


def test_server_ignoring_range_restarts_cleanly(fake_hub):
    cancel = threading.Event()
    with pytest.raises(DownloadCancelledError):
        downloads.download(
            SMOL_REPO,
            quant="Q4_1",
            cancel=cancel,
            progress=lambda p: p.done > 5_000_000 and cancel.set(),
        )
    fake_hub.ignore_range = True
    result = downloads.download(SMOL_REPO, quant="Q4_1")
    assert result.verified and result.size == embedded_model_path().stat().st_size


def test_corrupted_transfer_rejected(fake_hub):
    fake_hub.corrupt.add("tiny-Q8_0.gguf")
    with pytest.raises(ChecksumError, match=r"tiny-Q8_0.gguf arrived corrupted.*deleted"):
        downloads.download(TINY_REPO, quant="Q8_0")
    assert not list(hub_cache.cache_dir().rglob("*.incomplete"))
    assert hub_cache.cached_models() == []
    fake_hub.corrupt.clear()
    assert downloads.download(TINY_REPO, quant="Q8_0").verified


def test_split_model_downloads_as_one(fake_hub):
    result = downloads.download(TINY_REPO, quant="Q4_K_M")
    assert (
        len(result.files) > 1
        and result.path.name == f"big-Q4_K_M-00001-of-{len(result.files):05d}.gguf"
    )
    cached = hub_cache.cached_models()
    assert [c.filename for c in cached] == [f"split/{result.path.name}"]
    assert read_gguf_info(result.path).n_layers == 4


def test_choice_errors_list_what_exists(fake_hub):
    with pytest.raises(RemoteFileNotFoundError, match=r"no Q2_K file.*Q8_0 \(tiny-Q8_0.gguf\)"):
        downloads.download(TINY_REPO, quant="Q2_K")
    with pytest.raises(RemoteFileNotFoundError, match="no GGUF file nope.gguf"):
        downloads.download(TINY_REPO, filename="nope.gguf")
    with pytest.raises(RemoteFileNotFoundError, match="no GGUF files"):
        downloads.download("someone/no-gguf")
    gone = hub_files.RemoteFile("gone.gguf", 1, None)
    missing = hub_files.RemoteModel(TINY_REPO, "gone.gguf", "", (gone,))
    with pytest.raises(RemoteFileNotFoundError, match="has no file gone.gguf"):
        hub.remote_gguf_info(missing)


def test_gated_and_missing_repos_explained(fake_hub):
    with pytest.raises(GatedRepoError, match=r"meta/Gated-GGUF is gated.*accept.*HF_TOKEN"):
        downloads.download("meta/Gated-GGUF", quant="Q4_K_M")
    with pytest.raises(RepoNotFoundError, match="no repository nobody/nothing"):
        hub.list_gguf_files("nobody/nothing")
    with pytest.raises(RemoteFileNotFoundError, match="no such revision"):
        hub.list_gguf_files(TINY_REPO, revision="v9")


def test_unreachable_hub(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(HubConnectionError, match="Cannot reach the Hub.*already downloaded work"):
        hub.search("x")


def test_offline_mode(fake_hub, monkeypatch):
    downloads.download(TINY_REPO, quant="Q8_0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(fake_hub.requests)
    with pytest.raises(OfflineModeError, match=r"needs a connection.*1 downloaded model "):
        hub.search("tiny")
    with pytest.raises(OfflineModeError, match=r"Downloaded from it: tiny-Q8_0.gguf"):
        hub.list_gguf_files(TINY_REPO)
    cached = downloads.download(TINY_REPO, quant="Q8_0")
    assert cached.already_present and cached.path.exists()
    with pytest.raises(OfflineModeError, match=r"needs a connection.*tiny-Q8_0.gguf"):
        downloads.download(TINY_REPO, quant="F16")
    with pytest.raises(OfflineModeError):
        downloads.download(SMOL_REPO)
    assert len(fake_hub.requests) == before  # nothing was sent
    assert f"{TINY_REPO}/tiny-Q8_0.gguf" in [m.id for m in library.list_models()]


def test_remote_header_for_fit_before_download(fake_hub, model_path):
    model = hub.choose(hub.list_gguf_files(SMOL_REPO), SMOL_REPO, quant="Q4_1")
    remote = hub.remote_gguf_info(model)
    local = read_gguf_info(model_path)
    assert remote.layer_bytes == local.layer_bytes and remote.n_params == local.n_params
    assert remote.file_size == local.file_size
    gets = fake_hub.gets(SMOL_FILE)
    assert [g.range for g in gets] == [f"bytes=0-{hub.HEADER_FETCH - 1}"]
    assert hub_cache.cached_models() == []


def test_remote_header_grows_its_read(fake_hub, monkeypatch, model_path):
    monkeypatch.setattr(hub, "HEADER_FETCH", 64 << 10)  # smaller than the vocabulary
    model = hub.choose(hub.list_gguf_files(SMOL_REPO), SMOL_REPO, quant="Q4_1")
    assert hub.remote_gguf_info(model).n_layers == 30
    assert len(fake_hub.gets(SMOL_FILE)) >= 2


def test_reading_a_remote_header_stops_on_cancel(fake_hub):
    """The model manager lists a repository's files with their fit; Cancel stops the header
    reads at once, even from a server that trickles its bytes."""
    import time

    model = hub.choose(hub.list_gguf_files(SMOL_REPO), SMOL_REPO, quant="Q4_1")
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(hub.HeaderReadCancelled, match=SMOL_FILE):
        hub.remote_gguf_info(model, cancel=stopped)
    assert fake_hub.gets(SMOL_FILE) == []  # nothing was asked for
    fake_hub.trickle[SMOL_FILE] = 0.002
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(hub.HeaderReadCancelled):
        hub.remote_gguf_info(model, cancel=cancel)
    assert time.monotonic() - started < 3  # not the minutes 2 MB would take at this pace
