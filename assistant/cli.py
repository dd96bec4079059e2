"""The `assistant` command: no arguments opens the desktop app; subcommands work in a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from .errors import AssistantError, InvalidInputError
from .types import Policy, SamplingOptions

CHAT_HELP = """commands:
  /new             start a new conversation (same system prompt and policy)
  /system [TEXT]   show or set the system prompt
  /policy [P]      show or set the context policy: drop, summarize or stop
  /stats           statistics and context use of the last reply
  /continue        continue the last reply (after it stopped for length)
  /regen           regenerate the last reply
  /exit            quit (Ctrl-D works too)"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return open_desktop(args)
    try:
        return args.run(args)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description=("Offline chat assistant. With no command it opens the desktop app."),
    )
    parser.add_argument(
        "--model", help="GGUF model file (default: settings, else the embedded model)"
    )
    parser.set_defaults(command=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="answer one prompt, streaming to stdout")
    _model_options(ask)
    _sampling_options(ask)
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--json", action="store_true", help="print one JSON object with the reply")
    ask.add_argument("prompt", nargs="+", help="the prompt ('-' reads it from stdin)")
    ask.set_defaults(run=run_ask)

    chat = sub.add_parser("chat", help="interactive chat (reads one message per line from a pipe)")
    _model_options(chat)
    _sampling_options(chat)
    chat.add_argument("--system", help="system prompt for a new conversation")
    chat.add_argument(
        "--policy",
        choices=[p.value for p in Policy],
        help="what happens when the context window is full (default: drop)",
    )
    chat.add_argument("--conversation", type=int, help="continue a stored conversation by id")
    chat.add_argument(
        "--truncate",
        action="store_true",
        help="shorten a message too long for the window in the middle, with a marker",
    )
    chat.add_argument("--json", action="store_true", help="print one JSON object per reply")
    chat.set_defaults(run=run_chat)

    info = sub.add_parser("info", help="show a model's metadata")
    _model_options(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)

    from .model_cli import add_models_parser
    from .summarize_cli import add_summarize_parser

    add_summarize_parser(sub, _model_options)
    add_models_parser(sub)
    from tools.convert.cli import add_convert_parser

    add_convert_parser(sub)

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
    return parser


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=argparse.SUPPRESS, help="GGUF model file")
    p.add_argument("--ctx", type=int, help="context window in tokens (default: settings, 4096)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--batch", type=int, help="prompt batch size in tokens (default 512)")
    p.add_argument(
        "--gpu-layers",
        type=_gpu_layers,
        help="layers on the GPU: N, all, or auto (default: as many as fit)",
    )
    p.add_argument("--flash-attn", action="store_true", default=None, help="flash attention")


def _gpu_layers(value: str) -> int:
    from .fit import AUTO

    if value.strip().lower() == "auto":
        return AUTO
    if value.strip().lower() in {"all", "-1", "max"}:
        return -1
    try:
        layers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of layers, 'all' or 'auto'") from None
    if layers < 0:
        raise argparse.ArgumentTypeError("expected a number of layers, 'all' or 'auto'")
    return layers


def _sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=int, help="longest reply in tokens")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repeat-penalty", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", help="stop string (repeatable)")


# -- shared set-up ------------------------------------------------------------------------------
def _settings(args):
    from .settings import Settings

    settings = Settings.load()
    if getattr(args, "model", None):
        path = Path(args.model).expanduser()
        # a file given relative to the current folder is remembered absolutely; ids stay ids
        settings.model = str(path.resolve()) if path.exists() else args.model
    for attr, key in (
        ("ctx", "n_ctx"),
        ("threads", "n_threads"),
        ("batch", "n_batch"),
        ("gpu_layers", "n_gpu_layers"),
        ("flash_attn", "flash_attn"),
    ):
        if getattr(args, attr, None) is not None:
            setattr(settings, key, getattr(args, attr))
    return settings


def _sampling(args, settings) -> SamplingOptions:
    sampling = settings.sampling_options()
    overrides = {
        k: getattr(args, k)
        for k in ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")
        if getattr(args, k, None) is not None
    }
    if getattr(args, "stop", None):
        overrides["stop"] = tuple(args.stop)
    return replace(sampling, **overrides)


def _runtime(settings):
    """Load the model with the automatic GPU fit and the out-of-memory fallbacks."""
    from .fit import load_with_fallback

    runtime, choice = load_with_fallback(settings.model_path(), settings.load_options())
    if choice.attempts or "reinstall" in choice.message:
        print(f"[{choice.message}]", file=sys.stderr)
    return runtime


def _stream_to_stdout(reply, as_json: bool) -> None:
    try:
        for piece in reply:
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    except KeyboardInterrupt:
        reply.close()  # saved, marked cancelled
    result = reply.result
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
    else:
        print(flush=True)
        if result.notice:
            print(f"[{result.notice}]", file=sys.stderr, flush=True)


