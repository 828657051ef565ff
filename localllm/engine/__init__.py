"""The llama.cpp side: loading models with a plan, and trial loads that measure them.

Every module that imports llama_cpp runs it in a child process or is only
imported by code that needs inference: llama.cpp aborts the whole process on
some malformed files, and importing it is slow.
"""
