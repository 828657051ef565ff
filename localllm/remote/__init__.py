"""Beyond one machine: llama.cpp's RPC workers.

`rpc` binds llama.cpp's RPC backend (serve devices, use a worker's); `workers`
parses and checks worker addresses and asks them, from a child process, what
they serve. llama.cpp's RPC protocol has no authentication and no encryption: a
worker listens on loopback unless told otherwise.
"""
