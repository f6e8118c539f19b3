"""Percentiles, one row per measured quantity, and a figure's table as text and as JSON.

Percentiles interpolate linearly between the two nearest ranks (numpy's default, Hyndman-Fan type 7), so
with few runs p99 sits just under the maximum. A row holds either a ``Summary`` of several runs or one
``value`` (a capacity, a memory size), and optionally a ``Goal`` that gives it a verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, interpolated between the closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    runs: int
    median: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> Summary:
        values = list(samples)
        return cls(
            runs=len(values),
            median=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            min=min(values),
            max=max(values),
            mean=statistics.fmean(values),
        )


Stat = Literal["median", "p90", "p99", "value"]


@dataclass(frozen=True, slots=True)
class Goal:
    """``stat op limit``, e.g. the median at most 30 (ms)."""

    stat: Stat
    op: Literal["<=", ">="]
    limit: float

    def met(self, row: Row) -> bool | None:
        value = row.stat(self.stat)
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        where = "" if self.stat == "value" else f"{self.stat} "
        return f"{where}{'≤' if self.op == '<=' else '≥'} {_number(self.limit)}"


@dataclass
class Row:
    """One measured quantity: several runs (``samples``) or a single ``value``."""

    name: str
    unit: str
    samples: list[float] | None = None
    value: float | None = None
    goal: Goal | None = None
    note: str = ""

    @property
    def summary(self) -> Summary | None:
        return Summary.of(self.samples) if self.samples else None

    def stat(self, stat: Stat) -> float | None:
        if stat == "value":
            return self.value
        summary = self.summary
        return None if summary is None else float(getattr(summary, stat))

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        met = self.goal.met(self)
        return "n/a" if met is None else ("ok" if met else "MISS")

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "name": self.name,
            "unit": self.unit,
            "summary": None if summary is None else _summary_json(summary),
            # Thousands of latencies would drown the file; their summary is above.
            "samples": self.samples if self.samples is None or len(self.samples) <= 1000 else None,
            "value": self.value,
            "goal": None if self.goal is None else str(self.goal),
            "verdict": self.verdict or None,
            "note": self.note or None,
        }


@dataclass
class Figure:
    """One figure of the suite: a title, how it was measured, its rows, and details for the JSON."""

    key: str
    title: str
    method: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    load: dict[str, float] = field(default_factory=dict)
    """CPU used meanwhile by other work on the machine (``LoadWatch``): noise in the figures."""
    error: str | None = None

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "method": self.method,
            "rows": [row.to_json() for row in self.rows],
            "details": self.details,
            "duration_s": round(self.duration_s, 1),
            "machine_load": self.load,
            "error": self.error,
        }


_HEADERS = ("", "unit", "median", "p90", "p99", "runs", "goal", "verdict")


def format_table(figure: Figure) -> str:
    """The figure as a plain-text table with its title and method above it."""
    load = figure.load
    noise = f", other load {load['other_cores']:.2f} cores, steal {load['steal_cores']:.2f}" if load else ""
    lines = [f"{figure.title}  ({figure.duration_s:.0f} s{noise})", f"  {figure.method}"]
    if figure.error:
        lines.append(f"  FAILED: {figure.error}")
    body: list[tuple[str, ...]] = []
    for row in figure.rows:
        summary = row.summary
        if summary is not None:
            stats = (_number(summary.median), _number(summary.p90), _number(summary.p99), str(summary.runs))
        else:
            stats = (
                "-" if row.value is None else _number(row.value),
                "",
                "",
                "1" if row.value is not None else "0",
            )
        name = row.name + (f"  [{row.note}]" if row.note else "")
        body.append((name, row.unit, *stats, "" if row.goal is None else str(row.goal), row.verdict))
    widths = [max(len(r[i]) for r in [_HEADERS, *body]) for i in range(len(_HEADERS))]
    for cells in [_HEADERS, *body]:
        left = cells[0].ljust(widths[0])
        rest = [cells[1].ljust(widths[1])] + [
            c.rjust(w) for c, w in zip(cells[2:6], widths[2:6], strict=True)
        ]
        lines.append("  " + "  ".join([left, *rest, cells[6].ljust(widths[6]), cells[7]]).rstrip())
    return "\n".join(lines)


def _number(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _summary_json(summary: Summary) -> dict[str, float]:
    return {
        name: round(getattr(summary, name), 3) for name in ("median", "p90", "p99", "min", "max", "mean")
    } | {"runs": summary.runs}
