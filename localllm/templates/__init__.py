"""Chat templates: Ollama's Go templates (`go/`, a port of Go's `text/template`) and
their values (`ollama.py`). Jinja templates (GGUF's own) render in `engine.chat`."""
