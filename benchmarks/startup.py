"""How fast `localllm` starts: wall time of `--help` and `hw --json`, and the top imports.

    python benchmarks/startup.py [--runs 15]

Prints a table of median / min / max wall time over the runs (the interpreter's
own start-up shown for reference) and the modules that cost the most to
import for `--help`, from `python -X importtime`. Target: `--help` under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3
SCRIPT = str(Path(sys.executable).with_name("localllm"))


def wall_times(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def top_imports(count: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the slowest imports behind `--help`."""
    code = "from localllm.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative_us), int(self_us), name.rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    cases = {
        "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
        "localllm --help": [SCRIPT, "--help"],
        "localllm hw --json": [SCRIPT, "hw", "--json"],
    }
    print(f"runs per command: {args.runs}\n")
    print(f"| {'command':<36} | median s | min s | max s |")
    print(f"|{'-' * 38}|----------|-------|-------|")
    medians = {}
    for label, argv in cases.items():
        runs = args.runs if "hw" not in label else max(3, args.runs // 3)
        times = wall_times(argv, runs)
        medians[label] = statistics.median(times)
        print(f"| {label:<36} | {medians[label]:8.3f} | {min(times):5.3f} | {max(times):5.3f} |")
    verdict = "met" if medians["localllm --help"] < TARGET_S else "NOT met"
    print(f"\ntarget: localllm --help under {TARGET_S} s: {verdict}\n")

    print("slowest imports behind `localllm --help` (python -X importtime):\n")
    print(f"| {'cumulative ms':>13} | {'self ms':>7} | module")
    print(f"|{'-' * 15}|{'-' * 9}|{'-' * 30}")
    for cumulative, own, name in top_imports(args.top):
        print(f"| {cumulative / 1000:13.1f} | {own / 1000:7.1f} | {name}")


if __name__ == "__main__":
    main()
