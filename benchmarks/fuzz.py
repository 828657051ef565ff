"""Thousands of mutated requests against a real `localllm serve`, with an innocent stream.

    python benchmarks/fuzz.py                  # 5,000 requests, seed 14
    python benchmarks/fuzz.py --count 20000 --seed 7

The server is the real CLI's (`python -m localllm serve`, its own LOCALLLM_HOME,
a Hub on loopback with no repositories), over the tiny generated model the test
suite uses. `tests/fuzzing.py` makes the requests: every endpoint of both APIs,
each body valid then mutated (types swapped, fields dropped, huge numbers,
NaN, deep nesting, long strings, schemas that are not schemas, broken JSON).
While they run, an innocent greedy stream on the same model runs again and
again; each run must give exactly the text it gives alone. Prints the tally
per endpoint and writes it to `benchmarks/results/fuzz-cpu.md`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.server import free_port
from localllm.store.create import create
from localllm.store.modelfile import parse_modelfile
from localllm.store.names import parse_name
from localllm.store.store import Store
from tests.factory import TINY, write_model
from tests.fakehub import FakeHub
from tests.fakehub import serve as serve_hub
from tests.fuzzing import Tally, beside_innocent, fuzz, innocent_text

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz-cpu.md"


def make_store(home: Path) -> None:
    model = write_model(TINY, home / "tiny.gguf")
    modelfile = parse_modelfile(f"FROM {model}\nPARAMETER num_ctx 1024\n")
    store = Store(home / "data" / "models")
    create(parse_name("tiny"), modelfile, store, home, lambda sources: None)  # type: ignore[arg-type,return-value]


def table(tally: Tally) -> list[str]:
    kinds = ("2xx", "4xx", "5xx", "hang", "reset")
    lines = ["| endpoint | requests | " + " | ".join(kinds) + " |", "|---" * 7 + "|"]
    for endpoint, counts in sorted(tally.by_endpoint.items()):
        cells = " | ".join(str(counts.get(k, 0)) for k in kinds)
        lines.append(f"| `{endpoint}` | {sum(counts.values())} | {cells} |")
    total = {k: sum(c.get(k, 0) for c in tally.by_endpoint.values()) for k in kinds}
    cells = " | ".join(f"**{total[k]}**" for k in kinds)
    lines.append(f"| all | **{tally.total}** | {cells} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, serve_hub(FakeHub()) as hub:
        home = Path(tmp)
        make_store(home)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}",
               "HF_ENDPOINT": hub.url}  # fmt: skip
        cli = [sys.executable, "-m", "localllm"]
        log_path = home / "server.log"
        with log_path.open("wb") as log_file:
            server = subprocess.Popen([*cli, "serve"], env=env, stdout=log_file, stderr=log_file)
        try:
            while True:
                try:
                    if httpx.get(url + "/api/version", timeout=0.5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            start = time.perf_counter()
            alone, texts, tally = beside_innocent(
                url, lambda: fuzz(url, args.seed, args.count, args.concurrency)
            )
            seconds = time.perf_counter() - start
            alive = httpx.get(url + "/api/version", timeout=30).status_code == 200
            after = innocent_text(url)
        finally:
            subprocess.run([*cli, "serve", "--stop"], env=env, capture_output=True, timeout=120)
            server.wait(timeout=60)
        log = log_path.read_text(errors="replace")
        crashes = log.count("stopped unexpectedly")
    intact = sum(t == alone for t in texts)
    lines = [
        f"Fuzz: {tally.total} requests, seed {args.seed}, {args.concurrency} at a time, "
        f"{seconds:.0f} s (`python benchmarks/fuzz.py --count {args.count} --seed {args.seed}`)",
        "",
        *table(tally),
        "",
        f"- innocent stream: {intact} of {len(texts)} runs gave exactly the text it gives alone"
        f"; after the run: {'the same' if after == alone else 'DIFFERENT'}",
        f"- server alive at the end: {'yes' if alive else 'NO'}; "
        f"model workers that died: {crashes}",
    ]
    different = sorted({t for t in texts if t != alone})
    lines += [f"- innocent differed: {t[:300]!r} (alone: {alone[:300]!r})" for t in different[:5]]
    for kind, items in (("5xx", tally.server_errors), ("hang", tally.hangs),
                        ("reset", tally.resets)):  # fmt: skip
        lines += [f"- {kind}: {item}" for item in items[:20]]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)
    ok = not (tally.server_errors or tally.hangs or tally.resets or crashes)
    return 0 if ok and alive and intact == len(texts) and after == alone else 1


if __name__ == "__main__":
    sys.exit(main())
