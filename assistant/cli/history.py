"""`assistant history`: list, show, export, import or delete stored conversations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.cli.common import write_atomically
from assistant.errors import InvalidInputError


def register(sub: argparse._SubParsersAction) -> None:
    history = sub.add_parser("history", help="list, show, export, import or delete conversations")
    hsub = history.add_subparsers(dest="action", metavar="ACTION", required=True)
    hl = hsub.add_parser("list", help="conversations, newest first")
    hl.add_argument("--search", help="only those whose title or text contains this")
    hl.add_argument("--json", action="store_true")
    hs = hsub.add_parser("show", help="print a conversation")
    hs.add_argument("id", type=int)
    he = hsub.add_parser("export", help="export a conversation")
    he.add_argument("id", type=int)
    he.add_argument("--format", choices=["md", "json"], default="md")
    he.add_argument("--out", help="write to this file instead of stdout")
    hi = hsub.add_parser("import", help="import a conversation exported as JSON")
    hi.add_argument("file")
    hd = hsub.add_parser("delete", help="delete a conversation")
    hd.add_argument("id", type=int)
    history.set_defaults(run=run_history)


def run_history(args: argparse.Namespace) -> int:
    from assistant.conversation.store import Store

    store = Store()
    if store.notice:  # e.g. an empty database file started afresh
        print(store.notice, file=sys.stderr)
    action = {
        "list": _list,
        "show": _show,
        "export": _export,
        "import": _import,
        "delete": _delete,
    }[args.action]
    action(store, args)
    return 0


def _list(store, args: argparse.Namespace) -> None:
    convs = store.list_conversations(args.search)
    if not args.json:
        for c in convs:
            print(f"{c.id:5}  {c.updated_at[:19].replace('T', ' ')}  {c.title}")
        return
    counts = store.message_counts()  # one query, not one per conversation
    rows = [
        {"id": c.id, "title": c.title, "updated_at": c.updated_at, "messages": counts.get(c.id, 0)}
        for c in convs
    ]
    print(json.dumps(rows))


def _show(store, args: argparse.Namespace) -> None:
    from assistant.conversation.transfer import export_markdown

    print(export_markdown(store, args.id))


def _export(store, args: argparse.Namespace) -> None:
    from assistant.conversation.transfer import export_json, export_markdown

    if args.format == "json":
        text = json.dumps(export_json(store, args.id), ensure_ascii=False, indent=2)
    else:
        text = export_markdown(store, args.id)
    if args.out:
        write_atomically(Path(args.out), text)
    else:
        print(text)


def _import(store, args: argparse.Namespace) -> None:
    from assistant.conversation.transfer import import_json

    path = Path(args.file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror}.") from None
    except RecursionError:  # json gives up on arrays or objects nested thousands deep
        raise InvalidInputError(f"{path} is not valid JSON (nested too deeply).") from None
    except ValueError:
        raise InvalidInputError(f"{path} is not valid JSON.") from None
    conv = import_json(store, data, source=str(path))
    print(f"imported as conversation {conv.id}: {conv.title}")


def _delete(store, args: argparse.Namespace) -> None:
    store.delete_conversation(args.id)
    print(f"deleted conversation {args.id}")
