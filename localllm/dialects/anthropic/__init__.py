"""Anthropic's Messages API (`/v1/messages`): content blocks, named SSE events, errors
as `{"type": "error", "error": {type, message}}`."""

from localllm.dialects.anthropic.encode import error_body
from localllm.dialects.anthropic.routes import AnthropicAPI
from localllm.dialects.wire import Dialect

DIALECT = Dialect(
    "anthropic", ("/v1/messages",), lambda services: AnthropicAPI(services).routes(), error_body
)
