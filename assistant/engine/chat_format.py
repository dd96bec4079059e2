"""Messages to prompt text with the model's own chat template (Jinja, from the GGUF)."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import TemplateError
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistant.types import ASSISTANT, SYSTEM, USER, Message

FALLBACK_NAME = "fallback: plain transcript (the model has no chat template)"


class ChatFormat:
    """Renders a conversation ending with a user message (plus a generation prompt).

    A conversation ending with an assistant message is a continuation: everything before it is
    rendered with the generation prompt and the partial reply is appended as is.
    """

    name: str = ""
    stop_strings: tuple[str, ...] = ()

    def render(self, messages: Sequence[Message]) -> str:
        if messages and messages[-1].role == ASSISTANT:
            return self._render(messages[:-1]) + messages[-1].content
        return self._render(messages)

    def _render(self, messages: Sequence[Message]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class JinjaChatFormat(ChatFormat):
    """The model's `tokenizer.chat_template`, rendered in llama-cpp-python's Jinja sandbox."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str, name: str = ""):
        self.name = name or "model chat template (tokenizer.chat_template)"
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos_token, bos_token=bos_token, add_generation_prompt=True
        )
        self.stop_strings = (eos_token,) if eos_token else ()
        self._merge_system = False

    def _render(self, messages: Sequence[Message]) -> str:
        if self._merge_system:
            messages = merge_system_into_first_user(messages)
        try:
            return self._formatter(messages=[m.as_llama() for m in messages]).prompt
        except (TemplateError, ValueError):
            # Some templates (Gemma, Mistral v1) refuse a system role: fold it into the first
            # user message, as their authors recommend, and remember to do so from now on.
            if self._merge_system or not any(m.role == SYSTEM for m in messages):
                raise
            self._merge_system = True
            return self._render(messages)


class PlainChatFormat(ChatFormat):
    """Clearly named fallback for models that ship no chat template."""

    name = FALLBACK_NAME
    stop_strings = ("\nUser:",)

    def _render(self, messages: Sequence[Message]) -> str:
        labels = {SYSTEM: "System", USER: "User", ASSISTANT: "Assistant"}
        parts = [f"{labels.get(m.role, m.role.title())}: {m.content}" for m in messages]
        return "\n\n".join(parts) + "\n\nAssistant:"


def merge_system_into_first_user(messages: Sequence[Message]) -> list[Message]:
    system = "\n\n".join(m.content for m in messages if m.role == SYSTEM)
    rest = [m for m in messages if m.role != SYSTEM]
    if system and rest and rest[0].role == USER:
        rest[0] = Message(USER, f"{system}\n\n{rest[0].content}")
    elif system:
        rest.insert(0, Message(USER, system))
    return rest
