"""Ollama's native API (`/api/...`): NDJSON streams, durations in nanoseconds, errors
as `{"error": message}`. Also localllm's home: `/` and model management."""

from localllm.dialects.ollama.encode import error_body
from localllm.dialects.ollama.routes import OllamaAPI
from localllm.dialects.wire import Dialect

DIALECT = Dialect("ollama", ("/",), lambda services: OllamaAPI(services).routes(), error_body)
