"""Models: references, where their files are, and (with `pull`) the local store."""
