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
