"""Go's `text/template`, in Python: one lexer, one parser, one executor, as Go has them.

    template = parse(text)          # TemplateError on a syntax error, with the line
    template.execute(data)          # TemplateError on an execution error

`data` is built of dicts (Go maps and structs), lists, strings, numbers, bools and
None; values with a `go_string()` method print through it, as Go's Stringers do.
The functions are Go's built-ins plus the `funcs` given to `parse` (Ollama's own).
"""

from localllm.templates.go.errors import TemplateError
from localllm.templates.go.exec import Template, parse

__all__ = ["Template", "TemplateError", "parse"]
