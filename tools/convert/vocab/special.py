"""Special tokens, add_bos/add_eos and the chat template from the Hugging Face side files.

Order of precedence: tokenizer_config.json, then special_tokens_map.json, then what the
tokenizer file itself says, then the ids in config.json. The chat template comes from
--chat-template, tokenizer_config.json or chat_template.jinja (newer transformers).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from ..json_files import read_json
from .model import Vocab

_KINDS = {"bos": "bos_token", "eos": "eos_token", "unk": "unk_token", "pad": "pad_token"}


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConversionError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ConversionError(f"{path} is not UTF-8 text.") from None


def _content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _template(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # [{"name": "default", "template": "..."}, ...]
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default") or next(iter(named.values()), None)
    return None


def apply_side_files(
    vocab: Vocab, folders: list[Path], config: dict[str, Any], chat_template: Path | None
) -> Vocab:
    tok_config: dict[str, Any] = {}
    special_map: dict[str, Any] = {}
    template_file: Path | None = None
    for folder in folders:
        tok_config = tok_config or _json(folder / "tokenizer_config.json")
        special_map = special_map or _json(folder / "special_tokens_map.json")
        if template_file is None and (folder / "chat_template.jinja").is_file():
            template_file = folder / "chat_template.jinja"
    lookup = {t: i for i, t in enumerate(vocab.tokens)}
    special = dict(vocab.special)
    for kind in ("bos", "eos", "unk", "pad"):
        if kind not in special and isinstance(config.get(f"{kind}_token_id"), int):
            special[kind] = config[f"{kind}_token_id"]
    for source in (special_map, tok_config):
        for kind, key in _KINDS.items():
            text = _content(source.get(key))
            if text is not None and text in lookup:
                special[kind] = lookup[text]
    add_bos, add_eos = vocab.add_bos, vocab.add_eos
    if isinstance(tok_config.get("add_bos_token"), bool):
        add_bos = tok_config["add_bos_token"]
    if isinstance(tok_config.get("add_eos_token"), bool):
        add_eos = tok_config["add_eos_token"]
    template = vocab.chat_template or _template(tok_config.get("chat_template"))
    if template is None and template_file is not None:
        template = _text(template_file)
    if chat_template is not None:
        template = _text(chat_template)
    return replace(
        vocab, special=special, add_bos=add_bos, add_eos=add_eos, chat_template=template or None
    )
