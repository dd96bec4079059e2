"""`assistant convert`: the checkpoint converter in tools/convert, registered here because only
the cli package may import tools/ (its parser is light: the converter loads when it runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from tools.convert.cli import add_convert_parser

    add_convert_parser(sub)
