"""The Modelfile parser: Ollama's syntax, strict errors, and a faithful round trip."""

from __future__ import annotations

import pytest

from localllm.store.modelfile import (
    Message,
    Modelfile,
    ModelfileError,
    parameter_value,
    parse_modelfile,
)

EXAMPLE = '''# a comment
from hf.co/acme/Llama-3.2-3B-Instruct-GGUF:Q4_K_M
PARAMETER temperature 0.6
parameter stop "<|eot_id|>"
PARAMETER stop "<|end_of_text|>"
PARAMETER num_ctx 8192
PARAMETER use_mmap true
SYSTEM """You are a careful assistant.
Answer briefly."""
TEMPLATE """{{ messages }}"""
ADAPTER ./lora.gguf
LICENSE """Llama 3.2 Community License
(abridged)"""
MESSAGE user Is the sky blue?
MESSAGE assistant """Yes."""
DRAFT llama3.2:1b
'''


def test_parses_every_instruction() -> None:
    mf = parse_modelfile(EXAMPLE)
    assert mf.from_ == "hf.co/acme/Llama-3.2-3B-Instruct-GGUF:Q4_K_M"
    assert mf.parameters == {"temperature": 0.6, "stop": ["<|eot_id|>", "<|end_of_text|>"],
                             "num_ctx": 8192, "use_mmap": True}  # fmt: skip
    assert mf.system == "You are a careful assistant.\nAnswer briefly."
    assert mf.template == "{{ messages }}"
    assert mf.adapters == ("./lora.gguf",)
    assert mf.licenses == ("Llama 3.2 Community License\n(abridged)",)
    assert mf.messages == (Message("user", "Is the sky blue?"), Message("assistant", "Yes."))
    assert mf.draft == "llama3.2:1b"


def test_round_trip() -> None:
    mf = parse_modelfile(EXAMPLE)
    assert parse_modelfile(mf.to_text()) == mf
    tricky = Modelfile("x", {"stop": ['say "hi"', "\\n"]}, system="  padded  ")
    assert parse_modelfile(tricky.to_text()) == tricky


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("FROM x\nPARAMETER temprature 0.7\n", 2, "unknown parameter 'temprature'"),
        ("FROM x\nPARAMETER temperature hot\n", 2, "bad value for temperature"),
        ("FROM x\nPARAMETER top_p 1.5\n", 2, "bad value for top_p"),
        ("FROM x\nPARAMETER num_ctx\n", 2, "needs a value"),
        ("FROM x\nSYSTEMS hi\n", 2, "unknown instruction SYSTEMS"),
        ('FROM x\nSYSTEM """never closed\nmore\n', 2, "never closed"),
        ("FROM x\nMESSAGE robot hi\n", 2, "MESSAGE role must be one of"),
        ("FROM x\nFROM y\nFROM z\n", 3, "FROM may appear at most twice"),
        ("PARAMETER seed 1\n", 1, "needs a FROM line"),
        ("FROM\n", 1, "FROM needs a model"),
        ('FROM x\nSYSTEM """a""" b\n', 2, 'text after the closing """'),
        ("FROM x\nDRAFT a\nDRAFT b\n", 3, "DRAFT may appear only once"),
        ("FROM x\nDRAFT\n", 2, "DRAFT needs a model"),
        ("FROM x\nPARAMETER draft_max 17\n", 2, "bad value for draft_max"),
    ],
)
def test_errors_name_file_line_and_text(text: str, line: int, problem: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text, source="my.Modelfile")
    err = info.value
    assert err.line == line and problem in err.problem
    assert str(err).startswith(f"my.Modelfile:{line}: ")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("temperature", [], "needs a value"),
        ("temperature", [0.1, 0.2], "takes one value"),
        ("stop", [["a"]], "must be a string"),
        ("seed", {"a": 1}, "must be a single value"),
        ("num_ctx", 10**30, "from 1 to 16777216"),
        ("num_thread", 100000, "from 0 to 512"),
        ("top_p", "nan", "from 0 to 1"),
        ("temperature", "inf", "from 0 to 1e+06"),
        ("stop", ["x"] * 65, "at most 64 stops"),
        ("temprature", 1, "unknown parameter 'temprature'"),
    ],
)
def test_json_parameters_follow_the_modelfiles_rules(
    name: str, value: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem.replace("+", "\\+")):
        parameter_value(name, value)


def test_json_parameters_parse_as_a_modelfile_line_would() -> None:
    assert parameter_value("temperature", 0.5) == 0.5
    assert parameter_value("stop", "x") == ["x"]
    assert parameter_value("use_mmap", False) is False
    assert parameter_value("num_ctx", "2048") == 2048
    with pytest.raises(ModelfileError, match="bad value for num_batch"):
        parse_modelfile("FROM x\nPARAMETER num_batch 1000000\n")
