"""OpenAI's API (`/v1/...`): Chat Completions, Completions, Responses (`responses/`),
embeddings and models; SSE streams; errors as `{"error": {message, type, code}}`."""

from localllm.dialects.openai.encode import error_body
from localllm.dialects.openai.routes import OpenAIAPI
from localllm.dialects.wire import Dialect

DIALECT = Dialect("openai", ("/v1/",), lambda services: OpenAIAPI(services).routes(), error_body)
