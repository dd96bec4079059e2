"""Offline chat assistant core: model runtime, chat manager, conversation store. No Qt here."""

__version__ = "0.1.0"
