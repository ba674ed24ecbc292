"""Prometheus metrics in the text exposition format, written by hand (no client library).

Series (all prefixed ``crackscan_``):

* ``http_requests_total{route,method,status}`` — counter; ``route`` is the route's
  path template (``/v1/classify``), ``unmatched`` for unknown paths, so a scanner
  cannot blow up the label set.
* ``http_request_duration_seconds{route}`` — histogram of the whole request.
* ``inference_seconds{endpoint,model}`` — histogram of model work (decode, model, measure).
* ``queue_depth`` — gauge: requests waiting for an inference worker.
* ``inflight_inferences`` — gauge: inferences running now.
* ``queue_rejections_total`` — counter: requests answered 429.
* ``models_loaded`` — gauge.

Every update takes one lock: a few hundred nanoseconds against milliseconds of inference.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "crackscan_"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    items = (*labels, *extra)
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Histogram:
    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break


class Metrics:
    """The service's counters, gauges and histograms; :meth:`render` gives the exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = {}
        self._request_seconds: dict[Labels, _Histogram] = {}
        self._inference_seconds: dict[Labels, _Histogram] = {}
        self._rejections = 0
        self._gauges: dict[str, Callable[[], float]] = {}
        self._started = time.time()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (("route", route), ("method", method), ("status", str(status)))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._request_seconds.setdefault((("route", route),), _Histogram(REQUEST_BUCKETS))
            hist.observe(seconds)

    def observe_inference(self, endpoint: str, model: str, seconds: float) -> None:
        key = (("endpoint", endpoint), ("model", model))
        with self._lock:
            self._inference_seconds.setdefault(key, _Histogram(INFERENCE_BUCKETS)).observe(seconds)

    def count_rejection(self) -> None:
        with self._lock:
            self._rejections += 1

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge read at scrape time (queue depth, models loaded)."""
        self._gauges[name] = read

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines += _counter(
                "http_requests_total", "HTTP requests by route template, method and status.", self._requests.items()
            )
            lines += _histograms(
                "http_request_duration_seconds", "Whole-request latency in seconds.", self._request_seconds.items()
            )
            lines += _histograms(
                "inference_seconds",
                "Time in the inference worker (decode, model, measure) in seconds.",
                self._inference_seconds.items(),
            )
            lines += _counter(
                "queue_rejections_total",
                "Requests refused with 429 because the queue was full.",
                [((), self._rejections)],
            )
        for name, read in sorted(self._gauges.items()):
            lines += [f"# HELP {PREFIX}{name} {name.replace('_', ' ')}.", f"# TYPE {PREFIX}{name} gauge"]
            lines.append(f"{PREFIX}{name} {_num(float(read()))}")
        lines += [
            f"# HELP {PREFIX}process_start_time_seconds Start time of the service since the Unix epoch.",
            f"# TYPE {PREFIX}process_start_time_seconds gauge",
            f"{PREFIX}process_start_time_seconds {_num(round(self._started, 3))}",
        ]
        return "\n".join(lines) + "\n"


def _counter(name: str, help_text: str, items: Iterable[tuple[Labels, int]]) -> list[str]:
    out = [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} counter"]
    out += [f"{PREFIX}{name}{_labels(labels)} {_num(n)}" for labels, n in sorted(items)]
    return out


def _histograms(name: str, help_text: str, items: Iterable[tuple[Labels, _Histogram]]) -> list[str]:
    out = [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} histogram"]
    for labels, hist in sorted(items, key=lambda kv: kv[0]):
        cumulative = 0
        for bound, n in zip(hist.buckets, hist.counts, strict=True):
            cumulative += n
            out.append(f"{PREFIX}{name}_bucket{_labels(labels, (('le', _num(bound)),))} {cumulative}")
        out.append(f"{PREFIX}{name}_bucket{_labels(labels, (('le', '+Inf'),))} {hist.count}")
        out.append(f"{PREFIX}{name}_sum{_labels(labels)} {_num(round(hist.sum, 6))}")
        out.append(f"{PREFIX}{name}_count{_labels(labels)} {hist.count}")
    return out


class MetricsMiddleware:
    """Count every HTTP request by route template and status, and time it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, mounts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.mounts = mounts  # mounted sub-apps (static files) set no route: label them by their prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before any response counts as a server error

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                path = scope.get("path", "")
                template = next((m for m in self.mounts if path.startswith(m + "/")), "unmatched")
            self.metrics.observe_request(template, scope.get("method", ""), status, time.perf_counter() - start)
