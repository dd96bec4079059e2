"""`assistant cache`: the conversations' saved KV caches (what makes reopening a chat instant):
list them with their size, or clear them."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="list or clear the conversations' saved model caches")
    csub = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = csub.add_parser("list", help="saved caches, most recently used first, and the total")
    listing.add_argument("--json", action="store_true")
    csub.add_parser("clear", help="remove every saved cache")
    cache.set_defaults(run=run_cache)


def run_cache(args: argparse.Namespace) -> int:
    from assistant import paths
    from assistant.cli.common import load_saved_settings
    from assistant.engine.state_cache import StateCache
    from assistant.library.sizes import format_bytes

    # built even with saving off (budget 0): what was saved before can still be listed, cleared
    states = StateCache(paths.kv_states_dir(), load_saved_settings().kv_cache_mb * 1024**2)
    if args.action == "clear":
        freed = states.clear()
        print(f"Removed the saved caches ({format_bytes(freed)}).")
        return 0
    entries = sorted(states.entries(), key=lambda e: e.used, reverse=True)
    total = sum(e.bytes for e in entries)
    if args.json:
        print(
            json.dumps(
                {
                    "folder": str(states.folder),
                    "total_bytes": total,
                    "budget_bytes": states.budget,
                    "entries": [e.__dict__ for e in entries],
                }
            )
        )
        return 0
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))
        print(f"{format_bytes(e.bytes):>10}  {e.tokens:>7} tokens  {used}  {e.label}")
    budget = format_bytes(states.budget) if states.budget else "saving off"
    print(f"{len(entries)} saved, {format_bytes(total)} of {budget} · {states.folder}")
    return 0
