"""`assistant models ...`: the library, the catalog, the Hub, fit estimates.

`assistant.cli` registers it with `register(sub)`; errors are AssistantError, printed by
`assistant.cli.main` without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from assistant.cli.common import load_saved_settings, number_arg, number_option
from assistant.errors import InvalidInputError
from assistant.library.sizes import format_bytes, format_params

if TYPE_CHECKING:  # the header reader loads gguf and numpy: only when a command needs it
    from assistant.library.gguf_header import GGUFInfo


def register(subparsers) -> None:
    add_models_parser(subparsers)


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    models = subparsers.add_parser("models", help="list, find, download, import and size models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="models ready to use (or the catalog, with --catalog)")
    p.add_argument("--catalog", action="store_true", help="the recommended models instead")
    p.add_argument("--all", action="store_true", help="also files that cannot be used, and why")
    number_option(p, "n_ctx", "context size for the fit column (default: settings)")
    _json(p)

    p = sub.add_parser("search", help="search the Hugging Face Hub for GGUF repositories")
    p.add_argument("text", nargs="+")
    number_option(p, "search_limit", "most repositories shown (default 20)")
    _json(p)

    p = sub.add_parser("files", help="a repository's GGUF models with size and quantization")
    p.add_argument("repo", help="OWNER/NAME or a catalog id")
    p.add_argument("--revision", default="main")
    _json(p)

    p = sub.add_parser("pull", help="download a model (resumes an interrupted download)")
    p.add_argument("repo", help="OWNER/NAME or a catalog id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quant", help="quantization, e.g. Q4_K_M (default: the recommended one)")
    which.add_argument("--file", help="exact file name in the repository")
    p.add_argument("--revision", default="main")
    _json(p)

    p = sub.add_parser("info", help="metadata from a model's GGUF header")
    p.add_argument("model", help="library id, file name or path")
    _json(p)

    p = sub.add_parser("fit", help="will it run here: memory estimate and GPU layers")
    p.add_argument("model", help="library id or path, catalog id, or OWNER/NAME on the Hub")
    number_option(p, "n_ctx", "context size (default: settings)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quant", help="for a catalog id or a Hub repository")
    which.add_argument("--file", help="for a Hub repository")
    _json(p)

    p = sub.add_parser("import", help="copy (or link) a GGUF file into the library")
    p.add_argument("path")
    p.add_argument("--link", action="store_true", help="link to the file instead of copying it")
    _json(p)

    p = sub.add_parser("remove", help="delete a model from the library")
    p.add_argument("id")
    _json(p)

    models.set_defaults(run=run_models)
    return models


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_models(args) -> int:
    return COMMANDS[args.models_command](args)


# -- helpers ------------------------------------------------------------------------------------
def _emit(args, data: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str))
    else:
        for line in lines:
            print(line)


def _default_ctx(args) -> int:
    """--ctx, checked like everywhere (assistant.types.RANGES), else the saved setting."""
    ctx = number_arg(args, "ctx", "n_ctx")
    return ctx if ctx is not None else load_saved_settings().n_ctx


# -- commands -----------------------------------------------------------------------------------
def cmd_list(args) -> int:
    if args.catalog:
        return _list_catalog(args)
    from assistant.library import fit, hub
    from assistant.library import local as library
    from assistant.library.memory import detect_memory

    ctx = _default_ctx(args)
    models = library.list_models(include_unusable=args.all)
    memory = detect_memory()
    rows, data = [], []
    for m in models:
        verdict = fit.fit(m.info, ctx, memory) if m.usable and m.info else None
        item = m.to_dict()
        item["fit"] = verdict.to_dict() if verdict else None
        data.append(item)
        q = m.info.quantization if m.info else "-"
        label = verdict.label if verdict else f"unusable: {m.problem}"
        rows.append(f"{m.id:60} {m.kind:10} {q:8} {format_bytes(m.size):>9}  {label}")
    lines = [f"{'ID':60} {'KIND':10} {'QUANT':8} {'SIZE':>9}  FIT AT {ctx} TOKENS", *rows]
    if hub.is_offline():
        lines.append(
            "offline mode (HF_HUB_OFFLINE): these work offline; search, files and "
            "pull need a connection."
        )
    _emit(args, data, lines)
    return 0


def _list_catalog(args) -> int:
    from assistant.library import fit
    from assistant.library.catalog import load_catalog
    from assistant.library.hub_cache import cached_models
    from assistant.library.memory import detect_memory

    ctx = _default_ctx(args)
    memory = detect_memory()
    downloaded = {c.repo.lower(): c for c in cached_models()}
    data, lines = [], [f"{'ID':26} {'PARAMS':>6} {'SIZE':>9} {'LICENCE':14} FIT AT {ctx} TOKENS"]
    for e in load_catalog():
        verdict = fit.fit(e.approximate_info(), ctx, memory)
        have = "embedded" if e.embedded else ("downloaded" if e.repo.lower() in downloaded else "")
        item = e.to_dict()
        item.update(fit=verdict.to_dict(), status=have)
        data.append(item)
        lines.append(
            f"{e.id:26} {format_params(e.parameters):>6} "
            f"{format_bytes(e.file_for().size_bytes):>9} {e.license:14} {verdict.label}"
            f"{'  [' + have + ']' if have else ''}"
        )
        lines.append(f"{'':26} {e.description}")
    _emit(args, data, lines)
    return 0


def cmd_search(args) -> int:
    from assistant.library import hub

    limit = number_arg(args, "limit", "search_limit")
    found = hub.search(" ".join(args.text), limit=20 if limit is None else limit)
    lines = [
        f"{r.id:60} {r.downloads:>10} downloads{'  (gated)' if r.gated else ''}" for r in found
    ] or ["no GGUF repository matches"]
    _emit(args, [r.to_dict() for r in found], lines)
    return 0


def _repo_and_quant(text: str, quant: str | None) -> tuple[str, str]:
    from assistant.library.catalog import find_entry

    entry = find_entry(text)
    if entry is None:
        if text.count("/") != 1:
            raise InvalidInputError(
                f"{text!r} is neither a catalog id nor a repository "
                f"OWNER/NAME; see `assistant models list --catalog`."
            )
        return text, "Q4_K_M"
    if entry.embedded:
        raise InvalidInputError(f"{entry.name} is the embedded model: it is already installed.")
    return entry.repo, entry.default_quant


def cmd_files(args) -> int:
    from assistant.library import hub

    repo, _ = _repo_and_quant(args.repo, None)
    models = hub.list_gguf_files(repo, args.revision)
    lines = [
        f"{m.quant or '?':10} {format_bytes(m.size):>9}  {m.name}"
        f"{f'  ({len(m.files)} shards)' if len(m.files) > 1 else ''}"
        f"{'  (vision projector)' if m.is_projector else ''}"
        for m in models
    ]
    _emit(args, [m.to_dict() for m in models], lines or [f"{repo} has no GGUF files"])
    return 0


def cmd_pull(args) -> int:
    from assistant.library.download import download

    repo, default_quant = _repo_and_quant(args.repo, args.quant)
    bar = _ProgressBar()
    cancel = threading.Event()
    try:
        result = download(
            repo,
            quant=args.quant,
            filename=args.file,
            revision=args.revision,
            progress=bar.update,
            cancel=cancel,
            default_quant=default_quant,
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted: {format_bytes(bar.done)} kept; run the same pull to resume.",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
    model_id = f"{result.repo}/{result.files[0].name}"
    state = "already downloaded" if result.already_present else "downloaded"
    check = "checksum verified" if result.verified else "no checksum published; size checked"
    _emit(
        args,
        {
            "id": model_id,
            "path": str(result.path),
            "size": result.size,
            "verified": result.verified,
            "already_present": result.already_present,
            "resumed_from": result.resumed_from,
        },
        [f"{state}: {model_id} ({format_bytes(result.size)}, {check})", f"path: {result.path}"],
    )
    return 0


class _ProgressBar:
    """tqdm on stderr, driven by download.Progress (bytes, speed and time left)."""

    def __init__(self):
        self._bar = None
        self.done = 0

    def update(self, p) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=p.total,
                initial=p.done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                desc=p.filename[-40:],
                dynamic_ncols=True,
                mininterval=0.25,
            )
        self._bar.set_description_str(p.filename[-40:], refresh=False)
        self._bar.update(p.done - self.done)
        self.done = p.done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def cmd_info(args) -> int:
    from assistant.errors import ModelLoadError
    from assistant.library import local as library

    model = library.resolve(args.model, include_unusable=True)
    if model.info is None:
        raise ModelLoadError(model.problem)
    summary = {"id": model.id, "kind": model.kind, **model.info.summary()}
    _emit(args, summary, [f"{k:16} {v}" for k, v in summary.items()])
    return 0


def cmd_fit(args) -> int:
    from assistant.library import fit

    ctx = _default_ctx(args)  # a bad --ctx is refused before the model is looked up
    info = _info_for_fit(args)
    verdict = fit.fit(info, ctx)
    e = verdict.estimate

    def b(n: int) -> str:
        return format_bytes(n, binary=True)

    rows = [
        ("weights", e.weights_cpu, e.weights_gpu),
        ("KV cache", e.kv_cpu, e.kv_gpu),
        ("compute", e.compute_cpu, e.compute_gpu),
        ("total", e.ram_bytes, e.vram_bytes),
    ]
    lines = [verdict.message, "", f"{'':10} {'RAM':>10} {'GPU':>10}"]
    lines += [f"{name:10} {b(ram):>10} {b(gpu):>10}" for name, ram, gpu in rows]
    _emit(args, {"model": info.path, **verdict.to_dict()}, lines)
    return 0


def _info_for_fit(args) -> GGUFInfo:
    from assistant.library import hub
    from assistant.library import local as library
    from assistant.library.catalog import find_entry

    try:
        model = library.resolve(args.model, include_unusable=True)
    except InvalidInputError:
        model = None
    if model is not None and not (args.quant or args.file):
        if model.info is None:
            from assistant.errors import ModelLoadError

            raise ModelLoadError(model.problem)
        return model.info
    entry = find_entry(args.model)
    if entry is not None and not args.file:
        return entry.approximate_info(args.quant)
    if args.model.count("/") != 1:
        raise InvalidInputError(
            f"No model {args.model!r} in the library, the catalog or as a "
            f"file; a Hub repository is written OWNER/NAME."
        )
    repo = entry.repo if entry else args.model
    chosen = hub.choose(hub.list_gguf_files(repo), repo, args.quant, args.file)
    return hub.remote_gguf_info(chosen)


def cmd_import(args) -> int:
    from assistant.library import local as library

    bar = None
    if not args.link:
        from tqdm import tqdm

        bar = tqdm(
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            desc="copying",
            disable=None,
        )

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        model = library.import_model(args.path, link=args.link, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    verb = "linked" if args.link else "imported"
    _emit(args, model.to_dict(), [f"{verb}: {model.id} ({format_bytes(model.size)})"])
    return 0


def cmd_remove(args) -> int:
    from assistant.library import local as library

    text = library.remove(args.id)
    _emit(args, {"removed": args.id, "message": text}, [text])
    return 0


COMMANDS = {
    "list": cmd_list,
    "search": cmd_search,
    "files": cmd_files,
    "pull": cmd_pull,
    "info": cmd_info,
    "fit": cmd_fit,
    "import": cmd_import,
    "remove": cmd_remove,
}
