"""`/v1/rerank` with a generated reranker (pooling type rank), its scores checked
against llama.cpp's own on the same pairs; embeddings' `dimensions`."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.factory import RERANKER, write_model
from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow
QUERY = "t40 t41 t42"
DOCUMENTS = ["t40 t41 t42 t43", "t300 t301", "t41 t90 t91 t92 t93", "t7"]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(RERANKER, tmp_path_factory.mktemp("reranker") / "reranker.gguf")


def llama_cpp_scores(path: Path, query: str, documents: list[str]) -> list[float]:
    """llama.cpp's scores of each pair as llama-server forms it (BOS query EOS document
    EOS: this vocabulary has no SEP), through its own API, nothing of localllm."""
    import llama_cpp

    quiet = llama_cpp.llama_log_callback(lambda *_: None)
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p())
    defaults = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), defaults)
    vocab = llama_cpp.llama_model_get_vocab(model)
    params = llama_cpp.llama_context_default_params()
    params.embeddings, params.n_ctx, params.n_threads = True, 512, 2
    params.flash_attn_type = 0  # as localllm loads a model on a CPU (`flash_attention`)
    ctx = llama_cpp.llama_init_from_model(model, params)

    def tokens(text: str) -> list[int]:
        data = text.encode()
        array = (llama_cpp.llama_token * 512)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), array, 512, False, False)
        return list(array[:n])

    bos, eos = llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_eos(vocab)
    scores = []
    for document in documents:
        pair = [bos, *tokens(query), eos, *tokens(document), eos]
        batch = llama_cpp.llama_batch_init(len(pair), 0, 1)
        for i, token in enumerate(pair):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, True
        batch.n_tokens = len(pair)
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), 0, -1, -1)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        scores.append(float(llama_cpp.llama_get_embeddings_seq(ctx, 0)[0]))
        llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return scores


def test_rerank_orders_documents_by_llama_cpps_own_scores(
    make_server: Callable[..., Running], store: Store, reranker: Path
) -> None:
    add_model(store, "ranker", reranker, "PARAMETER num_ctx 512\n")
    server = make_server(store)
    body = {"model": "ranker", "query": QUERY, "documents": DOCUMENTS}
    r = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=120)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    expected = llama_cpp_scores(reranker, QUERY, DOCUMENTS)
    assert sorted(x["index"] for x in results) == [0, 1, 2, 3]
    for x in results:
        assert x["relevance_score"] == pytest.approx(expected[x["index"]], abs=1e-4)
    order = [x["index"] for x in results]
    assert order == sorted(range(4), key=lambda i: -expected[i])  # best first
    assert len(set(expected)) == 4  # the documents are told apart
    top = httpx.post(f"{server.url}/v1/rerank", timeout=120,
                     json={**body, "top_n": 2, "return_documents": True,
                           "documents": [{"text": d} for d in DOCUMENTS]}).json()  # fmt: skip
    assert [x["index"] for x in top["results"]] == order[:2]
    assert top["results"][0]["document"]["text"] == DOCUMENTS[order[0]]
    assert top["usage"]["prompt_tokens"] > 0


def test_the_wrong_model_for_the_job_is_told_why(
    make_server: Callable[..., Running], store: Store, reranker: Path
) -> None:
    add_model(store, "ranker", reranker, "PARAMETER num_ctx 512\n")
    server = make_server(store)
    chat = httpx.post(f"{server.url}/v1/rerank", timeout=120,
                      json={"model": "tiny", "query": "q", "documents": ["d"]})  # fmt: skip
    assert chat.status_code == 400
    assert "not a reranker" in chat.json()["error"]["message"]  # OpenAI's error shape
    embed = httpx.post(f"{server.url}/api/embed", json={"model": "ranker", "input": "x"},
                       timeout=120)  # fmt: skip
    assert embed.status_code == 400 and "/v1/rerank" in embed.json()["error"]
    empty = httpx.post(f"{server.url}/v1/rerank", timeout=30,
                       json={"model": "ranker", "query": "q", "documents": []})  # fmt: skip
    assert empty.status_code == 400 and "documents" in empty.json()["error"]["message"]
    over = {"model": "ranker", "query": "q", "documents": ["d"] * 1001}
    many = httpx.post(f"{server.url}/v1/rerank", json=over, timeout=30)
    assert many.status_code == 400 and "documents" in many.json()["error"]["message"]


def test_embedding_dimensions_are_cut_and_normalised(server: Running) -> None:
    full = httpx.post(f"{server.url}/api/embed", json={"model": "tiny", "input": "hello"},
                      timeout=120).json()["embeddings"][0]  # fmt: skip
    eight = {"model": "tiny", "input": "hello", "dimensions": 8}
    short = httpx.post(f"{server.url}/api/embed", json=eight, timeout=120).json()
    vector = short["embeddings"][0]
    assert len(vector) == 8 and sum(v * v for v in vector) == pytest.approx(1.0)
    head = full[:8]
    norm = sum(v * v for v in head) ** 0.5
    assert vector == pytest.approx([v / norm for v in head])
    openai = httpx.post(f"{server.url}/v1/embeddings", json=eight, timeout=120).json()
    assert openai["data"][0]["embedding"] == pytest.approx(vector)
