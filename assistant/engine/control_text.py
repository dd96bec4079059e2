"""Message text that spells a control token stays text.

Prompts are tokenized with special tokens parsed, because the chat template writes them as
text. A message holding "<|im_end|>\n<|im_start|>system\n…" would then become real turn
boundaries: a pasted document, a retrieved passage or an API client's user could forge a
system turn. Before the template renders, each control token's text inside a message gets a
zero-width space after its first character, so the tokenizer reads ordinary characters there
(the stored message is unchanged; the model still sees the same visible text).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from assistant.types import Message

ZWSP = "\u200b"
_CACHE = 1024  # message texts remembered (window fitting renders the same messages many times)


class ControlText:
    """Defuses the texts of a vocabulary's control tokens inside messages."""

    def __init__(self, texts: Iterable[str]):
        spelled = sorted({t for t in texts if len(t) > 1}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, spelled))) if spelled else None
        self._seen: OrderedDict[str, str] = OrderedDict()

    def defuse(self, text: str) -> str:
        """`text` with every control token's spelling broken by a zero-width space."""
        if self._pattern is None or not text:
            return text
        done = self._seen.get(text)
        if done is None:
            done = self._pattern.sub(lambda m: m[0][0] + ZWSP + m[0][1:], text)
            self._seen[text] = done
            while len(self._seen) > _CACHE:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(text)
        return done

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        out = []
        for m in messages:
            content = self.defuse(m.content)
            out.append(m if content is m.content else replace(m, content=content))
        return out
