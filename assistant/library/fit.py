"""Will a model fit, and how many layers go to the GPU: estimates from the GGUF header.

Free memory comes from `memory.detect_memory()`. Memory = weights + KV cache + compute
buffers, split between RAM and VRAM the way llama.cpp splits a model: `n_gpu_layers = k` puts
the last k repeating blocks (and their KV cache) on the GPU; k = n_layers + 1 also moves the
output head; the token embeddings always stay on the CPU.

- Weights: the tensor bytes of each block, read from the header (exact).
- KV cache: n_ctx (padded to 256) x sum over layers of kv_heads x (key + value head size)
  x bytes per element of the cache type (f16: 2).
- Compute buffer (checked against llama.cpp's "compute buffer size" on the embedded model,
  within 2 % from 512 to 8192 tokens of context): 4 bytes x n_ubatch x the larger of
    logits:    n_vocab + 2 n_embd
    attention: n_head x n_ctx (the KQ matrix; not with flash attention) + n_ctx (mask)
               + n_ff + 2 n_embd
  plus the logits output buffer (4 bytes x n_vocab). With layers on a GPU this buffer sits
  there, and the CPU keeps 4 x n_ubatch x 2 n_embd (plus the logits when the head stays).

Loading with these numbers (and retrying after an out-of-memory failure) is
`assistant.engine.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.library.gguf_header import GGUFInfo
from assistant.library.memory import MIB, SystemMemory, detect_memory
from assistant.library.sizes import format_bytes

KV_TYPE_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
GPU_RESERVE = 512 * MIB  # per GPU: CUDA context, cuBLAS workspace, the desktop's own use
GPU_RESERVE_SHARE = 0.05  # and 5 % of its memory for fragmentation
RAM_RESERVE = 512 * MIB  # the app, Python and the OS keep running
CTX_PAD = 256
CUDA_REINSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python==0.3.36"
)
METAL_REINSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python==0.3.36"
)


def _gib(n: int) -> str:
    return format_bytes(n, binary=True)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs at one context size and one GPU split."""

    n_ctx: int
    n_gpu_layers: int  # as llama.cpp counts them: 0 .. n_layers + 1
    n_layers: int  # repeating blocks
    weights_cpu: int
    weights_gpu: int
    kv_cpu: int
    kv_gpu: int
    compute_cpu: int
    compute_gpu: int

    @property
    def ram_bytes(self) -> int:
        return self.weights_cpu + self.kv_cpu + self.compute_cpu

    @property
    def vram_bytes(self) -> int:
        return self.weights_gpu + self.kv_gpu + self.compute_gpu

    @property
    def total_bytes(self) -> int:
        return self.ram_bytes + self.vram_bytes

    @property
    def weights_bytes(self) -> int:
        return self.weights_cpu + self.weights_gpu

    @property
    def kv_bytes(self) -> int:
        return self.kv_cpu + self.kv_gpu

    @property
    def compute_bytes(self) -> int:
        return self.compute_cpu + self.compute_gpu

    def to_dict(self) -> dict[str, int]:
        data = dict(self.__dict__)
        data.update(
            ram_bytes=self.ram_bytes, vram_bytes=self.vram_bytes, total_bytes=self.total_bytes
        )
        return data


