"""The inference server: Ollama- and OpenAI-compatible HTTP APIs over a scheduler of
worker processes (one per loaded model).

`settings.py`, `daemon.py` and `client`-side code import nothing heavy; the
web framework is imported only by `app.py` and the route modules, when a
server really starts.
"""