# -- commands ------------------------------------------------------------------------------------
def run_ask(args) -> int:
    from .chat import ChatSession
    from .store import Store

    prompt = sys.stdin.read() if args.prompt == ["-"] else " ".join(args.prompt)
    settings = _settings(args)
    session = ChatSession(
        _runtime(settings),
        Store(":memory:"),
        system_prompt=args.system if args.system is not None else settings.system_prompt,
        sampling=_sampling(args, settings),
    )
    _stream_to_stdout(session.send(prompt), args.json)
    return 0


def run_chat(args) -> int:
    from .chat import ChatSession
    from .store import Store

    settings = _settings(args)
    runtime = _runtime(settings)
    store = Store()
    interactive = sys.stdin.isatty()
    system = (
        args.system
        if args.system is not None
        else (None if args.conversation else settings.system_prompt)
    )
    policy = args.policy or (None if args.conversation else settings.policy)
    sampling = _sampling(args, settings)

    def new_session(conversation=None, system=system, policy=policy):
        return ChatSession(
            runtime,
            store,
            conversation,
            system_prompt=system,
            policy=policy,
            sampling=sampling,
            truncate_oversize=args.truncate,
        )

    session = new_session(args.conversation)
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        conv = session.conversation
        print(
            f"{runtime.info.name} · {runtime.info.quantization} · {runtime.info.runs_on} · "
            f"conversation {conv.id} · /help for commands",
            file=sys.stderr,
        )
    last = None
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if not interactive:
            if line == "":
                break
            line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            if line.startswith("/"):
                command, _, rest = line[1:].partition(" ")
                if command in {"exit", "quit"}:
                    break
                if command == "new":
                    conv = session.conversation
                    session = new_session(None, conv.system_prompt, conv.policy)
                    _say(f"new conversation {session.conversation_id}", args.json)
                elif command == "system":
                    if rest:
                        session.set_system_prompt(rest)
                    _say(
                        f"system prompt: {session.conversation.system_prompt or '(model default)'}",
                        args.json,
                    )
                elif command == "policy":
                    if rest:
                        session.set_policy(rest.strip())
                    _say(f"context policy: {session.policy.value}", args.json)
                elif command == "stats":
                    _say(json.dumps(last.to_json() if last else {}, ensure_ascii=False), args.json)
                elif command in {"continue", "regen"}:
                    reply = (
                        session.continue_reply() if command == "continue" else session.regenerate()
                    )
                    _stream_to_stdout(reply, args.json)
                    last = reply.result
                elif command == "help":
                    _say(CHAT_HELP, args.json)
                else:
                    raise InvalidInputError(f"Unknown command /{command}; /help lists them.")
                continue
            reply = session.send(line)
            _stream_to_stdout(reply, args.json)
            last = reply.result
        except AssistantError as exc:  # the chat stays up; the conversation is kept
            print(f"error: {exc}", file=sys.stderr, flush=True)
    return 0


def _say(text: str, as_json: bool) -> None:
    """Command feedback goes to stderr so stdout stays replies only (one JSON per reply)."""
    print(text, file=sys.stderr, flush=True)


def run_info(args) -> int:
    settings = _settings(args)
    info = _runtime(settings).info
    summary = info.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print(f"{key:16} {value}")
    return 0


def run_history(args) -> int:
    from .store import Store

    store = Store()
    if args.action == "list":
        convs = store.list_conversations(args.search)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": c.id,
                            "title": c.title,
                            "updated_at": c.updated_at,
                            "messages": len(store.messages(c.id)),
                        }
                        for c in convs
                    ]
                )
            )
        for c in convs if not args.json else ():
            print(f"{c.id:5}  {c.updated_at[:19].replace('T', ' ')}  {c.title}")
    elif args.action == "show":
        print(store.export_markdown(args.id))
    elif args.action == "export":
        if args.format == "json":
            text = json.dumps(store.export_json(args.id), ensure_ascii=False, indent=2)
        else:
            text = store.export_markdown(args.id)
        if args.out:
            _write_atomically(Path(args.out), text)
        else:
            print(text)
    elif args.action == "import":
        path = Path(args.file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInputError(f"Cannot read {path}: {exc.strerror}.") from None
        except ValueError:
            raise InvalidInputError(f"{path} is not valid JSON.") from None
        conv = store.import_json(data, source=str(path))
        print(f"imported as conversation {conv.id}: {conv.title}")
    elif args.action == "delete":
        store.delete_conversation(args.id)
        print(f"deleted conversation {args.id}")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInputError(f"Cannot write {path}: {exc.strerror}.") from None


def open_desktop(args) -> int:
    try:
        from ui.app import run_app
    except ImportError as exc:
        print(
            f"error: the desktop app is unavailable ({exc}); try `assistant chat`.", file=sys.stderr
        )
        return 1
    return run_app(model=getattr(args, "model", None))


if __name__ == "__main__":
    sys.exit(main())