def padded_ctx(n_ctx: int) -> int:
    return -(-n_ctx // CTX_PAD) * CTX_PAD


def kv_bytes_per_layer(info: GGUFInfo, n_ctx: int, cache_type: str = "f16") -> list[int]:
    try:
        per_element = KV_TYPE_BYTES[cache_type.lower()]
    except KeyError:
        raise ValueError(f"unknown KV cache type {cache_type!r}") from None
    ctx = padded_ctx(n_ctx)
    return [
        int(ctx * heads * (info.head_dim_k + info.head_dim_v) * per_element)
        for heads in info.n_head_kv
    ]


def compute_buffer_bytes(
    info: GGUFInfo, n_ctx: int, n_batch: int = 512, flash_attn: bool = False
) -> tuple[int, int]:
    """(whole graph, logits part) in bytes: see the module docstring for the formula."""
    ctx = padded_ctx(n_ctx)
    ub = max(1, min(n_batch, 512, ctx))
    logits = ub * (info.n_vocab + 2 * info.n_embd)
    attention = ub * ((0 if flash_attn else info.n_head * ctx) + ctx + info.n_ff + 2 * info.n_embd)
    return 4 * max(logits, attention) + 4 * info.n_vocab, 4 * logits


def estimate(
    info: GGUFInfo,
    n_ctx: int,
    n_gpu_layers: int = 0,
    *,
    cache_type: str = "f16",
    n_batch: int = 512,
    flash_attn: bool = False,
) -> MemoryEstimate:
    n = info.n_layers
    k = n + 1 if n_gpu_layers < 0 else min(n_gpu_layers, n + 1)
    on_gpu = [i >= n - k for i in range(n)]  # llama.cpp offloads the last k blocks
    head_on_gpu = k > n
    kv = kv_bytes_per_layer(info, n_ctx, cache_type)
    weights_gpu = sum(b for b, g in zip(info.layer_bytes, on_gpu, strict=True) if g)
    weights_cpu = info.weights_bytes - weights_gpu
    if head_on_gpu:
        weights_gpu += info.output_bytes + (info.embedding_bytes if info.tied_output else 0)
        weights_cpu -= info.output_bytes
    compute, logits = compute_buffer_bytes(info, n_ctx, n_batch, flash_attn)
    if k == 0:
        compute_cpu, compute_gpu = compute, 0
    else:
        ub = max(1, min(n_batch, 512, padded_ctx(n_ctx)))
        compute_cpu = 4 * ub * 2 * info.n_embd + (0 if head_on_gpu else logits)
        compute_gpu = compute
    return MemoryEstimate(
        n_ctx=n_ctx,
        n_gpu_layers=k,
        n_layers=n,
        weights_cpu=weights_cpu,
        weights_gpu=weights_gpu,
        kv_cpu=sum(b for b, g in zip(kv, on_gpu, strict=True) if not g),
        kv_gpu=sum(b for b, g in zip(kv, on_gpu, strict=True) if g),
        compute_cpu=compute_cpu,
        compute_gpu=compute_gpu,
    )


def vram_by_gpu_layers(
    info: GGUFInfo,
    n_ctx: int,
    *,
    cache_type: str = "f16",
    n_batch: int = 512,
    flash_attn: bool = False,
) -> list[int]:
    """`estimate(info, n_ctx, k).vram_bytes` for every k from 0 to n_layers + 1, in one pass
    over the layers (the planner asks for all of them: one estimate each would be quadratic)."""
    kv = kv_bytes_per_layer(info, n_ctx, cache_type)
    compute, _ = compute_buffer_bytes(info, n_ctx, n_batch, flash_attn)
    vram, on_gpu = [0], 0
    for layer_bytes, kv_bytes in zip(reversed(info.layer_bytes), reversed(kv), strict=True):
        on_gpu += layer_bytes + kv_bytes  # llama.cpp offloads the last blocks first
        vram.append(on_gpu + compute)
    head = info.output_bytes + (info.embedding_bytes if info.tied_output else 0)
    vram.append(on_gpu + head + compute)
    return vram


# -- choosing the split ---------------------------------------------------------------------
def gpu_budget(memory: SystemMemory) -> int:
    """VRAM usable by the model after the safety margin, all GPUs together."""
    return sum(
        max(0, g.free_bytes - GPU_RESERVE - int(g.total_bytes * GPU_RESERVE_SHARE))
        for g in memory.gpus
    )


def ram_budget(memory: SystemMemory) -> int:
    return max(0, memory.ram_available - RAM_RESERVE)


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def reinstall_hint(memory: SystemMemory) -> str:
    command = METAL_REINSTALL if any(g.backend == "metal" for g in memory.gpus) else CUDA_REINSTALL
    names = ", ".join(g.name for g in memory.gpus)
    return (
        f"A GPU is present ({names}) but this llama-cpp-python build has no GPU support, so "
        f"everything runs on the CPU. To use the GPU, reinstall it: {command}"
    )


@dataclass(frozen=True)
class GpuPlan:
    n_gpu_layers: int
    note: str
    why_cpu: str = ""  # a few words on why nothing goes to the GPU ("" when something does)


def auto_gpu_layers(
    info: GGUFInfo,
    n_ctx: int,
    memory: SystemMemory | None = None,
    offload_supported: bool | None = None,
    **kwargs: Any,
) -> GpuPlan:
    """The most layers whose weights, KV cache and compute buffer fit the free VRAM."""
    memory = memory or detect_memory()
    if not memory.gpus:
        return GpuPlan(0, "No GPU found: the model runs on the CPU.", "no GPU found")
    if offload_supported is None:
        offload_supported = gpu_offload_supported()
    if not offload_supported:
        return GpuPlan(0, reinstall_hint(memory), "this llama.cpp build has no GPU support")
    budget = gpu_budget(memory)
    total = info.n_layers + 1
    vram = vram_by_gpu_layers(info, n_ctx, **kwargs)
    for k in range(total, 0, -1):
        if vram[k] <= budget:
            where = "all" if k == total else f"{k} of {total}"
            return GpuPlan(
                k,
                f"{where} layers on the GPU ({_gib(budget)} of VRAM usable after a safety margin).",
            )
    return GpuPlan(
        0,
        f"Not even one layer fits the GPU's {_gib(budget)} of usable VRAM at "
        f"{n_ctx} tokens of context: the model runs on the CPU.",
        "too large for the GPU's free memory",
    )


@dataclass(frozen=True)
class FitVerdict:
    kind: str  # "gpu", "partial", "cpu" or "too_large"
    n_ctx: int
    n_gpu_layers: int
    total_layers: int  # blocks + output head, as llama.cpp counts
    estimate: MemoryEstimate
    ram_budget: int
    vram_budget: int
    note: str
    why_cpu: str = ""  # for "cpu": why nothing goes to the GPU, in a few words

    @property
    def badge(self) -> str:
        """The label with its reason where it needs one: 'CPU only (no GPU found)'."""
        if self.kind == "cpu" and self.why_cpu:
            return f"{self.label} ({self.why_cpu})"
        return self.label

    @property
    def label(self) -> str:
        return {
            "gpu": "fits on the GPU",
            "partial": f"partly offloaded ({self.n_gpu_layers} of {self.total_layers} "
            f"layers on the GPU)",
            "cpu": "CPU only",
            "too_large": "too large",
        }[self.kind]

    @property
    def message(self) -> str:
        e = self.estimate
        parts = [
            f"{self.label} at {self.n_ctx} tokens of context: needs {_gib(e.total_bytes)} "
            f"(weights {_gib(e.weights_bytes)}, KV cache {_gib(e.kv_bytes)}, compute "
            f"{_gib(e.compute_bytes)})"
        ]
        if e.vram_bytes:
            parts.append(f"{_gib(e.vram_bytes)} on the GPU of {_gib(self.vram_budget)} usable")
        parts.append(f"{_gib(e.ram_bytes)} in RAM of {_gib(self.ram_budget)} available")
        text = "; ".join(parts) + "."
        return f"{text} {self.note}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.kind,
            "label": self.label,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "total_layers": self.total_layers,
            "ram_budget": self.ram_budget,
            "vram_budget": self.vram_budget,
            "estimate": self.estimate.to_dict(),
            "note": self.note,
            "message": self.message,
        }


