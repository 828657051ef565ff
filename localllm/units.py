"""Units people read and write: sizes and counts in the CLI's output (binary prefixes,
as `free -h`), and durations as Ollama's `keep_alive` takes them ("5m", 300, -1)."""

from __future__ import annotations

import re

from localllm.errors import ConfigError

FOREVER_S = 100 * 365 * 86400.0
"""A keep_alive longer than this (a century) is taken as forever, as a negative one is."""
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_count(n: int) -> str:
    """8030261248 -> '8.03B'; 321472 -> '321.47K'."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def format_bytes(size: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> 'unknown'."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_keep_alive(value: float | int | str | None, default: float | None) -> float | None:
    """Seconds to stay loaded (None: forever) from Ollama's forms: a number of seconds,
    or a duration like "10m", "1h30m", "500ms"; negative means forever, 0 unload now."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError(f"keep_alive must be a duration or a number of seconds, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            matches = list(_DURATION.finditer(text))
            if not matches or "".join(m.group(0) for m in matches) != text:
                raise ConfigError(
                    f'keep_alive: {value!r} is not a duration (examples: 300, "5m", "1h", -1)'
                ) from None
            seconds = sum(float(m.group(1)) * _UNIT_S[m.group(2)] for m in matches)
    if seconds != seconds:
        raise ConfigError(f"keep_alive must be a duration or a number of seconds, not {value!r}")
    return None if seconds < 0 or seconds > FOREVER_S else seconds
