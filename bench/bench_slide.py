"""Long conversations never stall: the KV cache shifted on slides, saved states on reopen.

One run, the embedded model, 2 threads (issue 12 targets):
1. 40 scripted turns at --ctx 1024 and 2048 (drop policy), shift (default) side by side with
   exact re-reading (--exact-slide, what every slide cost before):
   median TTFT of slide turns ÷ median TTFT of ordinary follow-ups (≤ 1.5), and p90 ÷ median
   over all follow-ups (≤ 2), with max. TTFT is the user's wait (`wait_s`: send → first token).
2. Shift quality: at every slide turn, the next-token distribution from the shifted cache
   against a fresh read of the same prompt by a second model: top-1 agreement, KL divergence
   (mean, max).
3. Reopening a 12-turn conversation in a new process (`assistant chat --conversation ID`):
   first TTFT ÷ the median follow-up TTFT of the first process (≤ 2), without and with saved
   states.
4. Switching A → B → A on one model (what the app's worker does): TTFT of A's next reply ÷ A's
   follow-up TTFT (≤ 2).
5. Saved state size per 1,000 cached tokens, save (snapshot) and load times.

Usage: python bench/bench_slide.py [--threads 2] [--turns 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.conversation.session import ChatSession  # noqa: E402
from assistant.conversation.store import Store  # noqa: E402
from assistant.engine import kv_cache  # noqa: E402
from assistant.engine.runtime import ModelRuntime  # noqa: E402
from assistant.engine.state_cache import StateCache  # noqa: E402
from assistant.library.embedded import embedded_model_path  # noqa: E402
from assistant.types import LoadOptions, SamplingOptions  # noqa: E402
from bench.conversation_script import SYSTEM, TOPICS  # noqa: E402

SAMPLING = SamplingOptions(temperature=0.7, max_tokens=96, seed=1)


def question(turn: int) -> str:
    return f"Question {turn}: explain {TOPICS[turn % len(TOPICS)]} to a ten-year-old."


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def chat_run(rt: ModelRuntime, turns: int, exact: bool, reference: ModelRuntime | None):
    session = ChatSession(rt, Store(":memory:"), system_prompt=SYSTEM, sampling=SAMPLING)
    session.exact_slide = exact
    first_logits = capture_first_logits(rt)
    slides, ordinary, kl, top1 = [], [], [], []
    for turn in range(1, turns + 1):
        result = session.send(question(turn)).join()
        s = result.stats
        if turn == 1:
            continue
        slid = s.shifted_tokens > 0 or s.reread_tokens > 0  # exact mode reports re-reading
        (slides if slid else ordinary).append(s.wait_s)
        if reference is not None and s.shifted_tokens:
            prompt = rt.prompt_tokens(session.last_plan.window.messages)
            kl_value, agree = compare(first_logits[-1], fresh_logits(reference, prompt))
            kl.append(kl_value)
            top1.append(agree)
    del rt._llm.generate  # back to the class's method
    return slides, ordinary, kl, top1


def capture_first_logits(rt: ModelRuntime) -> list[np.ndarray]:
    """Record, for every reply, the distribution its first token was drawn from (a logits
    processor that copies the first scores it sees; the same small cost on every turn)."""
    captured: list[np.ndarray] = []
    generate = rt._llm.generate

    def generate_and_capture(tokens, **kwargs):
        first = [True]

        def grab(_ids, scores):
            if first[0]:
                captured.append(np.array(scores, dtype=np.float64))
                first[0] = False
            return scores

        kwargs["logits_processor"] = llama_cpp.LogitsProcessorList(
            [grab, *(kwargs.get("logits_processor") or [])]
        )
        return generate(tokens, **kwargs)

    rt._llm.generate = generate_and_capture
    return captured


def fresh_logits(reference: ModelRuntime, prompt: list[int]) -> np.ndarray:
    """The distribution after `prompt` read from an empty cache by a second model."""
    reference._llm.reset()
    reference.cache.forget_live()
    reference.stream(prompt, SamplingOptions(max_tokens=1, temperature=0)).join()
    llm = reference._llm
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)


def compare(shifted: np.ndarray, fresh: np.ndarray) -> tuple[float, int]:
    """KL(fresh ‖ shifted) and whether the most likely next token is the same."""
    p, q = softmax(fresh), softmax(shifted)
    kl = float(np.sum(p * (np.log(p + 1e-30) - np.log(q + 1e-30))))
    return kl, int(np.argmax(p) == np.argmax(q))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def report_chat(ctx: int, label: str, slides, ordinary) -> dict:
    follow = slides + ordinary
    med_ord = statistics.median(ordinary) if ordinary else float("nan")
    med_slide = statistics.median(slides) if slides else float("nan")
    row = {
        "ctx": ctx,
        "mode": label,
        "slides": len(slides),
        "ordinary": len(ordinary),
        "median_ordinary_s": round(med_ord, 3),
        "median_slide_s": round(med_slide, 3),
        "slide_ratio": round(med_slide / med_ord, 2) if slides else None,
        "p90_over_median": round(p90(follow) / statistics.median(follow), 2),
        "max_s": round(max(follow), 3),
        "max_over_median": round(max(follow) / statistics.median(follow), 2),
    }
    print(
        f"ctx {ctx:>5} {label:<6} slides {row['slides']:>2}/{len(follow)}  "
        f"median ordinary {row['median_ordinary_s']:.3f} s  slide {row['median_slide_s']:.3f} s  "
        f"slide÷ordinary {row['slide_ratio']}  p90÷median {row['p90_over_median']}  "
        f"max {row['max_s']:.3f} s (×{row['max_over_median']})"
    )
    return row


def cli(home: Path, lines: list[str], *extra: str) -> list[dict]:
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", "--json", "--ctx", "2048", "--threads", "2"]
        + ["--max-tokens", "64", "--temperature", "0.7", "--seed", "1", *extra],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]


def reopen(saved: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not saved:
            (home / "settings.json").write_text(json.dumps({"kv_cache_mb": 0}))
        first = cli(home, [question(t) for t in range(1, 13)])
        follow = statistics.median(r["wait_s"] for r in first[1:])
        (again,) = cli(home, [question(13)], "--conversation", "1")
        ratio = again["wait_s"] / follow
        print(
            f"reopen in a new process, saved states {'on ' if saved else 'off'}: first TTFT "
            f"{again['wait_s']:.3f} s ({again['restored_tokens']}/{again['prompt_tokens']} "
            f"restored) ÷ median follow-up {follow:.3f} s = {ratio:.2f}"
        )
        return {"saved": saved, "ratio": round(ratio, 2), "first_s": again["wait_s"]}


def switching(rt: ModelRuntime, states: StateCache | None) -> dict:
    rt.use_saved_states(states)
    store = Store(":memory:")
    a = ChatSession(rt, store, system_prompt=SYSTEM, sampling=SAMPLING)
    b = ChatSession(rt, store, system_prompt=SYSTEM, sampling=SAMPLING)
    a_follow = []
    for t in range(1, 9):
        a_follow.append(a.send(question(t)).join().stats.wait_s)
    for t in range(1, 9):
        b.send(question(t + 20)).join()
    back = a.send(question(9)).join().stats
    follow = statistics.median(a_follow[1:])
    ratio = back.wait_s / follow
    print(
        f"switch A→B→A, saved states {'on ' if states else 'off'}: A's next TTFT "
        f"{back.wait_s:.3f} s ({back.restored_tokens}/{back.prompt_tokens} restored) ÷ A's "
        f"follow-up {follow:.3f} s = {ratio:.2f}"
    )
    rt.use_saved_states(None)
    return {"saved": states is not None, "ratio": round(ratio, 2)}


def state_sizes(rt: ModelRuntime) -> dict:
    llm = rt._llm
    n = llm.n_tokens
    started = time.perf_counter()
    tokens, data = kv_cache.snapshot(llm)
    save_s = time.perf_counter() - started
    started = time.perf_counter()
    ok = kv_cache.restore(llm, tokens, data)
    load_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        states = StateCache(tmp)
        started = time.perf_counter()
        states.put("bench", "size", tokens, data)
        states.flush()
        write_s = time.perf_counter() - started
        (entry,) = states.candidates("bench")
        states._memory.clear()
        (on_disk,) = states.candidates("bench")
        started = time.perf_counter()
        states.load(on_disk)
        read_s = time.perf_counter() - started
        size = entry.size
    per_1000 = size / n * 1000
    print(
        f"saved state: {n} tokens, {size / 1e6:.1f} MB ({per_1000 / 1e6:.1f} MB per 1,000 tokens); "
        f"snapshot {save_s * 1000:.1f} ms, restore {load_s * 1000:.1f} ms (ok {ok}), "
        f"file write {write_s * 1000:.1f} ms, file read+check {read_s * 1000:.1f} ms"
    )
    return {"tokens": n, "bytes": size, "mb_per_1000_tokens": round(per_1000 / 1e6, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--turns", type=int, default=40)
    args = ap.parse_args()
    model = embedded_model_path()
    results: dict = {"chat": [], "quality": []}
    for ctx in (1024, 2048):
        rt = ModelRuntime(model, LoadOptions(n_ctx=ctx, n_threads=args.threads))
        ref = ModelRuntime(model, LoadOptions(n_ctx=ctx, n_threads=args.threads))
        try:
            slides, ordinary, kl, top1 = chat_run(rt, args.turns, False, ref)
            results["chat"].append(report_chat(ctx, "shift", slides, ordinary))
            if kl:
                q = {
                    "ctx": ctx,
                    "slides": len(kl),
                    "top1_agreement": round(sum(top1) / len(top1), 3),
                    "kl_mean": round(statistics.mean(kl), 4),
                    "kl_max": round(max(kl), 4),
                }
                results["quality"].append(q)
                print(
                    f"ctx {ctx:>5} shift quality over {q['slides']} slides: top-1 agreement "
                    f"{q['top1_agreement']:.3f}, KL mean {q['kl_mean']}, max {q['kl_max']}"
                )
            slides, ordinary, _, _ = chat_run(rt, args.turns, True, None)
            results["chat"].append(report_chat(ctx, "exact", slides, ordinary))
            if ctx == 2048:
                results["state"] = state_sizes(rt)
                results["switch"] = [
                    switching(rt, None),
                    switching(rt, StateCache(tempfile.mkdtemp())),
                ]
        finally:
            rt.close()
            ref.close()
    results["reopen"] = [reopen(False), reopen(True)]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
