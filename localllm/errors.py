"""The errors a person can cause, each with a message written for that person.

The CLI prints `str(error)`; the API returns it as `{"error": ...}`. Anything
that is not a `LocalLLMError` is a bug and shows a traceback only with `--debug`.
"""


class LocalLLMError(Exception):
    """Base of every error whose message is meant for the user."""


class ConfigError(LocalLLMError):
    """A setting from the environment or a config file is unusable."""
