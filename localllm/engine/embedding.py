"""Embeddings in a free slot of the batching engine, between two steps of the others."""

from __future__ import annotations

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Embed, Embedded, Failed
from localllm.engine.tokenbatch import TokenBatch


def embed(
    model: LlamaModel, batch: TokenBatch, request: Embed, seq: int, limit: int
) -> Embedded | Failed:
    """Each input's mean-pooled, normalised embedding, computed on sequence `seq`, which
    ends empty. `limit`: the most tokens one input may have (longer ones are cut when
    the request allows it, else refused)."""
    vectors = []
    total = 0
    n_embd = llama_cpp.llama_model_n_embd(model.model)
    llama_cpp.llama_set_embeddings(model.ctx, True)
    try:
        for text in request.inputs:
            tokens = model.tokenize(text, add_special=True)
            if len(tokens) > limit:
                if not request.truncate:
                    return Failed(
                        request.id,
                        400,
                        f"an input is {len(tokens)} tokens, over the "
                        f"{limit} this model embeds at once; set truncate",
                    )
                tokens = tokens[:limit]
            total += len(tokens)
            llama_cpp.llama_memory_seq_rm(model.memory, seq, -1, -1)
            for i, token in enumerate(tokens):
                batch.put(i, token, i, seq, True)
            if batch.decode(model.ctx, len(tokens)):
                return Failed(request.id, 500, "llama.cpp could not compute the embedding")
            pointer = llama_cpp.llama_get_embeddings_seq(model.ctx, seq)
            vector = [pointer[i] for i in range(n_embd)]
            norm = sum(v * v for v in vector) ** 0.5 or 1.0
            vectors.append(tuple(v / norm for v in vector))
    finally:
        llama_cpp.llama_set_embeddings(model.ctx, False)
        llama_cpp.llama_memory_seq_rm(model.memory, seq, -1, -1)
    return Embedded(request.id, tuple(vectors), total)
