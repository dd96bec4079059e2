"""`assistant serve`: the local OpenAI-compatible server on the loaded model."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from assistant.cli.common import (
    load_runtime,
    load_settings,
    lora_options,
    model_options,
    sampling_from,
    sampling_options,
)
from assistant.errors import InvalidInputError
from assistant.types import Policy

API_KEY_ENV = "ASSISTANT_API_KEY"
PORT_MAX = 65535


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible HTTP API",
        description="Serve the model over an OpenAI-compatible API (/v1/chat/completions, "
        "/v1/completions, /v1/models). Long conversations are fitted to the context window "
        "with --policy instead of being refused.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", default="8080", metavar="N", help="port (default 8080; 0: any free)")
    model_options(p)
    lora_options(p)
    p.add_argument(
        "--policy",
        choices=[x.value for x in Policy],
        help="when a conversation outgrows the window: drop or summarize older turns, or "
        "stop (refuse); default: settings (drop)",
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' on every request (or set {API_KEY_ENV})",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser requests from this origin, e.g. http://localhost:3000 (repeatable)",
    )
    p.add_argument(
        "--queue", default="8", metavar="N", help="requests that may wait for the model (default 8)"
    )
    sampling_options(p)
    p.set_defaults(run=run_serve)


def _port(text: str, name: str, low: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not low <= value <= PORT_MAX:
        raise InvalidInputError(f"{name} {text} is not a whole number from {low} to {PORT_MAX}.")
    return value


def run_serve(args) -> int:
    from assistant.server.app import ServerConfig
    from assistant.server.gate import Gate
    from assistant.server.runner import LocalServer, bind
    from assistant.server.security import is_loopback
    from assistant.server.windows import ConversationWindows

    port = _port(args.port, "--port", 0)
    queue = _port(args.queue, "--queue", 1)
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV, "")
    settings = load_settings(args)
    sampling = sampling_from(args, settings)
    policy = Policy.parse(args.policy or settings.policy)
    _access_log_to_stderr()
    sock = bind(args.host, port)  # a port in use is refused before the model loads
    try:
        runtime = load_runtime(settings)
    except BaseException:
        sock.close()
        raise
    from assistant.engine.state_cache import saved_states

    # each client conversation's cache is saved when another one takes the model, and restored
    runtime.use_saved_states(saved_states(settings.kv_cache_mb))
    gate = Gate(runtime, max_waiting=queue)
    config = ServerConfig(
        host=args.host,
        port=port,
        api_key=api_key,
        cors_origins=tuple(args.cors_origin),
        sampling=sampling,
    )
    server = LocalServer(
        gate,
        ConversationWindows(policy),
        config,
        sock=sock,  # bound before the model loaded: a port in use was said at once
        on_started=lambda url: print(f"Serving {url}", flush=True),
    )
    if not is_loopback(args.host) and not api_key:
        print(
            f"warning: listening on {args.host} without an API key: anyone who can reach this "
            "computer can use the model. Set --api-key (or ASSISTANT_API_KEY).",
            file=sys.stderr,
            flush=True,
        )
    gate.start()
    try:
        server.serve()
    finally:
        gate.close()
        runtime.close()
    return 0


def _access_log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("assistant.server.access", "assistant.server.gate"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
