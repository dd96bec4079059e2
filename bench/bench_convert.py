"""Conversion speed and memory: this converter ÷ llama.cpp's convert_hf_to_gguf.py.

Both convert the same Hugging Face LLaMA checkpoint (random weights, a few hundred MB of f16
safetensors, SentencePiece tokenizer) to GGUF (--type, f16 by default), each in its own
process; wall time and peak RSS (the child's own, from wait4) are compared, best of --runs,
alternating order. Targets: time ≤ 1.0×, peak memory ≤ 0.5×. Both outputs must hold the same
tensors, bit for bit.

llama.cpp's converter is fetched at benchmark time from the llama-cpp-python source package
(`pip download --no-binary`) into a temporary folder, never into the repository; it needs
torch, transformers and sentencepiece in this environment.
Usage: python bench/bench_convert.py [--hidden 1024] [--layers 12] [--runs 2] [--type f16]
                                     [--sdist TAR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
VENDOR = "vendor/llama.cpp/"
NEEDED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def fetch_reference_converter(dest: Path, sdist: Path | None) -> Path:
    """Extract convert_hf_to_gguf.py, its conversion/ package and gguf-py from the sdist."""
    if sdist is None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                LLAMA_CPP_PYTHON,
                "--no-binary",
                ":all:",
                "--no-deps",
                "-q",
                "-d",
                str(dest),
            ],
            check=True,
        )
        sdist = next(dest.glob("llama_cpp_python-*.tar.gz"))
    out = dest / "llama.cpp"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if not inner.startswith(VENDOR):
                continue
            rel = inner[len(VENDOR) :]
            if rel.startswith(NEEDED) and member.isfile():
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src:  # type: ignore[union-attr]
                    target.write_bytes(src.read())
    script = out / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise SystemExit(f"convert_hf_to_gguf.py not found in {sdist}")
    return script


def make_checkpoint(folder: Path, hidden: int, layers: int) -> Path:
    from tests.convert_models import write_random_llama

    folder.mkdir(parents=True)
    return write_random_llama(
        folder,
        hidden=hidden,
        layers=layers,
        ff=hidden * 11 // 4,
        heads=hidden // 64,
        kv_heads=max(1, hidden // 256),
        vocab_size=32000,
        dtype=np.float16,
    )


# A small process launches each converter: a child forked from the bench itself would count
# the bench's own memory in its peak RSS.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "code": code,
                  "err": err.decode(errors="replace")[-3000:]}))
"""


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one converter process."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["code"] != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}… failed ({result['code']}):\n{result['err']}")
    return result["seconds"], result["rss_mb"]


def same_tensors(a: Path, b: Path) -> tuple[bool, str]:
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    if ta.keys() != tb.keys():
        return False, f"tensor names differ: {sorted(ta.keys() ^ tb.keys())[:5]}"
    for name, t in ta.items():
        u = tb[name]
        if t.tensor_type != u.tensor_type or not np.array_equal(t.data, u.data):
            return False, f"{name} differs"
    return True, f"{len(ta)} tensors identical"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--type", default="f16", choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--sdist", type=Path, help="a downloaded llama-cpp-python source tarball")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    try:
        script = fetch_reference_converter(tmp, args.sdist)
        model = make_checkpoint(tmp / "model", args.hidden, args.layers)
        size = sum(f.stat().st_size for f in model.iterdir()) / 1e6
        print(f"checkpoint: LLaMA hidden {args.hidden}, {args.layers} layers, {size:,.0f} MB f16")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        ours_out, theirs_out = tmp / "ours.gguf", tmp / "theirs.gguf"
        ours = [
            sys.executable,
            "-m",
            "tools.convert",
            str(model),
            "--out",
            str(ours_out),
            "--type",
            args.type,
        ]
        theirs = [
            sys.executable,
            str(script),
            str(model),
            "--outfile",
            str(theirs_out),
            "--outtype",
            args.type,
        ]
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": []}
        for run in range(args.runs):
            order = [("ours", ours, ROOT), ("theirs", theirs, script.parent)]
            for name, cmd, cwd in order if run % 2 == 0 else order[::-1]:
                results[name].append(measure(cmd, cwd, env))
        ok, detail = same_tensors(ours_out, theirs_out)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    t_ours = min(t for t, _ in results["ours"])
    t_theirs = min(t for t, _ in results["theirs"])
    m_ours = max(m for _, m in results["ours"])
    m_theirs = max(m for _, m in results["theirs"])
    print(f"{'':24}{'this converter':>16}{'convert_hf_to_gguf':>20}{'ratio':>8}{'target':>8}")
    print(
        f"{'wall time (best), s':24}{t_ours:16.2f}{t_theirs:20.2f}"
        f"{t_ours / t_theirs:8.2f}{'≤ 1.0':>8}"
    )
    print(f"{'peak RSS, MB':24}{m_ours:16.0f}{m_theirs:20.0f}{m_ours / m_theirs:8.2f}{'≤ 0.5':>8}")
    print(
        f"runs: ours {[round(t, 2) for t, _ in results['ours']]}, "
        f"theirs {[round(t, 2) for t, _ in results['theirs']]} "
        f"(median {statistics.median(t for t, _ in results['ours']):.2f} / "
        f"{statistics.median(t for t, _ in results['theirs']):.2f})"
    )
    print(f"outputs: {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
