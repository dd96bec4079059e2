"""Where user state lives: one folder, overridable with ASSISTANT_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "offline-assistant"
HOME_ENV = "ASSISTANT_HOME"


def home() -> Path:
    """The folder that holds the database, settings and imported models (created on demand)."""
    override = os.environ.get(HOME_ENV)
    path = Path(override).expanduser() if override else platformdirs.user_data_path(APP_NAME, False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    return home() / "conversations.sqlite3"


def settings_path() -> Path:
    return home() / "settings.json"


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Caches that can be thrown away (saved KV states): under ASSISTANT_HOME when it is set,
    the platform's cache folder otherwise (created on demand)."""
    override = os.environ.get(HOME_ENV)
    if override:
        path = Path(override).expanduser() / "cache"
    else:
        path = platformdirs.user_cache_path(APP_NAME, False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def kv_states_dir() -> Path:
    return cache_dir() / "kv-states"
