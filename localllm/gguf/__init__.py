"""GGUF model files: the header and tensor table, read locally or over HTTP ranges.

`read_header(source)` parses one file; `describe(headers)` turns the header(s)
of a model (one file, or every shard of a split model) into `ModelInfo`, the
facts the planner works from.
"""
