"""Messages to prompt text with the model's own chat template (Jinja, from the GGUF).

The template is code from the model file: it runs in a bounded sandbox (`template_sandbox`) and
every way it can fail (a syntax error, an error while rendering, too many steps, too much time,
an output too large, an empty prompt) is a `ChatFormatError` naming the model and the problem.
`JinjaChatFormat.probe()` renders a small conversation once, when the model is loaded, so a
broken template is refused then. The plain transcript is used for models without a template,
or when the user chooses it (`--chat-format plain`, the `chat_format` setting).
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistant.engine.template_sandbox import BoundedTemplate, TemplateProblem, raise_exception
from assistant.errors import ChatFormatError
from assistant.types import ASSISTANT, SYSTEM, USER, Message

FALLBACK_NAME = "fallback: plain transcript (the model has no chat template)"
CHOSEN_PLAIN_NAME = "plain transcript (chosen instead of the model's chat template)"
CHAT_FORMATS = ("model", "plain")  # LoadOptions.chat_format, the setting and --chat-format
PROBE = (
    Message(SYSTEM, "You are a helpful assistant."),
    Message(USER, "Hello!"),
    Message(ASSISTANT, "Hello! How can I help you today?"),
    Message(USER, "What is 2 + 2?"),
)


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
    """The model's `tokenizer.chat_template`, rendered in a bounded Jinja sandbox.

    Raises ChatFormatError naming `model` when the template does not compile (here) or fails
    to render (`render`, `probe`)."""

    def __init__(
        self, template: str, *, bos_token: str, eos_token: str, model: str = "", name: str = ""
    ):
        self.name = name or "model chat template (tokenizer.chat_template)"
        self.model = model or "the model"
        self._bos, self._eos = bos_token, eos_token
        self.stop_strings = (eos_token,) if eos_token else ()
        self._merge_system = False
        try:
            self._template = BoundedTemplate(template)
        except TemplateProblem as exc:
            raise self._error(exc) from None

    def probe(self) -> None:
        """Render a short conversation: ChatFormatError when the template fails on it, yields
        an empty prompt, or leaves the messages out."""
        text = self.render(PROBE)
        if PROBE[-1].content not in text:
            raise ChatFormatError(
                f"The chat template of {self.model} leaves the messages out of the prompt."
            )

    def _render(self, messages: Sequence[Message]) -> str:
        if self._merge_system:
            messages = merge_system_into_first_user(messages)
        try:
            text = self._template.render(
                sum(len(m.content) for m in messages),
                len(messages),
                messages=[m.as_llama() for m in messages],
                bos_token=self._bos,
                eos_token=self._eos,
                add_generation_prompt=True,
                raise_exception=raise_exception,
                strftime_now=Jinja2ChatFormatter.strftime_now,
                functions=None,
                function_call=None,
                tools=None,
                tool_choice=None,
            )
        except TemplateProblem as exc:
            # Some templates (Gemma, Mistral v1) refuse a system role: fold it into the first
            # user message, as their authors recommend, and remember to do so from now on.
            if exc.retry and not self._merge_system and any(m.role == SYSTEM for m in messages):
                self._merge_system = True
                try:
                    return self._render(messages)
                except ChatFormatError:
                    self._merge_system = False
            raise self._error(exc) from None
        if not text.strip():
            raise ChatFormatError(f"The chat template of {self.model} produced an empty prompt.")
        return text

    def _error(self, problem: TemplateProblem) -> ChatFormatError:
        return ChatFormatError(f"The chat template of {self.model} failed: {problem}.")


class PlainChatFormat(ChatFormat):
    """Clearly named fallback for models that ship no chat template (or when chosen)."""

    stop_strings = ("\nUser:",)

    def __init__(self, name: str = FALLBACK_NAME):
        self.name = name

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
