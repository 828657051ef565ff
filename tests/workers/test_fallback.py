"""The levels of a careful load (`workers.fallback`), without a process: what each
level changes in the load it is given."""

from __future__ import annotations

from localllm.engine.protocol import Draft, Load
from localllm.planner.settings import LoadSettings
from localllm.workers.fallback import at_level

SETTINGS = LoadSettings(n_gpu_layers=0, n_ctx=512)


def test_a_careful_load_loads_its_draft_model_carefully_too() -> None:
    careful = at_level(Load(("model.gguf",), SETTINGS, draft=Draft("draft.gguf", SETTINGS)), 1)
    assert careful.settings.fallback == 1
    assert careful.draft is not None and careful.draft.settings.fallback == 1
    assert careful.draft.path == "draft.gguf" and careful.paths == ("model.gguf",)


def test_a_load_without_a_draft_keeps_none() -> None:
    careful = at_level(Load(("model.gguf",), SETTINGS), 2)
    assert careful.settings.fallback == 2 and careful.draft is None
