"""`assistant summarize FILE|-`: a progress bar on stderr, the summary on stdout."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from assistant.cli.common import (
    load_runtime,
    load_settings,
    model_options,
    number_arg,
    number_option,
)
from assistant.documents.options import LENGTHS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summarize", help="summarize a document of any length (file or - for stdin)")
    model_options(p)
    p.add_argument("file", help="a .txt, .md, .html, .pdf or .docx file, or - to read stdin")
    p.add_argument("--length", choices=list(LENGTHS), default="medium")
    p.add_argument("--bullets", action="store_true", help="bullet points instead of prose")
    p.add_argument("--focus", help="a question the summary should pay attention to")
    p.add_argument(
        "--language", help="write the summary in this language (default: the document's)"
    )
    number_option(p, "chunk_tokens", "largest piece read in one model call (default 4096)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print {summary, chunks, levels, source_tokens, seconds, sources}",
    )
    p.set_defaults(run=run_summarize)


def run_summarize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from assistant.documents.options import SummaryOptions
    from assistant.documents.readers import from_text, load_document
    from assistant.documents.summarizer import Summarizer

    settings = load_settings(args)  # every number is checked before the document is read
    chunk_tokens = number_arg(args, "chunk_tokens")
    if args.file == "-":
        doc = from_text(sys.stdin.read(), "standard input")
    else:
        doc = load_document(args.file)
    options = SummaryOptions(
        length=args.length,
        bullets=args.bullets,
        focus=args.focus,
        language=args.language,
        **({"chunk_tokens": chunk_tokens} if chunk_tokens is not None else {}),
    )
    runtime = load_runtime(settings)
    bar = tqdm(
        total=1,
        unit="step",
        desc=f"Summarizing {doc.name}",
        file=sys.stderr,
        disable=None,
        leave=False,
    )

    def progress(p) -> None:
        bar.total = p.total
        bar.n = p.done
        bar.set_postfix_str(f"{p.stage}, {p.tokens_processed}/{p.source_tokens} tokens read")

    cancel = threading.Event()
    summarizer = Summarizer(runtime, options, progress, cancel)
    box: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["result"] = summarizer.summarize(doc.text)
        except BaseException as exc:  # handed to the main thread, which reports it
            box["error"] = exc
        finally:
            done.set()

    # Wait on an Event, not Thread.join: on Python < 3.13 a Ctrl-C that interrupts join() can
    # mark a thread finished while it still runs, and the partial result would be lost.
    threading.Thread(target=work, name="summarize", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:  # Ctrl-C: stop between tokens and print what we have
        cancel.set()
        done.wait()  # a second Ctrl-C gives up (exit code 130)
    finally:
        bar.close()
    if "error" in box:
        raise box["error"]
    result = box["result"]
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        if result.summary.strip():
            print(result.summary)
        partial = "; PARTIAL: cancelled" if result.partial else ""
        if result.partial and not result.summary.strip():
            partial = "; cancelled before the first part was summarized: no summary yet"
        print(
            f"[{result.source_tokens} tokens in {result.chunks} chunk(s), {result.levels} "
            f"level(s), {result.seconds:.1f} s{partial}]",
            file=sys.stderr,
        )
    return 0
