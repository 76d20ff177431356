"""Prometheus metrics; one registry per app, so several apps can live in one process."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.calls = Counter(
            "marketgate_calls",
            "Production calls answered, by product, kind, activity and result code",
            ["product", "kind", "activity", "result_code"],
            registry=self.registry,
        )
        self.call_seconds = Histogram(
            "marketgate_call_seconds",
            "Time to answer a production call",
            ["product", "kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.unknown_products = Counter(
            "marketgate_unknown_product_calls", "Calls to a slug no product has", registry=self.registry
        )
