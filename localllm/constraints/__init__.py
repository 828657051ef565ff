"""Constrained output, prepared in the server process before a worker sees it.

A request's JSON schemas (Ollama's `format`, OpenAI's `response_format`, tool
parameters) are checked against the JSON Schema meta-schema and this
engine's limits (`schema`), then turned into the GBNF grammar the worker's
sampler compiles (`grammar`). A schema that cannot be used is a 400 naming
the path of the bad part; a worker only ever receives grammar text that the
converter produced, so no request can make it fail there.
"""
