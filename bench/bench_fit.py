"""Estimated vs measured memory after loading a model on the CPU, printed as measured/estimated.

Each context size runs in a fresh process. RSS is read from /proc/self/status before the load
(llama_cpp and numpy already imported), after the load, after a short generation, and after a
full 512-token prompt batch (the largest compute graph). The weights are memory-mapped: their
pages count in RSS (as RssFile) only once read, which the generation does for every layer; the
KV cache is cleared at load, so it is resident at once; the compute buffer is touched as the
graph runs, and llama-cpp-python computes logits for the last token only, so the logits part
of the buffer (sized for a whole batch, as llama.cpp reserves it) is never all resident. The
estimate is `assistant.library.fit.estimate(...)`: what llama.cpp allocates, an upper bound for RSS.
Linux only. Usage: python bench/bench_fit.py [--model PATH] [--ctx 2048 4096 8192] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1 << 20


def status() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "RssAnon", "RssFile"}:
            values[key] = int(rest.split()[0]) * 1024
    return values


def child(model: str, n_ctx: int, threads: int) -> dict:
    import llama_cpp  # noqa: F401  (its libraries count before the load, not in the delta)
    import numpy  # noqa: F401

    from assistant.engine.runtime import ModelRuntime
    from assistant.library.fit import estimate
    from assistant.library.gguf_header import read_gguf_info
    from assistant.types import LoadOptions, Message, SamplingOptions

    info = read_gguf_info(model)
    est = estimate(info, n_ctx)
    before = status()
    rt = ModelRuntime(model, LoadOptions(n_ctx=n_ctx, n_threads=threads), header=info)
    loaded = status()
    sampling = SamplingOptions(temperature=0.0, max_tokens=16, seed=1)
    rt.complete([Message("user", "Name three colours.")], sampling)
    generated = status()
    long_prompt = rt.tokenize("the quick brown fox jumps over the lazy dog " * 60)[:520]
    rt.complete(long_prompt, SamplingOptions(temperature=0.0, max_tokens=2, seed=1))
    batch = status()
    rt.close()

    def delta(after: dict, key: str = "VmRSS") -> int:
        return after[key] - before[key]

    return {
        "n_ctx": n_ctx,
        "estimate": est.to_dict(),
        "rss_after_load": delta(loaded),
        "rss_after_generation": delta(generated),
        "rss_after_batch": delta(batch),
        "anon_after_batch": delta(batch, "RssAnon"),
        "file_after_batch": delta(batch, "RssFile"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="GGUF file (default: the embedded model)")
    parser.add_argument("--ctx", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        from assistant.library.embedded import embedded_model_path

        args.model = str(embedded_model_path())
    if args.child:
        print(json.dumps(child(args.model, args.ctx[0], args.threads)))
        return
    print(f"model: {Path(args.model).name}")
    print(
        f"{'n_ctx':>6} {'estimate':>9} {'weights':>8} {'KV':>7} {'compute':>8} | "
        f"{'loaded':>7} {'+gen':>7} {'+batch':>7} {'anon':>7} {'file':>7} | ratio"
    )
    for n_ctx in args.ctx:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--model",
                args.model,
                "--ctx",
                str(n_ctx),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        e = r["estimate"]
        ratio = r["rss_after_batch"] / e["total_bytes"]
        print(
            f"{n_ctx:>6} {e['total_bytes'] / MIB:>8.1f}M {e['weights_cpu'] / MIB:>7.1f}M "
            f"{e['kv_cpu'] / MIB:>6.1f}M {e['compute_cpu'] / MIB:>7.1f}M | "
            f"{r['rss_after_load'] / MIB:>6.1f}M {r['rss_after_generation'] / MIB:>6.1f}M "
            f"{r['rss_after_batch'] / MIB:>6.1f}M {r['anon_after_batch'] / MIB:>6.1f}M "
            f"{r['file_after_batch'] / MIB:>6.1f}M | {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
