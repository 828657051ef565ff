"""How much each quantization costs in quality, to rank what fits.

KL divergence from the F16 model's token distribution, measured on
Llama-3-8B by llama.cpp's perplexity tool (tools/perplexity README); types it
does not list are placed by bits per weight between their neighbours. Lower is
better; the planner prefers the best quality that fits, but not below
`QUALITY_FLOOR` while something at or above it fits.
"""

from __future__ import annotations

KL_DIVERGENCE: dict[str, float] = {
    "F32": 0.0, "F16": 0.0, "BF16": 0.0,
    "Q8_0": 0.0014, "Q6_K": 0.0055, "Q5_K_M": 0.0108, "Q5_K_S": 0.0130, "Q5_1": 0.0150,
    "Q5_0": 0.0180, "Q4_K_M": 0.0313, "Q4_K_S": 0.0340, "IQ4_XS": 0.036, "IQ4_NL": 0.035,
    "Q4_1": 0.060, "Q4_0": 0.0719, "Q3_K_L": 0.088, "Q3_K_M": 0.102, "IQ3_M": 0.110,
    "IQ3_XS": 0.130, "Q3_K_S": 0.160, "IQ3_XXS": 0.180, "Q2_K": 0.445, "IQ2_M": 0.300,
    "IQ2_S": 0.380, "IQ2_XS": 0.450, "IQ2_XXS": 0.600, "IQ1_M": 0.900, "IQ1_S": 1.2,
}  # fmt: skip
QUALITY_FLOOR = 0.08
"""Q4_0 and better: below it answers degrade noticeably."""
TARGET_BAND = (0.015, 0.04)
"""The Q4_K_M class (Q4_K_M, IQ4_XS, Q4_K_S...): the knee of the size/quality curve,
and Ollama's and LM Studio's usual default."""
LOSSLESS = 0.002
"""Q8_0 and F16 are indistinguishable in use; the smaller one is faster."""


def kl_divergence(label: str) -> float | None:
    return KL_DIVERGENCE.get(label.upper())


def describe_cost(label: str) -> str:
    """A word for the quality cost, for tables."""
    kl = kl_divergence(label)
    if kl is None:
        return "unknown"
    if kl < 0.002:
        return "lossless"
    if kl < 0.015:
        return "very small"
    if kl < 0.04:
        return "small"
    if kl <= QUALITY_FLOOR:
        return "noticeable"
    return "large"


def quality_key(label: str, size_bytes: int) -> tuple[float, int]:
    """Sort key: better quality first, the lossless types as one band (smaller first);
    unknown types rank by size (bigger is better)."""
    kl = kl_divergence(label)
    if kl is None:
        return (1.0 / max(size_bytes, 1), -size_bytes)
    if kl < LOSSLESS:
        return (0.0, size_bytes)
    return (kl, -size_bytes)
