"""The one request core: the typed requests every dialect decodes into (`request`), the
events every dialect encodes (`events`), the recipe that makes a worker's request of
them (`recipe`, `options`, `thinking`, `images`, `prompt_size`), and the service that
runs them (`service`)."""
