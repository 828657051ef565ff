"""Where a model worker's time goes, step by step, when `LOCALLLM_PROFILE` is set:
the draft model's guesses (when it has one), building the batch, `llama_decode`
with the device synchronised (the model's compute, on the GPU or the CPU),
sampling, turning tokens into text and events, and sending them to the server.
The worker writes the running totals to its log as `localllm-profile {json}` about
once a second and whenever it falls idle; `benchmarks/concurrency.py --profile`
reads them before and after each level and prints the breakdown per step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

PHASES = ("admit", "draft", "batch", "decode", "sample", "accept", "send")
PREFIX = "localllm-profile "
SLOW_PREFIX = "localllm-slow-step "
SLOW_NS = 50_000_000
"""A step longer than this is written out on its own, phase by phase: a running
stream's gap between two tokens is at least its step, so this is what a stall is made of."""


class StepProfile:
    def __init__(self) -> None:
        self.ns = dict.fromkeys(PHASES, 0)
        self.steps = 0
        self.tokens = 0
        """Tokens sampled (one per generating request per step)."""
        self.backend = 0
        """Of those, sampled in llama.cpp's graph."""
        self.drafted = 0
        self.agreed = 0
        """Guessed tokens decoded, and those the model agreed with."""
        self.ahead = 0
        """Steps whose decode was launched before the last one's bookkeeping
        (`engine.ahead`)."""
        self.rows = self.prompt_rows = 0
        """The last decode's batch: its rows, and those of them from prompts."""
        self.replans = 0
        """Graph samplers attached or detached by the last step's admissions (each makes
        llama.cpp plan its graph again at that step's decode)."""
        self._written = time.monotonic()

    def add(self, phase: str, ns: int) -> None:
        self.ns[phase] += ns

    def due(self, every_s: float = 1.0) -> bool:
        now = time.monotonic()
        if now - self._written < every_s:
            return False
        self._written = now
        return True

    def slow_line(
        self, before: Mapping[str, int], ns: int, waited_ns: int = 0, at_ns: int = 0
    ) -> str | None:
        """The step that took `ns`, when it and the `waited_ns` since the step before
        ended (the loop taking in messages, or waiting for the GIL, while streams ran)
        are over `SLOW_NS`: its milliseconds by phase (from the totals `before` it), the
        rows of its decode, and when it began (`at`: `time.perf_counter`'s seconds, the
        same clock in every process, for a benchmark to line it up with its own)."""
        if ns + waited_ns < SLOW_NS:
            return None
        phases = {p: round((self.ns[p] - before.get(p, 0)) / 1e6, 3) for p in PHASES}
        step = {"ms": round(ns / 1e6, 3), "waited_ms": round(waited_ns / 1e6, 3),
                "at": round(at_ns / 1e9, 6), "rows": self.rows,
                "prompt_rows": self.prompt_rows, "replans": self.replans}  # fmt: skip
        return SLOW_PREFIX + json.dumps({**step, "phases_ms": phases})

    def line(self) -> str:
        totals = {"steps": self.steps, "tokens": self.tokens, "backend": self.backend,
                  "drafted": self.drafted, "agreed": self.agreed, "ahead": self.ahead,
                  "ns": self.ns}  # fmt: skip
        return PREFIX + json.dumps(totals)


def read_last(log: str) -> dict[str, object] | None:
    """The last totals a worker's log holds."""
    for line in reversed(log.splitlines()):
        if line.startswith(PREFIX):
            value = json.loads(line[len(PREFIX) :])
            return value if isinstance(value, dict) else None
    return None


def breakdown(before: Mapping[str, object] | None, after: Mapping[str, object]) -> dict[str, float]:
    """Milliseconds per step for each phase between two totals, with tokens per step,
    the share of tokens sampled in the graph, and guesses (prompt lookup) per step
    with the share the model agreed with."""

    def get(totals: Mapping[str, object] | None, key: str) -> float:
        if totals is None:
            return 0.0
        value = totals["ns"][key] if key in PHASES else totals.get(key, 0)  # type: ignore[index]
        return float(value)  # type: ignore[arg-type]

    steps = max(get(after, "steps") - get(before, "steps"), 1.0)
    tokens = get(after, "tokens") - get(before, "tokens")
    out = {p: (get(after, p) - get(before, p)) / steps / 1e6 for p in PHASES}
    out["tokens_per_step"] = tokens / steps
    out["backend_share"] = (get(after, "backend") - get(before, "backend")) / max(tokens, 1.0)
    drafted = get(after, "drafted") - get(before, "drafted")
    out["drafted_per_step"] = drafted / steps
    out["agreed_share"] = (get(after, "agreed") - get(before, "agreed")) / max(drafted, 1.0)
    out["ahead_share"] = (get(after, "ahead") - get(before, "ahead")) / steps
    return out
