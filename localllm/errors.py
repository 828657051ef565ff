"""The errors a person can cause, each with a message written for that person.

The CLI prints `str(error)`; the API returns it as `{"error": ...}`. Anything
that is not a `LocalLLMError` is a bug and shows a traceback only with `--debug`.
"""


class LocalLLMError(Exception):
    """Base of every error whose message is meant for the user."""


class ConfigError(LocalLLMError):
    """A setting from the environment or a config file is unusable."""


class ModelFileError(LocalLLMError):
    """A model file is not a GGUF we can read: corrupt, truncated or unsupported."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class RemoteError(LocalLLMError):
    """A remote file or repository could not be read (network, HTTP status, no ranges).

    `status` is what the API answers: 404 for a repository or file that is not
    there, 403 for one that needs a login, 502 (the default) when the remote side
    failed or could not be reached."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class APIError(LocalLLMError):
    """An error of one request, with the HTTP status its answer carries (each dialect
    writes it in its own shape: `localllm.dialects`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ContextOverflow(APIError):
    """A prompt longer than the model's context: each dialect answers it as its own API
    does (Anthropic's "prompt is too long", OpenAI's `context_length_exceeded`), since
    apps act on that error alone (they compact the conversation and try again)."""

    def __init__(self, message: str, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(400, message)
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


def status_of(exc: BaseException) -> int:
    """An error's own `status` (each kind that is not a plain 400 says which it is: an
    unknown model 404, a busy one 503, a store that cannot be written 500...); else 400
    for an error a person caused, 500 for a bug."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 400 if isinstance(exc, LocalLLMError) else 500


def message_of(exc: BaseException) -> str:
    """What the person is told: the message of an error they caused; for a bug, only
    that there was one (the traceback goes to the server log, never to the client)."""
    if isinstance(exc, LocalLLMError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see the server log"


def describe(exc: BaseException) -> str:
    """An exception as its kind and message ("ValueError: bad token"): what a worker
    tells the server of a request's own failure."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
