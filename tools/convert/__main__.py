"""`python -m tools.convert SRC --out OUT.gguf …`: the same command as `assistant convert`.

Standalone on purpose: tools/ uses the core's errors, never the `assistant` command itself.
"""

import argparse
import sys

from assistant.errors import AssistantError
from tools.convert.cli import DESCRIPTION, add_convert_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.convert", description=DESCRIPTION)
    add_convert_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except AssistantError as exc:  # one line, no traceback, as `assistant convert` prints it
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
