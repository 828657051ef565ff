"""`GET /metrics`: the server in Prometheus' text format, through `prometheus-client`.

Per request (observed when its answer ends, from what the access log also reads):
requests by endpoint (the route's template, so ids do not multiply series), dialect,
status and API key name; prompt and generated tokens by model; time to first token,
time per generated token and the wait before the worker started the prompt, as
histograms. Read at each scrape from the scheduler: the models loaded with their
memory (RAM and VRAM), the streams each runs and the requests waiting for a slot,
the KV cells each can hold; loads, evictions and worker deaths so far. A registry
per app (not the library's global one): every app, a test's too, counts alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localllm.inference.record import AccessRecord
from localllm.server.dialects import dialect_of
from localllm.server.security import Scope

if TYPE_CHECKING:
    from localllm.models.catalog import Catalog
    from localllm.workers.scheduler import Scheduler

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PER_TOKEN = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class Metrics:
    def __init__(self, scheduler: Scheduler, catalog: Catalog) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "localllm_requests", "HTTP requests answered.",
            ["endpoint", "dialect", "status", "key"], registry=r,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "localllm_prompt_tokens", "Prompt tokens of answered requests.", ["model"], registry=r
        )
        self.generated_tokens = Counter(
            "localllm_generated_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.first_token = Histogram(
            "localllm_time_to_first_token_seconds",
            "From the request's arrival to its answer's first token.",
            ["model"], buckets=LATENCY, registry=r,
        )  # fmt: skip
        self.per_token = Histogram(
            "localllm_time_per_output_token_seconds",
            "Time between two generated tokens of an answer (its mean).",
            ["model"], buckets=PER_TOKEN, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "localllm_queue_wait_seconds",
            "From the request's arrival to the worker starting its prompt: the wait for a "
            "slot (and for a load).",
            ["model"], buckets=LATENCY, registry=r,
        )  # fmt: skip
        r.register(_Loaded(scheduler, catalog))

    def observe(self, scope: Scope, status: int, record: AccessRecord) -> None:
        """One request answered (the access log's middleware calls this)."""
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        dialect = dialect_of(scope["path"]).name if route is not None else "none"
        self.requests.labels(endpoint, dialect, str(status), record.key or "-").inc()
        model = record.model
        if model is None or record.prompt_tokens is None:
            return
        self.prompt_tokens.labels(model).inc(record.prompt_tokens)
        self.generated_tokens.labels(model).inc(record.eval_tokens or 0)
        if record.first_token is not None:
            self.first_token.labels(model).observe(record.first_token - record.started)
            if record.prompt_s is not None:
                waited = record.first_token - record.started - record.prompt_s
                self.queue_wait.labels(model).observe(max(0.0, waited))
        n = record.eval_tokens or 0
        if record.first_token is not None and record.ended is not None and n > 1:
            self.per_token.labels(model).observe((record.ended - record.first_token) / (n - 1))

    def routes(self) -> list[Route]:
        async def metrics(request: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return [Route("/metrics", metrics, methods=["GET"])]


class _Loaded(Collector):
    """What the scheduler holds, read at each scrape."""

    def __init__(self, scheduler: Scheduler, catalog: Catalog) -> None:
        self.scheduler = scheduler
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        memory = GaugeMetricFamily(
            "localllm_model_memory_bytes", "Memory of each loaded model, by kind.",
            labels=["model", "kind"],
        )  # fmt: skip
        running = GaugeMetricFamily(
            "localllm_streams_running", "Requests decoding, per model.", labels=["model"]
        )
        waiting = GaugeMetricFamily(
            "localllm_queue_depth", "Requests waiting for a slot, per model.", labels=["model"]
        )
        cells = GaugeMetricFamily(
            "localllm_kv_cells", "KV cache cells each model holds (slots x context).",
            labels=["model"],
        )  # fmt: skip
        used = GaugeMetricFamily(
            "localllm_kv_cells_used", "KV cache cells in use, as each model's last answer ended.",
            labels=["model"],
        )  # fmt: skip
        loaded = GaugeMetricFamily("localllm_models_loaded", "Models loaded now.")
        models = self.catalog.running()
        loaded.add_metric([], len(models))
        for m in models:
            name = str(m["name"]).removesuffix(":latest")  # as the access log names it
            vram = int(m["size_vram"])
            memory.add_metric([name, "vram"], vram)
            memory.add_metric([name, "ram"], max(0, int(m["size"]) - vram))
            slots, busy = int(m["parallel"]), int(m["busy"])
            running.add_metric([name], min(busy, slots) if slots else busy)
            waiting.add_metric([name], max(0, busy - slots) if slots else 0)
            cells.add_metric([name], int(m["context_length"]) * max(slots, 1))
            used.add_metric([name], int(m["kv_used"]))
        yield from (loaded, memory, running, waiting, cells, used)
        tally = self.scheduler.tally
        for name, value, help_text in (
            ("localllm_model_loads", tally.loads, "Models loaded."),
            ("localllm_model_evictions", tally.evictions, "Idle models unloaded for room."),
            ("localllm_worker_deaths", tally.deaths, "Model workers that died."),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
