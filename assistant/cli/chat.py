"""`assistant ask`, `assistant chat` and `assistant info`: a model in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from assistant.cli.common import (
    load_runtime,
    load_settings,
    lora_options,
    model_options,
    sampling_from,
    sampling_options,
    stream_to_stdout,
)
from assistant.errors import AssistantError, InvalidInputError, MessageTooLongError
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
    lora_options(ask)
    sampling_options(ask)
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--json", action="store_true", help="print one JSON object with the reply")
    doc_option(ask)
    ask.add_argument("prompt", nargs="+", help="the prompt ('-' reads it from stdin)")
    ask.set_defaults(run=run_ask)

    chat = sub.add_parser("chat", help="interactive chat (reads one message per line from a pipe)")
    model_options(chat)
    lora_options(chat)
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
    doc_option(chat)
    chat.add_argument(
        "--exact-slide",
        action="store_true",
        help="when older turns leave the window, read the rest again instead of shifting the "
        "model's cache (exact, slower on long conversations)",
    )
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
    documents = read_documents(args.doc)  # a bad file is reported before the model loads
    session = ChatSession(
        load_runtime(settings),
        Store(":memory:"),
        system_prompt=args.system if args.system is not None else settings.system_prompt,
        sampling=sampling_from(args, settings),
    )
    attach_documents(session, documents)
    stream_to_stdout(session.send(prompt), args.json)
    return 0


def run_chat(args) -> int:
    from assistant.engine.state_cache import saved_states

    settings = load_settings(args)
    documents = read_documents(args.doc)
    runtime = load_runtime(settings)
    runtime.use_saved_states(saved_states(settings.kv_cache_mb))
    try:
        chat = _Chat(args, settings, runtime)
        attach_documents(chat.session, documents)
        return _chat_loop(chat)
    finally:
        runtime.close()  # keeps the conversation's cache for next time (saved states)


def _chat_loop(chat: _Chat) -> int:
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
            hint = ""
            if isinstance(exc, MessageTooLongError) and not chat.args.truncate:
                hint = " Or restart with --truncate to shorten it in the middle."
            print(f"error: {exc}{hint}", file=sys.stderr, flush=True)
    return 0


def doc_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--doc",
        action="append",
        default=[],
        metavar="FILE",
        help="a document to answer from (.txt, .md, .html, .pdf, .docx; repeatable): sent whole "
        "when it fits the window, else its passages most relevant to each question",
    )


def read_documents(paths: list[str]) -> list:
    from assistant.documents.readers import load_document

    return [load_document(path) for path in paths]


def attach_documents(session, documents: list) -> None:
    """Index the documents into the session's conversation, with a progress bar on stderr."""
    from tqdm import tqdm

    from assistant.conversation.attachments import attach
    from assistant.conversation.passage_index import find_document

    for doc in documents:
        known = find_document(session.store, session.conversation_id, doc.name, doc.text)
        if known is not None:  # a conversation resumed with the same --doc: indexed already
            _say(f"[{known.name}: already in this conversation, {known.passages} passages]")
            continue
        with tqdm(
            total=len(doc.text),
            unit="char",
            unit_scale=True,
            desc=f"Indexing {doc.name}",
            file=sys.stderr,
            disable=None,
            leave=False,
        ) as bar:

            def progress(p, bar=bar) -> None:
                bar.update(p.done_chars - bar.n)

            info = attach(
                session.store,
                session.runtime,
                session.conversation_id,
                doc.name,
                doc.text,
                retitle=True,
                progress=progress,
            )
        _say(f"[{info.name}: {info.tokens:,} tokens in {info.passages} passages]")


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
        self.settings = settings
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
            exact_slide=self.settings.exact_slide,
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
