"""Reply grammars: a JSON schema (or any JSON) as llama.cpp GBNF text for `ModelRuntime.stream`.

The schema comes from outside (a request to the local server), so it is checked before the
converter sees it: its size, its nesting and every repetition count it asks for are bounded
(`minItems: 1000000000` or a regular expression `a{1000000000}` would make the converter build
a grammar of gigabytes), and whatever the converter cannot handle is one InvalidInputError.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from assistant.errors import InvalidInputError

MAX_SCHEMA_CHARS = 32_000
MAX_DEPTH = 32
MAX_REPEAT = 256  # minItems, maxItems, minLength, maxLength, and {n,m} inside a pattern
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_PATTERN_BRACES = re.compile(r"\{([^}]*)\}")  # every {…}, read as the converter reads it


def any_json_grammar() -> str:
    """Any JSON value: `response_format: {"type": "json_object"}`."""
    return JSON_GBNF


def schema_grammar(schema: Any, where: str = "schema") -> str:
    """GBNF for replies that are JSON documents of `schema` (a parsed JSON schema).

    InvalidInputError names `where` and the reason when the schema is too large, too deep,
    asks for too many repetitions, or uses what the converter does not support."""
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{where} must be a JSON object (a JSON schema).")
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidInputError(
            f"{where} is {len(text)} characters; at most {MAX_SCHEMA_CHARS} are accepted."
        )
    _check_bounds(schema, where, 0)
    try:
        return json_schema_to_gbnf(text)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError) as exc:
        raise InvalidInputError(
            f"{where} cannot be turned into a grammar: {str(exc).rstrip('.')}."
        ) from None
    except RecursionError:
        raise InvalidInputError(f"{where} refers to itself too deeply.") from None


def _check_bounds(node: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInputError(f"{where} is nested more than {MAX_DEPTH} levels deep.")
    if isinstance(node, list):
        for item in node:
            _check_bounds(item, where, depth + 1)
        return
    if not isinstance(node, dict):
        return
    for key in _COUNTS:
        value = node.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{where}: {key} must be a whole number of 0 or more.")
        if value > MAX_REPEAT:
            raise InvalidInputError(
                f"{where}: {key} {value} is too large for a reply grammar (at most {MAX_REPEAT})."
            )
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        for body in _PATTERN_BRACES.findall(pattern):  # {n}, {n,}, {,m}, {n,m}, {1_000}
            for part in body.split(","):
                try:
                    count = int(part) if part.strip() else 0
                except ValueError:
                    continue  # not a count: a literal brace, which the converter checks
                if count > MAX_REPEAT:
                    raise InvalidInputError(
                        f"{where}: the pattern repeats something more than {MAX_REPEAT} times."
                    )
    for value in node.values():
        _check_bounds(value, where, depth + 1)
