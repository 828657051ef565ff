"""Parsers for the text formats the Linux kernel and macOS `sysctl` print.

Pure functions of strings; they never raise on malformed input, they skip it.
"""

from __future__ import annotations

import re

_KB_LINE = re.compile(r"^(?:Node\s+\d+\s+)?(\w+):\s+(\d+)\s*kB", re.MULTILINE)


def parse_cpulist(text: str | None) -> tuple[int, ...]:
    """`0-3,8,10-11` -> (0, 1, 2, 3, 8, 10, 11); junk parts are ignored."""
    if not text:
        return ()
    cpus: set[int] = set()
    for part in text.strip().split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            continue
        if 0 <= first <= last and last - first < 65536:
            cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def parse_kb_lines(text: str | None) -> dict[str, int]:
    """`/proc/meminfo` or a NUMA node's `meminfo` -> {"MemTotal": bytes, ...}."""
    if not text:
        return {}
    return {key: int(value) * 1024 for key, value in _KB_LINE.findall(text)}


def parse_sysctl(text: str | None) -> dict[str, str]:
    """`sysctl -a` output (`key: value` or `key = value`) -> {key: value}."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        for sep in (": ", " = "):
            key, found, value = line.partition(sep)
            if found and key and " " not in key.strip():
                out[key.strip()] = value.strip()
                break
    return out


def parse_int(text: str | None, base: int = 10) -> int | None:
    """An integer file such as `core_id` or `0x10de`; None when it is not one."""
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None
