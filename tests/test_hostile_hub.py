"""A hostile or broken Hub mirror (tests/hub_server.py's hostile modes) writes nothing outside the
cache, gets one clear line naming what it sent, and cannot hold a pull or its Cancel hostage."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assistant.library import download as downloads
from assistant.library import hub, hub_cache, transfer
from assistant.library.hub_errors import (
    DownloadCancelledError,
    HubConnectionError,
    HubError,
    UnsafeResponseError,
)
from tests.hub_server import FakeHub

REPO = "test/Hostile-GGUF"
NAME = "model-Q8_0.gguf"
BODY = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def fake_hub(monkeypatch):
    server = FakeHub()
    server.add_repo(REPO, {NAME: BODY, "README.md": b"# hostile\n"})
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.01)
    yield server
    server.stop()


@pytest.fixture
def watch(tmp_path_factory):
    """Every file of the whole pytest temp tree; after the test, the new ones must be in the
    cache (and `clean()` checks that the cache holds no file at all either)."""
    root = tmp_path_factory.getbasetemp()
    before = _files(root)

    class Watch:
        @staticmethod
        def outside() -> list[Path]:
            cache = hub_cache.cache_dir().resolve()
            return sorted(p for p in _files(root) - before if not p.resolve().is_relative_to(cache))

        @staticmethod
        def in_cache() -> list[Path]:
            return sorted(_files(hub_cache.cache_dir()))

    yield Watch
    assert Watch.outside() == []


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _pull(limit: float, **kwargs):
    """The download's result or exception, and its time; fails if it is still running."""
    box: dict = {}

    def run():
        try:
            box["out"] = downloads.download(REPO, quant="Q8_0", **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            box["out"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the pull was still running after {limit} s"
    return box["out"], time.monotonic() - start


def _cdn_gets(server: FakeHub) -> list:
    return [r for r in server.requests if r.path.startswith("/cdn/")]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


# -- names from the network ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "etag",
    [
        "../../../../../escaped-etag",  # out of blobs/, the repository and the cache
        "ABSOLUTE",  # replaced with an absolute path in the temp tree
        "deadbeef",  # hex, but not a digest
        "g" * 64,  # digest-sized, not hex
        "..",
    ],
)
def test_etag_must_be_a_digest(fake_hub, watch, tmp_path, etag):
    if etag == "ABSOLUTE":
        etag = str(tmp_path / "absolute-etag")
    fake_hub.linked_etag[NAME] = etag
    out, took = _pull(20)
    assert isinstance(out, UnsafeResponseError), out
    text = _one_line(out)
    assert REPO in text and "ETag" in text and repr(etag) in text
    assert _cdn_gets(fake_hub) == []  # refused before a byte of the body
    assert watch.in_cache() == [] and not (tmp_path / "absolute-etag").exists()
    assert took < 10


@pytest.mark.parametrize(
    "name",
    [
        "../../../../escaped-Q8_0.gguf",
        "ABSOLUTE",
        "split/../../x-Q8_0.gguf",
        "sub\\..\\..\\x-Q8_0.gguf",
        "C:/x-Q8_0.gguf",
        "a//b-Q8_0.gguf",
        "NUL.Q8_0.gguf",  # Windows device names, whatever the extension or the case
        "sub/com1.gguf",
        "Lpt².gguf",
        "x./y-Q8_0.gguf",  # Windows drops a trailing dot or space: another folder
        "dir /x-Q8_0.gguf",
    ],
)
def test_file_names_in_the_listing_must_stay_inside(fake_hub, watch, tmp_path, name):
    if name == "ABSOLUTE":
        name = str(tmp_path / "absolute-Q8_0.gguf")
    fake_hub.add_repo(REPO, {name: BODY})
    with pytest.raises(UnsafeResponseError) as listing:
        hub.list_gguf_files(REPO)
    out, _ = _pull(20)
    assert isinstance(out, UnsafeResponseError), out
    for exc in (listing.value, out):
        text = _one_line(exc)
        assert REPO in text and "file name" in text and repr(name) in text
    assert not [r for r in fake_hub.requests if "/resolve/" in r.path or r.path.startswith("/cdn")]
    assert watch.in_cache() == []


@pytest.mark.parametrize(
    "commit", ["../../../../escaped", "ABSOLUTE", "main", "f" * 39, "F" * 40 + "/x"]
)
def test_commit_hash_must_be_a_git_sha(fake_hub, watch, tmp_path, commit):
    if commit == "ABSOLUTE":
        commit = str(tmp_path / "absolute-commit")
    fake_hub.commit = commit
    out, _ = _pull(20)
    assert isinstance(out, UnsafeResponseError), out
    text = _one_line(out)
    assert REPO in text and "commit" in text and repr(commit) in text
    assert _cdn_gets(fake_hub) == [] and watch.in_cache() == []


def test_revision_is_a_safe_name(fake_hub, watch):
    out, _ = _pull(20, revision="../../../escaped")
    assert isinstance(out, UnsafeResponseError) and "revision" in _one_line(out)
    assert fake_hub.requests == [] and watch.in_cache() == []


@pytest.mark.parametrize("size", [-1, 10**30])
def test_declared_size_must_be_plausible(fake_hub, watch, size):
    fake_hub.declared_size[NAME] = size
    out, _ = _pull(20)
    assert isinstance(out, HubError), out
    assert str(size) in _one_line(out).replace(",", "")
    assert _cdn_gets(fake_hub) == [] and watch.in_cache() == []


# -- bodies -------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_length", [True, False], ids=["declared", "close-delimited"])
def test_body_larger_than_declared_is_cut_off_and_refused(fake_hub, watch, content_length):
    fake_hub.declared_size[NAME] = 1000  # the listing and X-Linked-Size; the CDN sends 1 MiB
    if not content_length:
        fake_hub.no_length.add(NAME)
    out, took = _pull(20)
    assert isinstance(out, UnsafeResponseError), out
    text = _one_line(out)
    assert NAME in text and "1,000 bytes" in text
    assert watch.in_cache() == [] or all(p.suffix == ".lock" for p in watch.in_cache())
    assert hub_cache.cached_models() == []
    assert took < 10


def test_trickling_server_is_given_up_and_the_part_kept(fake_hub, watch, monkeypatch):
    monkeypatch.setattr(transfer, "MIN_SPEED_BYTES", 200)
    monkeypatch.setattr(transfer, "MIN_SPEED_WINDOW", 1.0)
    fake_hub.trickle[NAME] = 0.05  # about 20 bytes a second
    out, took = _pull(10)
    assert isinstance(out, HubConnectionError), out
    text = _one_line(out)
    assert NAME in text and "too slowly" in text and "resume" in text
    assert took < 4
    parts = list(hub_cache.cache_dir().rglob("*.incomplete"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < 200
    assert hub_cache.cached_models() == []


@pytest.mark.parametrize("where", ["listing", "before headers", "mid-body"])
def test_cancel_takes_effect_during_a_stall(fake_hub, watch, where):
    if where == "listing":
        fake_hub.stall_info = True
    else:
        fake_hub.stall[NAME] = -1 if where == "before headers" else 5000
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    out, took = _pull(10, cancel=cancel)
    assert isinstance(out, DownloadCancelledError), out
    assert took < 0.5 + 1.0
    _one_line(out)
    if where == "mid-body":
        parts = list(hub_cache.cache_dir().rglob("*.incomplete"))
        assert len(parts) == 1 and parts[0].stat().st_size == 5000


# -- the cache ----------------------------------------------------------------------------------
def test_removing_a_model_never_deletes_a_file_outside_the_cache(tmp_path):
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"GGUF keep me")
    snap = hub_cache.cache_dir() / "models--a--b" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "x-Q8_0.gguf").symlink_to(outside)
    (model,) = hub_cache.cached_models()
    hub_cache.remove_cached(model)
    assert outside.read_bytes() == b"GGUF keep me"
    assert not (snap / "x-Q8_0.gguf").exists()


# -- the command line ---------------------------------------------------------------------------
def test_cli_pull_of_a_hostile_etag_is_one_line_and_exit_1(fake_hub, watch, assistant_home):
    target = assistant_home.parent / "cli-escaped"
    fake_hub.linked_etag[NAME] = "../../../../" + target.name
    env = {
        **os.environ,
        "HF_ENDPOINT": fake_hub.url,
        "ASSISTANT_HOME": str(assistant_home),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "models", "pull", REPO, "--quant", "Q8_0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ETag" in lines[0]
    assert target.name in lines[0] and not target.exists()
