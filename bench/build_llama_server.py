"""Build llama.cpp's `llama-server` from the `llama-cpp-python` source package (the version
installed here, so both run the same llama.cpp), for the side-by-side in `bench_server.py`.

The build goes to a cache folder outside the repository (never committed) and is reused:
    python bench/build_llama_server.py            # prints the binary's path
It needs CMake and a C++ compiler (Ninja when present); on 2 cores it takes 15–25 minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

PACKAGE = "llama-cpp-python"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "assistant-bench"


def built_binary(build: Path) -> Path | None:
    for candidate in (build / "bin" / "llama-server", build / "bin" / "llama-server.exe"):
        if candidate.is_file():
            return candidate
    return None


def source_tree(root: Path, wanted: str) -> Path:
    """The unpacked sdist of llama-cpp-python `wanted` (downloaded from the package index)."""
    tree = root / f"llama_cpp_python-{wanted}"
    if (tree / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{PACKAGE}=={wanted}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--dest",
            str(root),
        ],
        check=True,
    )
    archive = next(root.glob(f"llama_cpp_python-{wanted}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return tree


def build(root: Path | None = None, jobs: int | None = None) -> Path:
    """The path of a built `llama-server` for the installed llama-cpp-python version."""
    wanted = version(PACKAGE)
    root = root or cache_root()
    build_dir = root / f"llama-server-{wanted}"
    found = built_binary(build_dir)
    if found is not None:
        return found
    if shutil.which("cmake") is None:
        raise SystemExit("CMake is needed to build llama-server (apt install cmake).")
    tree = source_tree(root, wanted)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        [
            "cmake",
            "-S",
            str(tree / "vendor" / "llama.cpp"),
            "-B",
            str(build_dir),
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DGGML_CUDA=OFF",
        ],
        check=True,
    )
    jobs = jobs or os.cpu_count() or 2
    subprocess.run(
        ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
        check=True,
    )
    found = built_binary(build_dir)
    if found is None:
        raise SystemExit(f"The build finished but no llama-server is in {build_dir / 'bin'}.")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help=f"build folder (default {cache_root()})")
    parser.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    args = parser.parse_args()
    print(build(args.dir, args.jobs))


if __name__ == "__main__":
    main()
