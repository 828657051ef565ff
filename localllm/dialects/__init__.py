"""The HTTP APIs localllm speaks, each a codec over the one inference core: its wire
bodies (`protocol`), `decode` (body -> `localllm.inference.request`), `encode` (the
core's events -> its wire, whole and streamed, and its error shape) and `routes`.
`wire` holds what they share. A dialect imports the core and `wire`, never another
dialect (a contract CI checks: `pyproject.toml`)."""
