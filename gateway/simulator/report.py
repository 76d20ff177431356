"""What a simulator run found: one line per case, as a table for people or JSON for machines."""

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.simulator.load import LoadResult


class Outcome(enum.StrEnum):
    PASSED = "pass"
    FAILED = "fail"
    SKIPPED = "skip"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case: passed, failed or skipped, why, and its slowest call."""

    name: str
    outcome: Outcome
    why: str
    latency_ms: float | None = None
    calls: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    url: str
    cases: tuple[CaseResult, ...]
    load: LoadResult | None = None
    notes: tuple[str, ...] = field(default=())

    def count(self, outcome: Outcome) -> int:
        return sum(1 for case in self.cases if case.outcome is outcome)

    @property
    def ok(self) -> bool:
        return self.count(Outcome.FAILED) == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "passed": self.count(Outcome.PASSED),
            "failed": self.count(Outcome.FAILED),
            "skipped": self.count(Outcome.SKIPPED),
            "cases": [
                {"name": case.name, "result": case.outcome.value, "why": case.why,
                 "latency_ms": case.latency_ms, "calls": case.calls}
                for case in self.cases
            ],
            "load": load_json(self.load) if self.load is not None else None,
            "notes": list(self.notes),
        }


def render_table(report: Report) -> str:
    """The cases as an aligned text table, then the totals."""
    rows = [("CASE", "RESULT", "LATENCY", "WHY")]
    for case in report.cases:
        latency = f"{case.latency_ms:.0f} ms" if case.latency_ms is not None else "-"
        rows.append((case.name, case.outcome.value.upper(), latency, case.why))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {outcome:<{widths[1]}}  {latency:>{widths[2]}}  {why}".rstrip()
        for name, outcome, latency, why in rows
    ]
    lines.append("")
    lines.extend(report.notes)
    totals = (f"{report.count(Outcome.PASSED)} passed, {report.count(Outcome.FAILED)} failed, "
              f"{report.count(Outcome.SKIPPED)} skipped against {report.url}")
    lines.append(totals)
    return "\n".join(lines)


def load_json(result: LoadResult) -> dict[str, Any]:
    """The load's numbers; NaN percentiles (nothing answered) become null."""

    def number(value: float, digits: int = 1) -> float | None:
        return None if math.isnan(value) else round(value, digits)

    return {
        "requested": result.requested,
        "sent": result.sent,
        "ok": result.ok,
        "errors": result.errors,
        "failures": dict(result.failures),
        "seconds": number(result.elapsed_s, 3),
        "throughput_per_s": number(result.throughput),
        "p50_ms": number(result.p50_ms),
        "p99_ms": number(result.p99_ms),
        "max_ms": number(result.max_ms),
    }
