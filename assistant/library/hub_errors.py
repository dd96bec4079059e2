"""Errors about the Hugging Face Hub and downloads, each a sentence the user can act on."""

from __future__ import annotations

from assistant.errors import AssistantError


class HubError(AssistantError):
    """The Hub could not answer what was asked."""


class RepoNotFoundError(HubError):
    """The repository does not exist (or is private)."""


class RemoteFileNotFoundError(HubError):
    """The repository exists but not the file or quantization asked for."""


class GatedRepoError(HubError):
    """The repository needs its licence accepted on the Hub and a token."""


class HubConnectionError(HubError):
    """The Hub cannot be reached."""


class OfflineModeError(HubError):
    """HF_HUB_OFFLINE is set and the request needs a connection."""


class ChecksumError(HubError):
    """A downloaded file does not match the checksum the Hub published; it was deleted."""


class DownloadCancelledError(HubError):
    """The user cancelled a download; what was received is kept for resuming."""


class DiskSpaceError(HubError):
    """Not enough free disk space for a download or an import."""


class UnsafeResponseError(HubError):
    """The Hub (or a mirror) sent a name, size or body that cannot be used safely; refused."""
