"""localllm: run large language models on your own machine.

Importing this package does no work: no directories are created, no
configuration is read and no heavy library (llama.cpp, Textual) is loaded.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
