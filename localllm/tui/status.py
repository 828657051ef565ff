"""The chat's status line: which model, how it is loaded, how the last answer went."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    model: str
    quantization: str = ""
    gpu_layers: int | None = None
    layers: int | None = None
    context_used: int = 0
    context_size: int = 0
    tokens_per_s: float | None = None
    ttft_s: float | None = None
    state: str = ""
    """What is happening now: loading, thinking, answering..."""

    def text(self) -> str:
        parts = [self.model]
        if self.quantization:
            parts.append(self.quantization)
        if self.gpu_layers is not None:
            of = f"/{self.layers}" if self.layers else ""
            parts.append(f"GPU {self.gpu_layers}{of} layers" if self.gpu_layers else "CPU")
        if self.context_size:
            parts.append(f"ctx {self.context_used}/{self.context_size}")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.state:
            parts.append(self.state)
        return " · ".join(parts)
