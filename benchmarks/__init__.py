"""Benchmark scripts: run each as `python benchmarks/NAME.py` (see its docstring)."""
