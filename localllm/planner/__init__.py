"""The fit planner: how a model loads on a machine (memory, offload, context, threads),
from its GGUF headers and the hardware report, before anything is downloaded."""
