"""LoRA adapters and --verify: time and peak memory, each run in its own process.

On one random LLaMA checkpoint (f16 safetensors, a few hundred MB by default) and a PEFT-layout
LoRA adapter for it (r 16 on every attention and MLP projection), measured side by side:
  - merging the adapter into an f16 GGUF, and writing it as a GGUF adapter (--adapter-only);
  - `--verify` on the f16 conversion with the layer-by-layer reference, against the same
    forward holding the whole model in float32 (what --verify did before), as peak RSS and as
    peak RSS ÷ checkpoint size (also net of a process that only imports torch and llama.cpp).
Medians, p90 and max over --runs, alternating the order.
Usage: python bench/bench_convert_adapter.py [--hidden 1024] [--layers 12] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_convert import LAUNCHER, make_checkpoint  # noqa: E402

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The reference forward on the whole model in float32 (the old --verify), for the comparison.
WHOLE_MODEL = """
import sys
from pathlib import Path
from tools.convert.mappers import mapper_for
from tools.convert.reference import load_weights
from tools.convert.source import resolve_source
source = resolve_source(Path(sys.argv[1]))
mapper = mapper_for(source.architecture, source.config)
prompts = [list(range(1, 65))] * 4
mapper.reference_logits(load_weights(source.checkpoint), prompts)
"""
LAYERED = WHOLE_MODEL.replace("load_weights", "LazyWeights")
IMPORTS = "import torch, llama_cpp, tools.convert.pipeline"


def write_adapter(folder: Path, model: Path, rank: int = 16) -> Path:
    """A PEFT-layout LoRA (adapter_config.json + adapter_model.safetensors), random A and B."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    tensors = {}
    with safe_open(str(model / "model.safetensors"), "np") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has no iterator)
            module = name.removesuffix(".weight")
            if not module.endswith(TARGETS):
                continue
            out, inp = f.get_slice(name).get_shape()
            prefix = "base_model.model." + module
            tensors[prefix + ".lora_A.weight"] = rng.standard_normal((rank, inp), np.float32) * 0.02
            tensors[prefix + ".lora_B.weight"] = rng.standard_normal((out, rank), np.float32) * 0.02
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": list(TARGETS),
        "base_model_name_or_path": str(model),
        "bias": "none",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process; its exit code is not checked (a random
    model may miss --verify's thresholds: its memory is what is measured)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *cmd],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["code"] not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])}… failed ({result['code']}):\n{result['err']}")
    return result["seconds"], result["rss_mb"]


def tails(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"{statistics.median(values):9.2f} {p90:9.2f} {max(values):9.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_adapter_"))
    try:
        model = make_checkpoint(tmp / "model", args.hidden, args.layers)
        adapter = write_adapter(tmp / "adapter", model)
        size_mb = sum(f.stat().st_size for f in model.iterdir()) / 2**20
        adapter_mb = (adapter / "adapter_model.safetensors").stat().st_size / 2**20
        print(
            f"checkpoint: LLaMA hidden {args.hidden}, {args.layers} layers, {size_mb:,.0f} MiB "
            f"f16; adapter r 16 on {len(TARGETS)} projections, {adapter_mb:,.1f} MiB f32"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        convert = [sys.executable, "-m", "tools.convert"]
        jobs = {
            "imports only (torch, llama.cpp)": [sys.executable, "-c", IMPORTS],
            "convert f16": [*convert, str(model), "--out", str(tmp / "a.gguf")],
            "convert f16 --verify": [
                *convert,
                str(model),
                "--out",
                str(tmp / "b.gguf"),
                "--verify",
            ],
            "reference, layer by layer": [sys.executable, "-c", LAYERED, str(model)],
            "reference, whole model f32": [sys.executable, "-c", WHOLE_MODEL, str(model)],
            "adapter merged, f16": [*convert, str(adapter), "--out", str(tmp / "c.gguf")],
            "adapter --adapter-only": [
                *convert,
                str(adapter),
                "--out",
                str(tmp / "d.gguf"),
                "--adapter-only",
            ],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        order = list(jobs)
        for run in range(args.runs):
            for name in order if run % 2 == 0 else order[::-1]:
                results[name].append(measure(jobs[name], env))
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    base_rss = statistics.median(m for _, m in results["imports only (torch, llama.cpp)"])
    print(f"\n{'':32}{'seconds: median':>16}{'p90':>10}{'max':>10}   peak RSS MiB (max)")
    for name, runs in results.items():
        rss = max(m for _, m in runs)
        print(f"{name:32}{tails([t for t, _ in runs]):>36}   {rss:8.0f}")
    print("\npeak RSS ÷ checkpoint size (net: minus the imports-only process)")
    for name in ("convert f16 --verify", "reference, layer by layer", "reference, whole model f32"):
        rss = max(m for _, m in results[name])
        print(f"  {name:30} {rss / size_mb:5.2f}   net {(rss - base_rss) / size_mb:5.2f}")
    layered = max(m for _, m in results["reference, layer by layer"]) - base_rss
    whole = max(m for _, m in results["reference, whole model f32"]) - base_rss
    print(f"  layer by layer ÷ whole model (net): {layered / whole:.2f}")
    merged = statistics.median(t for t, _ in results["adapter merged, f16"])
    plain = statistics.median(t for t, _ in results["convert f16"])
    only = statistics.median(t for t, _ in results["adapter --adapter-only"])
    print(f"  adapter merged ÷ plain conversion, time: {merged / plain:.2f}")
    print(f"  adapter-only ÷ plain conversion, time: {only / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
