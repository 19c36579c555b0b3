"""Prometheus metrics on a registry of the app's own (so tests can build several apps).

Under ``clearbg serve --workers N`` prometheus-client runs in its multiprocess mode (each
process writes its values to files in one folder): ``/metrics`` of any process answers the sum
over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

__all__ = ["Metrics", "multiprocess_mode"]


def multiprocess_mode() -> bool:
    """True when prometheus-client keeps its values in shared files (set at its import)."""
    return values.ValueClass is not values.MutexValue


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clearbg_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "clearbg_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.images = Counter(
            "clearbg_images", "Images delivered", ["endpoint", "model"], registry=self.registry
        )
        self.errors = Counter("clearbg_errors", "Errors by code", ["code"], registry=self.registry)
        self.queue_depth = Gauge(
            "clearbg_queue_depth",
            "Photos waiting for the engine",
            ["queue"],
            registry=self.registry,
            multiprocess_mode="livemax",  # several processes: the deepest
        )

        # the gateway, by application id (never by client IP: bounded cardinality)
        self.gateway_requests = Counter(
            "clearbg_gateway_requests",
            "Gateway requests by application, status and error code",
            ["application", "status", "code"],
            registry=self.registry,
        )
        self.gateway_latency = Histogram(
            "clearbg_gateway_seconds",
            "Gateway latency by application (total and upstream)",
            ["application", "part"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )

    def render(self) -> bytes:
        if not multiprocess_mode():
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def close(self) -> None:
        """This process stops: its live gauges leave the sum."""
        if multiprocess_mode():
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
