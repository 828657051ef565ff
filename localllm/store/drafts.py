"""A model's draft model (Modelfile `DRAFT`): found, brought into the store, checked.

`DRAFT` names a model in the store, a local GGUF, or anything `pull` accepts (a
catalogue entry names its family's small sibling, pulled with it). The target's
manifest records the draft's weights as a layer of its own, so removing the
draft's name does not take the draft away from the models that use it. The
headers are checked here (tokenizer kind, vocabulary size, start and end tokens);
the worker compares every token's text when it loads the two (`engine.draft`).
"""

from __future__ import annotations

from localllm.errors import LocalLLMError
from localllm.gguf.reader import GGUFHeader, read_header
from localllm.gguf.source import FileSource
from localllm.store.manifests import Layer, Manifest
from localllm.store.store import Store

VOCAB_SIZE_SLACK = 128
"""As the worker's check (`engine.draft`): vocabularies padded to other sizes match."""


class DraftError(LocalLLMError):
    """A draft model that cannot draft for its model."""


def checked(source: str, target: Manifest, draft: Manifest, store: Store) -> Layer:
    """`draft`'s weights, once its header agrees with `target`'s (DraftError if not)."""
    if draft.parts:
        raise DraftError(f"DRAFT {source}: a split model cannot be a draft; use one file")
    problem = mismatch(_header(store, target.model), _header(store, draft.model))
    if problem:
        raise DraftError(f"DRAFT {source}: it cannot draft for this model: {problem}")
    return draft.model


def mismatch(target_header: GGUFHeader, draft_header: GGUFHeader) -> str | None:
    """Why a draft's tokenizer (from its GGUF header) differs from its target's; None if
    the headers agree."""
    from localllm.gguf.info import describe

    target, draft = target_header.metadata, draft_header.metadata
    key = "tokenizer.ggml.model"
    if target.get(key) != draft.get(key):
        return f"its tokenizer is {draft.get(key)!r}, the model's {target.get(key)!r}"
    n_target, n_draft = describe([target_header]).n_vocab, describe([draft_header]).n_vocab
    if abs(n_target - n_draft) > VOCAB_SIZE_SLACK:
        return f"its vocabulary has {n_draft} tokens, the model's {n_target}"
    for which in ("bos", "eos"):
        key = f"tokenizer.ggml.{which}_token_id"
        if target.get(key) != draft.get(key):
            return f"its {which} token is {draft.get(key)}, the model's {target.get(key)}"
    return None


def _header(store: Store, layer: Layer) -> GGUFHeader:
    with FileSource(store.blobs.path(layer.digest)) as source:
        return read_header(source)
