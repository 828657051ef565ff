"""Model management as a service, without HTTP: what is stored, shown, running and
would fit (`catalog`), and what changes the store (`changes`: pull, create, copy,
delete, uploaded blobs)."""
