"""The `assistant` command: no arguments opens the desktop app; subcommands work in a terminal.

Each command group is a module that registers its own sub-parser with `register(subparsers)`:
`chat` (ask, chat, info), `summarize`, `models`, `convert`, `history`, `serve`, `cache`; `app` opens
the window.
Errors are `AssistantError`s, printed here as one line with exit code 1.
"""

from __future__ import annotations

import argparse
import sys

from assistant.cli import cache, chat, convert, history, models, serve, summarize
from assistant.errors import AssistantError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from assistant.cli.app import open_desktop

        return open_desktop(args)
    try:
        return args.run(args)
    except AssistantError as exc:
        print(f"error: {exc}{_terminal_hint(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _terminal_hint(exc: AssistantError) -> str:
    """What only a terminal user can do about an error (the app offers its own way)."""
    from assistant.library.hub_errors import HubConnectionError

    if isinstance(exc, HubConnectionError):
        return " To stop reaching for the Hub, set HF_HUB_OFFLINE=1."
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Offline chat assistant. With no command it opens the desktop app.",
    )
    parser.add_argument(
        "--model", help="GGUF model file (default: settings, else the embedded model)"
    )
    parser.set_defaults(command=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # the order `--help` lists them
    for group in (chat, summarize, models, convert, history, serve, cache):
        group.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
