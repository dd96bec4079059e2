"""A model's name for people: the GGUF's `general.name` without the training tags that
converters leave in it ("Smollm2 135M 8k Lc100K Mix1 Ep2" is "Smollm2 135M"), else the file
name. The catalog's name, when the file is one of its models, comes first
(`catalog.display_name`)."""

from __future__ import annotations

import re
from pathlib import Path

# Words that describe a training run rather than the model: epochs, steps, data mixes,
# long-context stages, checkpoints, learning rates, batch sizes, context sizes ("8k").
_TRAINING_TAG = re.compile(
    r"^(?:ep(?:och)?\d+|step\d+k?|iter\d+k?|mix\d+|lc\d+k?|ckpt\d*|checkpoint\d*|run\d+"
    r"|seed\d+|lr[\d.e-]+|bs\d+|\d+k)$",
    re.IGNORECASE,
)


def clean_model_name(general_name: str, path: str | Path) -> str:
    """`general_name` with trailing training tags removed; the file's stem when it is empty."""
    words = general_name.split()
    while len(words) > 1 and _TRAINING_TAG.match(words[-1]):
        words.pop()
    return " ".join(words) or Path(path).stem
