"""A sliding-window model's cache kept full-size where it fits (localllm/planner/rollback.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from localllm.gguf.local import read_local
from localllm.planner.memory import MemoryEstimate, estimate, kv_bytes
from localllm.planner.plan import Candidate, plan
from localllm.planner.rollback import with_full_swa
from localllm.planner.settings import LoadSettings
from tests.factory import TINY, TINY_SWA, write_model
from tests.live_server import BUDGET


def test_a_full_window_cache_where_it_fits(tmp_path: Path) -> None:
    info = read_local(write_model(TINY_SWA, tmp_path / "swa.gguf"))
    option = plan([Candidate("F32", info, 0)], BUDGET, n_ctx=2048).choice
    assert option is not None and not option.settings.swa_full

    def memory(s: LoadSettings) -> MemoryEstimate:
        return estimate(info, s)

    full = with_full_swa(option, info, BUDGET, memory)
    assert full.settings.swa_full
    assert sum(kv_bytes(info, full.settings)) > sum(kv_bytes(info, option.settings))
    assert full.estimate.total > option.estimate.total
    tight = replace(BUDGET, ram_usable=option.estimate.total)
    assert with_full_swa(option, info, tight, memory) is option
    plain = read_local(write_model(TINY, tmp_path / "tiny.gguf"))
    plain_option = plan([Candidate("F32", plain, 0)], BUDGET, n_ctx=2048).choice
    assert plain_option is not None
    assert with_full_swa(plain_option, plain, BUDGET, memory) is plain_option
