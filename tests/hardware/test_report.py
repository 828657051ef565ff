"""The JSON form of the report: versioned, and refused clearly when malformed."""

from __future__ import annotations

import pytest

from localllm.hardware import SCHEMA_VERSION, ReportFormatError
from localllm.hardware.report import HardwareReport
from tests.hardware.profiles import profile_report


def test_schema_version_comes_first() -> None:
    data = profile_report("nvidia_laptop").to_dict()
    assert next(iter(data)) == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    assert {"os", "cpu", "memory", "gpus", "llama", "notes"} <= set(data)
    assert isinstance(data["gpus"][0]["memory_total"], int)


def test_newer_schema_is_refused_with_advice() -> None:
    data = profile_report("apple_m2").to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ReportFormatError, match="upgrade localllm"):
        HardwareReport.from_dict(data)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("cpu"),
        lambda d: d["cpu"].pop("flags"),
        lambda d: d["gpus"].append({"index": 3}),
        lambda d: d.__setitem__("schema_version", "one"),
        lambda d: d["memory"].__setitem__("numa_nodes", [{"bogus": 1}]),
    ],
)
def test_malformed_reports_raise_report_format_error(breakage: object) -> None:
    data = profile_report("nvidia_laptop").to_dict()
    breakage(data)  # type: ignore[operator]
    with pytest.raises(ReportFormatError, match="not a valid hardware report"):
        HardwareReport.from_dict(data)
