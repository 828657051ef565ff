"""OpenAI's Responses API (`POST /v1/responses`), stateless: its body (`protocol`), the
chat request it means (`decode`), and its output items and semantic events (`encode`)."""
