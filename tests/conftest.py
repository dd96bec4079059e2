"""Test set-up: all user state in a temp folder, Qt offscreen, the real embedded model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from assistant.library.embedded import embedded_model_path  # noqa: E402


@pytest.fixture(autouse=True)
def assistant_home(tmp_path, monkeypatch):
    """Every test gets its own ASSISTANT_HOME (database, settings, models)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    for name in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # no test may reach or use the real Hub cache
    return home


@pytest.fixture(scope="session")
def model_path():
    return embedded_model_path()


_runtimes: dict = {}


@pytest.fixture(scope="session")
def runtime_factory(model_path):
    """Real runtimes on the embedded model, one per context size, shared by the session."""
    from assistant.engine.runtime import ModelRuntime
    from assistant.types import LoadOptions

    def make(n_ctx: int = 2048):
        if n_ctx not in _runtimes:
            _runtimes[n_ctx] = ModelRuntime(model_path, LoadOptions(n_ctx=n_ctx, n_threads=2))
        return _runtimes[n_ctx]

    yield make
    for rt in _runtimes.values():
        rt.close()
    _runtimes.clear()


@pytest.fixture
def runtime(runtime_factory):
    return runtime_factory(2048)
