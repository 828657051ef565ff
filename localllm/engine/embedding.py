"""Embeddings and reranking in a free slot of the batching engine, between two steps of
the others."""

from __future__ import annotations

from typing import Any

import llama_cpp

from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Embed, Embedded, Failed, Rank, Ranked
from localllm.engine.tokenbatch import TokenBatch


def embed(
    model: LlamaModel, batch: TokenBatch, request: Embed, seq: int, limit: int
) -> Embedded | Failed:
    """Each input's mean-pooled, normalised embedding, computed on sequence `seq`, which
    ends empty. `limit`: the most tokens one input may have (longer ones are cut when
    the request allows it, else refused)."""
    if llama_cpp.llama_pooling_type(model.ctx) == llama_cpp.LLAMA_POOLING_TYPE_RANK:
        return Failed(request.id, 400, "this model is a reranker: it scores (query, document) "
                      "pairs at /v1/rerank and makes no embeddings")  # fmt: skip
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
            pointer = _pooled(model, batch, tokens, seq)
            if pointer is None:
                return Failed(request.id, 500, "llama.cpp could not compute the embedding")
            vector = [pointer[i] for i in range(n_embd)]
            norm = sum(v * v for v in vector) ** 0.5 or 1.0
            vectors.append(tuple(v / norm for v in vector))
    finally:
        llama_cpp.llama_set_embeddings(model.ctx, False)
        llama_cpp.llama_memory_seq_rm(model.memory, seq, -1, -1)
    return Embedded(request.id, tuple(vectors), total)


def rank(
    model: LlamaModel, batch: TokenBatch, request: Rank, seq: int, limit: int
) -> Ranked | Failed:
    """Each document's score against the query, by a reranker (llama.cpp's pooling type
    rank: its classifier's first output, as llama-server's `/v1/rerank` reads it), on
    sequence `seq`, which ends empty. A model of another pooling is refused (400)."""
    pooling = llama_cpp.llama_pooling_type(model.ctx)
    if pooling != llama_cpp.LLAMA_POOLING_TYPE_RANK:
        return Failed(request.id, 400, "this model is not a reranker (its GGUF's pooling type is "
                      f"{POOLING_NAMES.get(pooling, pooling)}, not rank): use a reranker GGUF, "
                      "such as a Qwen3-Reranker or bge-reranker")  # fmt: skip
    scores = []
    total = 0
    llama_cpp.llama_set_embeddings(model.ctx, True)
    try:
        for document in request.documents:
            tokens = pair_tokens(model, request.query, document)
            if len(tokens) > limit:
                if not request.truncate:
                    why = f"a query and document are {len(tokens)} tokens, over the {limit} "
                    return Failed(request.id, 400, why + "this model ranks at once; set truncate")
                tokens = tokens[:limit]
            total += len(tokens)
            pointer = _pooled(model, batch, tokens, seq)
            if pointer is None:
                return Failed(request.id, 500, "llama.cpp could not compute the score")
            scores.append(float(pointer[0]))
    finally:
        llama_cpp.llama_set_embeddings(model.ctx, False)
        llama_cpp.llama_memory_seq_rm(model.memory, seq, -1, -1)
    return Ranked(request.id, tuple(scores), total)


def _pooled(model: LlamaModel, batch: TokenBatch, tokens: list[int], seq: int) -> Any:
    """`tokens` decoded alone on sequence `seq`: llama.cpp's pooled output for it (an
    embedding, or a reranker's scores), or None when the decode failed."""
    llama_cpp.llama_memory_seq_rm(model.memory, seq, -1, -1)
    for i, token in enumerate(tokens):
        batch.put(i, token, i, seq, True)
    if batch.decode(model.ctx, len(tokens)):
        return None
    return llama_cpp.llama_get_embeddings_seq(model.ctx, seq)


POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def pair_tokens(model: LlamaModel, query: str, document: str) -> list[int]:
    """A (query, document) pair as the reranker reads it: its GGUF's rerank template
    (`tokenizer.chat_template.rerank`, with `{query}` and `{document}`), else
    llama-server's default: BOS query EOS SEP document EOS."""
    template = model.metadata_text("tokenizer.chat_template.rerank")
    if template:
        text = template.replace("{query}", query).replace("{document}", document)
        return model.tokenize(text, add_special=True)
    vocab = model.vocab
    bos, eos = llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_eos(vocab)
    sep = llama_cpp.llama_vocab_sep(vocab)
    out = [bos] if bos >= 0 else []
    out += model.tokenize(query, add_special=False)
    out += [eos] if eos >= 0 else []
    out += [sep] if sep >= 0 else []
    out += model.tokenize(document, add_special=False)
    return out + ([eos] if eos >= 0 else [])