def fit(
    info: GGUFInfo,
    n_ctx: int,
    memory: SystemMemory | None = None,
    offload_supported: bool | None = None,
    **kwargs: Any,
) -> FitVerdict:
    """Verdict for one model at one context size on this machine (or on `memory`)."""
    memory = memory or detect_memory()
    plan = auto_gpu_layers(info, n_ctx, memory, offload_supported, **kwargs)
    est = estimate(info, n_ctx, plan.n_gpu_layers, **kwargs)
    ram = ram_budget(memory)
    vram = gpu_budget(memory) if plan.n_gpu_layers else 0
    total = info.n_layers + 1
    ram_need = est.total_bytes if memory.unified else est.ram_bytes
    notes = [plan.note] if memory.gpus and not plan.n_gpu_layers else []
    if info.n_ctx_train and n_ctx > info.n_ctx_train:
        notes.append(
            f"The model was trained on {info.n_ctx_train} tokens of context; "
            f"beyond that its answers degrade."
        )
    if memory.ram_total and ram_need > ram:
        kind = "too_large"
        notes.append(f"Try a smaller quantization or a shorter context than {n_ctx} tokens.")
    elif plan.n_gpu_layers == total:
        kind = "gpu"
    elif plan.n_gpu_layers:
        kind = "partial"
    else:
        kind = "cpu"
    if not memory.ram_total:
        notes.append("Free RAM could not be measured on this system.")
    return FitVerdict(
        kind, n_ctx, plan.n_gpu_layers, total, est, ram, vram, " ".join(notes), plan.why_cpu
    )
