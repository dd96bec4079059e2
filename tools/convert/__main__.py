"""`python -m tools.convert SRC --out OUT.gguf …`: the same command as `assistant convert`."""

from __future__ import annotations

import argparse
import sys

from assistant.errors import AssistantError

from .cli import add_convert_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.convert")
    sub = parser.add_subparsers(dest="command")
    add_convert_parser(sub)
    args = parser.parse_args(["convert", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.run(args)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
