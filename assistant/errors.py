"""The errors the core raises: each message is meant for the user, who can act on it."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: str(error) is a complete, user-facing sentence."""


class ModelLoadError(AssistantError):
    """A model file could not be loaded; the message names the file and the reason."""


class LoadCancelledError(ModelLoadError):
    """Loading was stopped by the user (closing the app, or choosing another model)."""


class ContextOverflowError(AssistantError):
    """What must be sent does not fit the context window."""

    def __init__(self, message: str, *, needed: int | None = None, limit: int | None = None):
        super().__init__(message)
        self.needed = needed
        self.limit = limit


class MessageTooLongError(ContextOverflowError):
    """A single message is larger than the whole window can hold."""


class ContextFullError(ContextOverflowError):
    """The conversation filled the window under the 'stop at limit' policy."""


class ChatFormatError(AssistantError):
    """The model's chat template failed on a conversation; the message names the model and why."""


class GenerationError(AssistantError):
    """llama.cpp failed while evaluating or sampling."""


class StoreError(AssistantError):
    """The conversation database could not be read or written."""


class NotFoundError(StoreError):
    """A conversation or message id does not exist."""


class InvalidInputError(AssistantError):
    """A file or value given by the user cannot be used."""


class OutOfRangeError(InvalidInputError):
    """A number outside its valid range, or not a number at all; `field` names the option."""

    def __init__(self, message: str, *, field: str, value: object):
        super().__init__(message)
        self.field = field
        self.value = value


class ConversionError(AssistantError):
    """A checkpoint could not be converted to GGUF."""
