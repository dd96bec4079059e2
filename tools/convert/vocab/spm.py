"""SentencePiece `tokenizer.model` → llama.cpp's 'llama' vocabulary (pieces, scores, types).

The processor from `sentencepiece` loads and validates the file and is the reference encoder;
the few settings its API does not expose (the model type, the dummy-prefix and whitespace
options) are read from the serialized protobuf with a minimal wire-format reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import ConversionError

from .model import BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, Vocab

_PIECE_TYPES = {1: NORMAL, 2: UNKNOWN, 3: CONTROL, 4: USER_DEFINED, 5: UNUSED, 6: BYTE}
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one protobuf message; nested messages stay bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _settings(proto: bytes) -> dict[str, object]:
    out: dict[str, object] = {
        "model_type": "unigram",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": True,
        "types": [],
    }
    types: list[int] = []
    for number, value in proto_fields(proto):
        if number == 1 and isinstance(value, bytes):  # SentencePiece
            kind = 1
            for n, v in proto_fields(value):
                if n == 3 and isinstance(v, int):
                    kind = v
            types.append(_PIECE_TYPES.get(kind, NORMAL))
        elif number == 2 and isinstance(value, bytes):  # TrainerSpec
            for n, v in proto_fields(value):
                if n == 3 and isinstance(v, int):
                    out["model_type"] = _MODEL_TYPES.get(v, str(v))
        elif number == 3 and isinstance(value, bytes):  # NormalizerSpec
            for n, v in proto_fields(value):
                if n == 3:
                    out["add_dummy_prefix"] = bool(v)
                elif n == 4:
                    out["remove_extra_whitespaces"] = bool(v)
    out["types"] = types
    return out


def load_sentencepiece(path: Path) -> Vocab:
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor()
    try:
        sp.LoadFromFile(str(path))
    except (OSError, RuntimeError) as exc:
        raise ConversionError(f"{path} is not a valid SentencePiece model ({exc}).") from None
    try:
        settings = _settings(sp.serialized_model_proto())
    except (ValueError, IndexError, struct.error):
        raise ConversionError(f"{path} is not a valid SentencePiece model.") from None
    n = sp.vocab_size()
    tokens = [sp.IdToPiece(i) for i in range(n)]
    scores = [float(sp.GetScore(i)) for i in range(n)]
    types = list(settings["types"])  # type: ignore[arg-type]
    if len(types) != n:
        raise ConversionError(f"{path} is not a valid SentencePiece model.")
    special = {
        kind: token_id
        for kind, token_id in (
            ("bos", sp.bos_id()),
            ("eos", sp.eos_id()),
            ("unk", sp.unk_id()),
            ("pad", sp.pad_id()),
        )
        if token_id >= 0
    }
    notes = []
    if settings["model_type"] != "bpe":
        notes.append(
            f"{path.name} is a {settings['model_type']} SentencePiece model; llama.cpp "
            "tokenizes like a BPE one, so some texts may split differently (see --verify)."
        )
    if settings["remove_extra_whitespaces"]:
        notes.append(
            f"{path.name} collapses runs of whitespace; llama.cpp keeps them, so texts with "
            "repeated spaces may tokenize differently."
        )
    return Vocab(
        model="llama",
        pre="default",
        tokens=tokens,
        scores=scores,
        types=types,
        source=str(path),
        special=special,
        add_bos=True,
        add_eos=False,
        add_space_prefix=bool(settings["add_dummy_prefix"]),
        encoder=lambda text: list(sp.encode(text)),
        notes=notes,
    )
