"""A local stand-in for the Hugging Face Hub, enough of its HTTP API for huggingface_hub's client.

Serves model search (`/api/models`), repository info with file sizes and LFS checksums
(`/api/models/REPO[/revision/REV]`, `?blobs=true`), the file tree, and files through
`/REPO/resolve/REV/FILE`. As on the real Hub, a large (LFS) file's HEAD/GET answers 302 with
X-Linked-Etag (its SHA-256), X-Linked-Size and X-Repo-Commit and sends the bytes from another
host (`localhost` instead of `127.0.0.1`, so the client treats it as a CDN); small files are
served directly with their git blob id as ETag. The CDN honours Range requests.

Faults for tests: `drop_once[name] = n` closes the connection after n bytes of the next GET of
that file; `corrupt.add(name)` serves different bytes of the right size; a gated repository
answers 401 GatedRepo without an Authorization header. `requests` records what was asked.

Hostile modes (tests/test_hostile_hub.py): `linked_etag[name]` is sent as the file's
X-Linked-Etag, `commit` as every X-Repo-Commit, `declared_size[name]` as its size in the
listing and X-Linked-Size (the CDN still sends the real bytes); `no_length` sends a CDN body
without Content-Length, ended by closing the connection; `trickle[name] = s` sends the body one
byte every s seconds; `stall[name] = n` goes silent after n bytes of the body (-1: before the
headers); `stall_info` makes the repository listing go silent. File names in the listing are
whatever `add_repo` was given (`../x.gguf`, `/abs/x.gguf`). Silent handlers wait until `stop`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".gguf", ".bin", ".safetensors")


@dataclass
class FakeFile:
    name: str
    source: bytes | Path
    size: int
    sha256: str
    git_oid: str

    @property
    def lfs(self) -> bool:
        return self.name.endswith(LFS_SUFFIXES)

    def read(self, start: int, end: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[start:end]
        with self.source.open("rb") as handle:
            handle.seek(start)
            return handle.read(end - start)


@dataclass
class FakeRepo:
    id: str
    files: dict[str, FakeFile]
    gated: bool = False
    downloads: int = 0
    tags: tuple[str, ...] = ("gguf",)

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.id.encode()).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_once: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    ignore_range: bool = False
    # hostile modes
    linked_etag: dict[str, str] = field(default_factory=dict)
    commit: str | None = None
    declared_size: dict[str, int] = field(default_factory=dict)
    no_length: set[str] = field(default_factory=set)
    trickle: dict[str, float] = field(default_factory=dict)
    stall: dict[str, int] = field(default_factory=dict)
    stall_info: bool = False
    closing: threading.Event = field(default_factory=threading.Event)

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | Path],
        *,
        gated: bool = False,
        downloads: int = 0,
        sha256: dict[str, str] | None = None,
    ) -> FakeRepo:
        entries = {}
        for name, source in files.items():
            data_sha = (sha256 or {}).get(name) or _sha256(source)
            size = len(source) if isinstance(source, bytes) else source.stat().st_size
            oid = hashlib.sha1(f"blob {size}\0{data_sha}".encode()).hexdigest()
            entries[name] = FakeFile(name, source, size, data_sha, oid)
        repo = FakeRepo(repo_id, entries, gated, downloads)
        self.repos[repo_id] = repo
        return repo

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()  # releases stalled and trickling handlers
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gets(self, name: str) -> list[Request]:
        """The GETs of the CDN for one file (the actual byte transfers)."""
        sha = next(
            f.sha256 for r in self.repos.values() for f in r.files.values() if f.name == name
        )
        return [r for r in self.requests if r.method == "GET" and r.path == f"/cdn/{sha}"]

    def size_of(self, f: FakeFile) -> int:
        """The size the Hub declares for a file (a lie in `declared_size` mode)."""
        return self.declared_size.get(f.name, f.size)

    def find_by_sha(self, sha: str) -> FakeFile | None:
        for repo in self.repos.values():
            for f in repo.files.values():
                if f.sha256 == sha:
                    return f
        return None


def _sha256(source: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # -- routing ---------------------------------------------------------------------------------
    def _route(self, head: bool) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        self.hub.requests.append(
            Request(
                self.command,
                path,
                self.headers.get("Range"),
                bool(self.headers.get("Authorization")),
            )
        )
        if path == "/api/models":
            return self._search(query)
        if m := _TREE.match(path):
            return self._tree(m["repo"], m["rev"], m["path"] or "")
        if m := _INFO.match(path):
            return self._info(m["repo"], m["rev"] or "main", query)
        if m := _RESOLVE.match(path):
            return self._resolve(m["repo"], m["rev"], m["file"], head)
        if path.startswith("/cdn/"):
            return self._cdn(path.removeprefix("/cdn/"), head)
        self._error(404, "NotFound", "Not found")

    def _repo(self, repo_id: str, rev: str) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if rev not in {"main", repo.sha}:
            self._error(404, "RevisionNotFound", "Invalid rev id", commit=None)
            return None
        return repo

    # -- API -------------------------------------------------------------------------------------
    def _search(self, query: dict) -> None:
        text = (query.get("search") or [""])[0].lower()
        wanted = set(query.get("filter") or [])
        found = [
            r for r in self.hub.repos.values() if text in r.id.lower() and wanted <= set(r.tags)
        ]
        found.sort(key=lambda r: -r.downloads)
        limit = int((query.get("limit") or ["1000"])[0])
        self._json(
            [
                {
                    "id": r.id,
                    "modelId": r.id,
                    "downloads": r.downloads,
                    "likes": 1,
                    "tags": list(r.tags),
                    "private": False,
                    "gated": "manual" if r.gated else False,
                    "createdAt": "2024-09-18T00:00:00.000Z",
                }
                for r in found[:limit]
            ]
        )

    def _info(self, repo_id: str, rev: str, query: dict) -> None:
        repo = self._repo(repo_id, rev)
        if repo is None:
            return
        if self.hub.stall_info:
            self.hub.closing.wait(60)
            return
        blobs = (query.get("blobs") or ["false"])[0] == "true"
        siblings = []
        for f in repo.files.values():
            entry: dict = {"rfilename": f.name}
            size = self.hub.size_of(f)
            if blobs:
                entry.update(size=size, blobId=f.git_oid)
                if f.lfs:
                    entry["lfs"] = {"size": size, "sha256": f.sha256, "pointerSize": 134}
            siblings.append(entry)
        self._json(
            {
                "id": repo.id,
                "modelId": repo.id,
                "sha": self.hub.commit or repo.sha,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "tags": list(repo.tags),
                "downloads": repo.downloads,
                "likes": 1,
                "siblings": siblings,
                "lastModified": "2024-09-18T00:00:00.000Z",
            }
        )

    def _tree(self, repo_id: str, rev: str, prefix: str) -> None:
        repo = self._repo(repo_id, rev)
        if repo is None:
            return
        items = []
        for f in repo.files.values():
            if prefix and not f.name.startswith(prefix.rstrip("/") + "/"):
                continue
            size = self.hub.size_of(f)
            item = {"type": "file", "oid": f.git_oid, "size": size, "path": f.name}
            if f.lfs:
                item["lfs"] = {"oid": f.sha256, "size": size, "pointerSize": 134}
            items.append(item)
        self._json(items)

    # -- files -----------------------------------------------------------------------------------
    def _resolve(self, repo_id: str, rev: str, name: str, head: bool) -> None:
        repo = self._repo(repo_id, rev)
        if repo is None:
            return
        if repo.gated and not self.headers.get("Authorization"):
            return self._error(
                401,
                "GatedRepo",
                f"Access to model {repo.id} is restricted. "
                "You must have access to it and be authenticated to access it.",
            )
        f = repo.files.get(name)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found", commit=repo.sha)
        if f.lfs:
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.hub.port}/cdn/{f.sha256}")
            etag = self.hub.linked_etag.get(f.name, f.sha256)
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(self.hub.size_of(f)))
            self.send_header("ETag", f'"{f.git_oid}"')
            self.send_header("X-Repo-Commit", self.hub.commit or repo.sha)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        commit = self.hub.commit or repo.sha
        self._send_file(f, head, extra={"X-Repo-Commit": commit, "ETag": f'"{f.git_oid}"'})

    def _cdn(self, sha: str, head: bool) -> None:
        f = self.hub.find_by_sha(sha)
        if f is None:
            return self._error(404, "NotFound", "No such blob")
        self._send_file(f, head, extra={"ETag": f'"{sha}"'})

    def _send_file(self, f: FakeFile, head: bool, extra: dict[str, str]) -> None:
        stall = self.hub.stall.get(f.name) if not head else None
        if stall == -1:  # silent before the status line
            self.hub.closing.wait(60)
            return
        start, end = 0, f.size
        wanted = None if self.hub.ignore_range else self.headers.get("Range")
        if wanted and (m := re.match(r"bytes=(\d+)-(\d*)$", wanted)):
            start = int(m[1])
            end = min(f.size, int(m[2]) + 1) if m[2] else f.size
            if start >= f.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{f.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        else:
            self.send_response(200)
        if f.name in self.hub.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if head:
            return
        if stall is not None or f.name in self.hub.trickle:
            return self._send_slowly(f, start, end, stall)
        drop_after = self.hub.drop_once.pop(f.name, None)
        pos = start
        while pos < end:
            block = f.read(pos, min(end, pos + (1 << 20)))
            if f.name in self.hub.corrupt:
                block = bytes(b ^ 0xFF for b in block[:16]) + block[16:]
            if drop_after is not None and pos + len(block) - start >= drop_after:
                self.wfile.write(block[: max(0, drop_after - (pos - start))])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(block)
            pos += len(block)

    def _send_slowly(self, f: FakeFile, start: int, end: int, stall: int | None) -> None:
        """One byte at a time (`trickle`), or n bytes and then silence (`stall`)."""
        interval = self.hub.trickle.get(f.name, 0.0)
        try:
            for pos in range(start, end):
                if stall is not None and pos - start >= stall:
                    self.hub.closing.wait(60)
                    return
                self.wfile.write(f.read(pos, pos + 1))
                self.wfile.flush()
                if interval and self.hub.closing.wait(interval):
                    return
        except OSError:  # the client gave up
            self.close_connection = True

    # -- helpers ---------------------------------------------------------------------------------
    def _json(self, data) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# -- small real GGUF models to serve and to size ------------------------------------------------
@dataclass(frozen=True)
class Shape:
    n_layers: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_vocab: int = 256
    n_ctx: int = 512


def write_model_gguf(
    path: Path,
    shape: Shape = Shape(),
    *,
    tied: bool = False,
    chat_template: bool = True,
    name: str = "Tiny Test Model",
    split_max_tensors: int = 0,
) -> Path:
    """A llama-shaped GGUF: F16 matrices, F32 norms, zero weights (sizes are what matter)."""
    import gguf
    import numpy as np

    s = shape
    kv_dim = s.n_embd // s.n_head * s.n_head_kv
    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_block_count(s.n_layers)
    writer.add_context_length(s.n_ctx)
    writer.add_embedding_length(s.n_embd)
    writer.add_feed_forward_length(s.n_ff)
    writer.add_head_count(s.n_head)
    writer.add_head_count_kv(s.n_head_kv)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_token_list([f"t{i}" for i in range(s.n_vocab)])
    if chat_template:
        writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")

    def matrix(rows: int, cols: int):
        return np.zeros((rows, cols), dtype=np.float16)

    writer.add_tensor("token_embd.weight", matrix(s.n_vocab, s.n_embd))
    for i in range(s.n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.zeros(s.n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", matrix(s.n_embd, s.n_embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", matrix(kv_dim, s.n_embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", matrix(kv_dim, s.n_embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", matrix(s.n_embd, s.n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.zeros(s.n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", matrix(s.n_ff, s.n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", matrix(s.n_ff, s.n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", matrix(s.n_embd, s.n_ff))
    writer.add_tensor("output_norm.weight", np.zeros(s.n_embd, dtype=np.float32))
    if not tied:
        writer.add_tensor("output.weight", matrix(s.n_vocab, s.n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        return path.with_name(f"{path.stem}-00001-of-{_count(path):05d}.gguf")
    return path


def _count(path: Path) -> int:
    return len(list(path.parent.glob(f"{path.stem}-*-of-*.gguf")))
