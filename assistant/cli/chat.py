"""`assistant ask`, `assistant chat` and `assistant info`: a model in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from assistant.cli.common import (
    load_runtime,
    load_settings,
    model_options,
    sampling_from,
    sampling_options,
    stream_to_stdout,
)
from assistant.errors import AssistantError, InvalidInputError
from assistant.types import Policy

CHAT_HELP = """commands:
  /new             start a new conversation (same system prompt and policy)
  /system [TEXT]   show or set the system prompt
  /policy [P]      show or set the context policy: drop, summarize or stop
  /stats           statistics and context use of the last reply
  /continue        continue the last reply (after it stopped for length)
  /regen           regenerate the last reply
  /exit            quit (Ctrl-D works too)"""


def register(sub: argparse._SubParsersAction) -> None:
    ask = sub.add_parser("ask", help="answer one prompt, streaming to stdout")
    model_options(ask)
    sampling_options(ask)
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--json", action="store_true", help="print one JSON object with the reply")
    ask.add_argument("prompt", nargs="+", help="the prompt ('-' reads it from stdin)")
    ask.set_defaults(run=run_ask)

    chat = sub.add_parser("chat", help="interactive chat (reads one message per line from a pipe)")
    model_options(chat)
    sampling_options(chat)
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
    model_options(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)


def run_ask(args) -> int:
    from assistant.conversation.session import ChatSession
    from assistant.conversation.store import Store

    prompt = sys.stdin.read() if args.prompt == ["-"] else " ".join(args.prompt)
    settings = load_settings(args)
    session = ChatSession(
        load_runtime(settings),
        Store(":memory:"),
        system_prompt=args.system if args.system is not None else settings.system_prompt,
        sampling=sampling_from(args, settings),
    )
    stream_to_stdout(session.send(prompt), args.json)
    return 0


def run_chat(args) -> int:
    settings = load_settings(args)
    chat = _Chat(args, settings, load_runtime(settings))
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        chat.greet()
    for line in _lines(interactive):
        try:
            if not line.startswith("/"):
                chat.show(chat.session.send(line))
            elif not chat.command(line):
                break
        except AssistantError as exc:  # the chat stays up; the conversation is kept
            print(f"error: {exc}", file=sys.stderr, flush=True)
    return 0


def _lines(interactive: bool) -> Iterator[str]:
    """Non-blank input lines, typed at a prompt (Ctrl-C clears the line) or read from a pipe."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if not interactive:
            if line == "":
                return
            line = line.rstrip("\r\n")
        if line.strip():
            yield line


class _Chat:
    """One terminal chat: the current session, the last reply, and the slash commands."""

    def __init__(self, args: argparse.Namespace, settings, runtime) -> None:
        from assistant.conversation.store import Store

        self.args, self.runtime, self.store = args, runtime, Store()
        if self.store.notice:  # e.g. an empty database file started afresh
            print(self.store.notice, file=sys.stderr, flush=True)
        self.sampling = sampling_from(args, settings)
        self.last = None  # the last reply's result, for /stats
        resumed = bool(args.conversation)  # a stored conversation keeps its prompt and policy
        system = (
            args.system
            if args.system is not None
            else (None if resumed else settings.system_prompt)
        )
        policy = args.policy or (None if resumed else settings.policy)
        self.session = self._new_session(args.conversation, system, policy)

    def _new_session(self, conversation: int | None, system: str | None, policy):
        from assistant.conversation.session import ChatSession

        return ChatSession(
            self.runtime,
            self.store,
            conversation,
            system_prompt=system,
            policy=policy,
            sampling=self.sampling,
            truncate_oversize=self.args.truncate,
        )

    def greet(self) -> None:
        info, conv = self.runtime.info, self.session.conversation
        print(
            f"{info.name} · {info.quantization} · {info.runs_on} · "
            f"conversation {conv.id} · /help for commands",
            file=sys.stderr,
        )

    def show(self, reply) -> None:
        stream_to_stdout(reply, self.args.json)
        self.last = reply.result

    def command(self, line: str) -> bool:
        """Run one slash command; False when it ends the chat."""
        command, _, rest = line[1:].partition(" ")
        session = self.session
        if command in {"exit", "quit"}:
            return False
        if command == "new":
            conv = session.conversation
            self.session = self._new_session(None, conv.system_prompt, conv.policy)
            _say(f"new conversation {self.session.conversation_id}")
        elif command == "system":
            if rest:
                session.set_system_prompt(rest)
            _say(f"system prompt: {session.conversation.system_prompt or '(model default)'}")
        elif command == "policy":
            if rest:
                session.set_policy(rest.strip())
            _say(f"context policy: {session.policy.value}")
        elif command == "stats":
            _say(json.dumps(self.last.to_json() if self.last else {}, ensure_ascii=False))
        elif command in {"continue", "regen"}:
            self.show(session.continue_reply() if command == "continue" else session.regenerate())
        elif command == "help":
            _say(CHAT_HELP)
        else:
            raise InvalidInputError(f"Unknown command /{command}; /help lists them.")
        return True


def _say(text: str) -> None:
    """Command feedback goes to stderr so stdout stays replies only (one JSON per reply)."""
    print(text, file=sys.stderr, flush=True)


def run_info(args) -> int:
    settings = load_settings(args)
    info = load_runtime(settings).info
    summary = info.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print(f"{key:16} {value}")
    return 0
