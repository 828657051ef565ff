"""The model workers, seen from the server: one process per loaded model (its copies
on other GPUs too), the scheduler that admits requests to them, loads with the
planner's settings and evicts idle ones, and each worker's log.

Imports the engine only over its wire (`engine.protocol`); knows no HTTP.
"""
