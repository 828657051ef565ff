"""The one error of the Go template engine, with Go's wording where it has one."""

from localllm.errors import LocalLLMError


class TemplateError(LocalLLMError):
    """A template that does not parse, or that fails on its data."""
