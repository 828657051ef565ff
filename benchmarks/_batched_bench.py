"""llama.cpp's `llama-batched-bench`: the ceiling the speed tables are measured against
(the same model and build, no HTTP, no sampling)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COLUMNS = ("PP", "TG", "B", "N_KV", "T_PP", "S_PP", "T_TG", "S_TG")


def batched_bench(binary: Path, path: Path, flags: list[str]) -> tuple[list[dict[str, float]], str]:
    """Its table's rows (`COLUMNS` -> value) for this model and these flags, and the
    command line that gave them."""
    command = [str(binary), "-m", str(path), *flags]
    print("  " + " ".join(command), file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    rows: list[dict[str, float]] = []
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= len(COLUMNS) and cells[0].isdigit():
            rows.append({k: float(v) for k, v in zip(COLUMNS, cells, strict=False)})
    if not rows:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return rows, " ".join(command)
