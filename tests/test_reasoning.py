from __future__ import annotations


def test_the_clients_read_the_servers_thinking_field() -> None:
    from localllm.reasoning import chunk_parts

    chunk = {"message": {"role": "assistant", "thinking": "hmm", "content": "Yes."}}
    assert chunk_parts(chunk) == [("thinking", "hmm"), ("content", "Yes.")]
    # Tags in content are the model's words once the server has split: left alone.
    assert chunk_parts({"message": {"content": "<think>x"}}) == [("content", "<think>x")]
    assert chunk_parts({"done": True, "message": {"content": ""}}) == []
