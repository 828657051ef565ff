from __future__ import annotations

import pytest

from localllm.hardware.cpu import normalize_arch, normalize_flags, parse_proc_cpuinfo
from localllm.hardware.textformats import parse_cpulist, parse_kb_lines, parse_sysctl


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8,10-11\n", (0, 1, 2, 3, 8, 10, 11)),
        ("", ()),
        (None, ()),
        ("5", (5,)),
        ("3-1,x,2", (2,)),
        ("0-99999999", ()),  # absurd range: ignored, not allocated
    ],
)
def test_parse_cpulist(text: str | None, cpus: tuple[int, ...]) -> None:
    assert parse_cpulist(text) == cpus


def test_parse_kb_lines_reads_meminfo_and_numa_formats() -> None:
    assert parse_kb_lines("MemTotal:  1024 kB\nNode 1 MemFree:   2 kB\nHugePages_Total: 0\n") == {
        "MemTotal": 1024 * 1024,
        "MemFree": 2048,
    }


def test_parse_sysctl_both_separators() -> None:
    text = (
        "hw.memsize: 17179869184\nkern.ostype = Darwin\nnot a line\n"
        "machdep.cpu.brand_string: Apple M2\n"
    )
    assert parse_sysctl(text) == {
        "hw.memsize": "17179869184",
        "kern.ostype": "Darwin",
        "machdep.cpu.brand_string": "Apple M2",
    }


def test_flag_spellings_from_every_source_normalise() -> None:
    assert normalize_flags(["pni", "AVX2", "avx512vnni", "asimddp", "FEAT_I8MM", "AVX1.0"]) == (
        "sse3", "avx", "avx2", "avx512_vnni", "dotprod", "i8mm",
    )  # fmt: skip


def test_arm64_proc_cpuinfo() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes asimddp i8mm sve\n"
        "CPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\n"
    )
    (block,) = parse_proc_cpuinfo(text)
    assert normalize_flags(block["features"].split()) == ("neon", "dotprod", "i8mm", "sve")
    assert normalize_arch("aarch64") == normalize_arch("arm64") == "arm64"
    assert normalize_arch("AMD64") == "x86_64"
