"""How much memory this computer has free: RAM, and VRAM on each GPU.

RAM from /proc/meminfo (limited by the cgroup of a container), sysctl/vm_stat on macOS, psutil
elsewhere if installed; NVIDIA GPUs from `nvidia-smi` (honouring CUDA_VISIBLE_DEVICES); Apple
Silicon shares RAM with the GPU, and Metal may wire about three quarters of it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
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
