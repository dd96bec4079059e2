"""Will a model fit, and how many layers go to the GPU: estimates from the GGUF header.

Free memory: RAM from /proc/meminfo (cgroup-aware), sysctl/vm_stat on macOS, psutil elsewhere
if installed; NVIDIA GPUs from `nvidia-smi`; Apple Silicon shares RAM with the GPU (Metal may
wire about three quarters of it).

Memory = weights + KV cache + compute buffers, split between RAM and VRAM the way llama.cpp
splits a model: `n_gpu_layers = k` puts the last k repeating blocks (and their KV cache) on the
GPU; k = n_layers + 1 also moves the output head; the token embeddings always stay on the CPU.

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
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .gguf_info import GGUFInfo, read_gguf_info
from .types import LoadOptions

MIB = 1 << 20
GIB = 1 << 30
AUTO = -2  # LoadOptions.n_gpu_layers value for load_with_fallback: as many layers as fit
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
MIN_CTX = 512
CUDA_REINSTALL = (
    'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python==0.3.36"
)
METAL_REINSTALL = (
    'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python==0.3.36"
)


# -- free memory ----------------------------------------------------------------------------
METAL_SHARE = 0.75  # macOS lets Metal wire about 2/3 to 3/4 of RAM; the upper figure


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    backend: str  # "cuda" or "metal"


@dataclass(frozen=True)
class SystemMemory:
    ram_total: int  # 0 when unknown
    ram_available: int
    gpus: tuple[GpuMemory, ...] = ()
    unified: bool = False  # the GPU draws on the same RAM (Apple Silicon)

    @property
    def vram_free(self) -> int:
        return sum(g.free_bytes for g in self.gpus)

    def to_dict(self) -> dict:
        return {
            "ram_total": self.ram_total,
            "ram_available": self.ram_available,
            "unified": self.unified,
            "gpus": [g.__dict__.copy() for g in self.gpus],
        }


def detect_memory() -> SystemMemory:
    total, available = ram()
    if sys.platform == "darwin" and platform.machine() == "arm64":
        budget = int(total * METAL_SHARE)
        gpu = GpuMemory(0, "Apple GPU (unified memory)", budget, min(budget, available), "metal")
        return SystemMemory(total, available, (gpu,), unified=True)
    return SystemMemory(total, available, tuple(nvidia_gpus()))


def ram() -> tuple[int, int]:
    """(total, available) bytes of RAM, (0, 0) when it cannot be told."""
    if sys.platform.startswith("linux"):
        return _linux_ram()
    if sys.platform == "darwin":
        return _mac_ram()
    try:
        import psutil  # optional: Windows and others

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        return 0, 0


def _linux_ram() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0))
    limit = _cgroup_room()
    if limit is not None:  # a container's limit is lower than what the host has free
        total, available = min(total, limit[0]), min(available, limit[1])
    return total, available


def _cgroup_room() -> tuple[int, int] | None:
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return int(limit), max(int(limit) - used, 0)


def _mac_ram() -> tuple[int, int]:
    try:
        total = int(_run(["sysctl", "-n", "hw.memsize"]).strip())
        stats = _run(["vm_stat"])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0, 0
    page = 16384 if platform.machine() == "arm64" else 4096
    pages = 0
    for line in stats.splitlines():
        name, _, rest = line.partition(":")
        if name in {"Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"}:
            pages += int(rest.strip().rstrip("."))
    return total, pages * page


def nvidia_gpus() -> list[GpuMemory]:
    """NVIDIA GPUs with their free memory, from nvidia-smi (none if it is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = _run(
            [
                exe,
                "--query-gpu=index,name,memory.free,memory.total",
                "--format=csv,noheader,nounits",
            ]
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out)


def parse_nvidia_smi(text: str) -> list[GpuMemory]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            gpus.append(
                GpuMemory(
                    int(parts[0]),
                    parts[1],
                    int(float(parts[3]) * MIB),
                    int(float(parts[2]) * MIB),
                    "cuda",
                )
            )
        except ValueError:
            continue  # "[N/A]" on some boards
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        wanted = [int(v) for v in visible.split(",") if v.strip()]
        gpus = [g for g in gpus if g.index in wanted]
    return gpus


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout


# -- estimates ------------------------------------------------------------------------------
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
        return GpuPlan(0, "No GPU found: the model runs on the CPU.")
    if offload_supported is None:
        offload_supported = gpu_offload_supported()
    if not offload_supported:
        return GpuPlan(0, reinstall_hint(memory))
    budget = gpu_budget(memory)
    total = info.n_layers + 1
    for k in range(total, 0, -1):
        if estimate(info, n_ctx, k, **kwargs).vram_bytes <= budget:
            where = "all" if k == total else f"{k} of {total}"
            return GpuPlan(
                k,
                f"{where} layers on the GPU ({_gib(budget)} of VRAM usable after a safety margin).",
            )
    return GpuPlan(
        0,
        f"Not even one layer fits the GPU's {_gib(budget)} of usable VRAM at "
        f"{n_ctx} tokens of context: the model runs on the CPU.",
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
    return FitVerdict(kind, n_ctx, plan.n_gpu_layers, total, est, ram, vram, " ".join(notes))


# -- loading with retries -------------------------------------------------------------------
_OOM = re.compile(
    r"out of memory|failed to allocate|unable to allocate|cudamalloc|"
    r"not enough memory|insufficient memory|erroroutofdevicememory|"
    r"failed to create (llama_)?context|memoryerror|cannot allocate",
    re.I,
)


def is_out_of_memory(error: BaseException) -> bool:
    return bool(_OOM.search(str(error)))


@dataclass(frozen=True)
class LoadChoice:
    n_gpu_layers: int
    n_ctx: int
    attempts: tuple[tuple[int, int, str], ...]  # (layers, context, error) of the failures
    message: str


def fallback_steps(layers: int, n_ctx: int) -> list[tuple[int, int]]:
    """What to try, in order: fewer layers (3/4, 1/2, 1/4, none), then halve the context."""
    steps = [(layers, n_ctx)]
    for share in (0.75, 0.5, 0.25, 0.0):
        k = int(layers * share)
        if k < steps[-1][0]:
            steps.append((k, n_ctx))
    ctx = n_ctx
    while ctx > MIN_CTX:
        ctx = max(MIN_CTX, ctx // 2)
        steps.append((0, ctx))
    return steps


def load_with_fallback(
    path: str | Path,
    options: LoadOptions | None = None,
    *,
    loader: Callable[[Path, LoadOptions], Any] | None = None,
    memory: SystemMemory | None = None,
    offload_supported: bool | None = None,
) -> tuple[Any, LoadChoice]:
    """Load a model; on an out-of-memory failure retry with fewer GPU layers, then less context.

    `options.n_gpu_layers == AUTO` picks the layers from the estimate. `loader` defaults to
    `ModelRuntime`; tests inject one that fails. Returns (runtime, what was chosen and why).
    """
    path = Path(path).expanduser()
    options = options or LoadOptions(n_gpu_layers=AUTO)
    note = ""
    layers = options.n_gpu_layers
    info = _header_or_none(path)
    if info is not None:
        memory = memory or detect_memory()
        _refuse_if_too_large(path, info, options, memory)
    if layers == AUTO and info is not None:
        plan = auto_gpu_layers(
            info,
            options.n_ctx,
            memory,
            offload_supported,
            n_batch=options.n_batch,
            flash_attn=options.flash_attn,
        )
        layers, note = plan.n_gpu_layers, plan.note
    elif layers == AUTO:
        layers = 0  # unreadable header: let the loader report why
    elif layers < 0:
        layers = info.n_layers + 1 if info is not None else 0x7FFFFFFF
    if loader is None:
        from .runtime import ModelRuntime

        loader = ModelRuntime
    failures: list[tuple[int, int, str]] = []
    for k, ctx in fallback_steps(layers, options.n_ctx):
        try:
            runtime = loader(path, replace(options, n_gpu_layers=k, n_ctx=ctx))
        except ModelLoadError as exc:
            if not is_out_of_memory(exc):
                raise
            failures.append((k, ctx, str(exc)))
            continue
        return runtime, LoadChoice(
            k, ctx, tuple(failures), _explain(k, ctx, options, failures, note)
        )
    tried = ", ".join(f"{k} GPU layers/{c} tokens" for k, c, _ in failures)
    raise ModelLoadError(
        f"Not enough memory to load {path.name}, even on the CPU with "
        f"{failures[-1][1]} tokens of context (tried {tried}). Close other "
        f"programs or choose a smaller quantization."
    )


def _header_or_none(path: Path) -> GGUFInfo | None:
    """The header, or None when it cannot be read: the loader then names the actual problem."""
    try:
        return read_gguf_info(path)
    except Exception:  # noqa: BLE001 - any reader failure is reported by llama.cpp's own load
        return None


def _refuse_if_too_large(
    path: Path, info: GGUFInfo, options: LoadOptions, memory: SystemMemory
) -> None:
    """A model that cannot fit this computer's RAM even on the CPU is refused with numbers
    before llama.cpp tries (it would thrash the disk or be killed, not fail cleanly)."""
    if not memory.ram_total:
        return
    est = estimate(info, options.n_ctx, 0, n_batch=options.n_batch, flash_attn=options.flash_attn)
    vram = 0 if memory.unified else gpu_budget(memory)
    if est.total_bytes > memory.ram_total + vram:
        raise ModelLoadError(
            f"{path.name} is too large for this computer: at {options.n_ctx} tokens of context "
            f"it needs {_gib(est.total_bytes)} (weights {_gib(est.weights_bytes)}, KV cache "
            f"{_gib(est.kv_bytes)}) but the computer has {_gib(memory.ram_total)} of RAM"
            f"{f' and {_gib(vram)} of usable VRAM' if vram else ''}. Choose a smaller "
            "quantization or model, or a shorter context."
        )


def _explain(k: int, ctx: int, options: LoadOptions, failures: list, note: str) -> str:
    where = "on the CPU" if k == 0 else f"with {k} layers on the GPU"
    text = f"Loaded {where}, {ctx} tokens of context."
    if failures:
        first_k, first_ctx, _ = failures[0]
        text += (
            f" Loading with {first_k} GPU layers and {first_ctx} tokens ran out of memory"
            f" ({len(failures)} attempt{'s' if len(failures) > 1 else ''} failed), so "
            f"{'fewer layers' if k < first_k else 'less'}"
            f"{' and a shorter context' if ctx < options.n_ctx else ''} were used."
        )
    elif note:
        text += f" {note}"
    return text


def format_bytes(n: int) -> str:
    """Memory sizes in binary units, as the fit messages print them."""
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / MIB:.0f} MiB"


_gib = format_bytes
