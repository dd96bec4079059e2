"""`python -m tools.convert SRC --out OUT.gguf …`: the same command as `assistant convert`."""

import sys

from assistant.cli import main

sys.exit(main(["convert", *sys.argv[1:]]))
