"""What to tell a person when a request fails: the server's message and what to do."""

from __future__ import annotations


def advice(exc: Exception, url: str) -> str:
    # Imported here: the chat screen imports this module, and httpx (under the client)
    # would cost its first paint 90 ms; an error means the client is loaded already.
    from localllm.client import ServerError, ServerNotRunning

    if isinstance(exc, ServerNotRunning):
        return (
            f"The localllm server is not answering at {url}. Start it with `localllm serve` "
            "(or `localllm run MODEL`, which starts it), then send again."
        )
    message = str(exc)
    if isinstance(exc, ServerError):
        if exc.status == 404:
            return f"{message}. Pull it on the Models screen (F3) or with `localllm pull NAME`."
        if "does not fit" in message or "out of memory" in message.lower():
            return (
                f"{message} Unload other models on the Models screen (F3), or lower the "
                "context: /set parameter num_ctx 2048."
            )
        if "but the context holds" in message:
            return (
                "The conversation no longer fits the model's context. /clear starts over "
                "(the chat stays in the history), or /set parameter num_ctx 8192 gives it "
                f"more room. ({message})"
            )
        if exc.status == 503:
            return f"{message} The server is busy; send again in a moment."
    return message or type(exc).__name__
