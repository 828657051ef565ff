"""Build llama.cpp's own `llama-server` from the source inside llama-cpp-python's sdist.

The same llama.cpp commit as the installed bindings, built with the same
(native, CPU) defaults, so the comparison is engine against engine. The
sdist comes from the package index (`pip download`); the build is cached
in the work directory and takes a few minutes on two cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path


def llama_server(workdir: Path) -> Path:
    """The path of a built `llama-server` (building it the first time)."""
    release = version("llama-cpp-python")
    root = workdir / f"llama_cpp_python-{release}"
    binary = root / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    sdist = workdir / f"llama_cpp_python-{release}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={release}",
             "--no-deps", "--no-binary", ":all:", "-d", str(workdir)],
            check=True,
        )  # fmt: skip
    if not root.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(workdir, filter="data")
    source = root / "vendor" / "llama.cpp"
    build = root / "build"
    subprocess.run(
        ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
         "-DBUILD_SHARED_LIBS=OFF"],
        check=True,
    )  # fmt: skip
    jobs = str(os.cpu_count() or 2)
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], check=True
    )
    return binary


if __name__ == "__main__":
    print(llama_server(Path(sys.argv[1])))
