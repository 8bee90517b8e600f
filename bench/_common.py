"""Shared helpers for the benchmarks: side-by-side rounds, medians, a table, targets.

Every figure is a ratio of runs measured in the same process, alternating, so the machine's
noise hits every variant alike. A script exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def machine() -> str:
    import dlt

    cpus = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        memory = f", {mem_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        memory = ""
    return (f"{platform.machine()} {platform.system()}, {cpus} CPUs{memory}, Python "
            f"{platform.python_version()}, dlt {dlt.__version__}")


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def alternating(
    variants: dict[str, Callable[[int], Any]],
    rounds: int,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Runs every variant once per round, rotating the order; returns wall seconds and, into
    `cpu` when given, CPU seconds (what the work costs, whatever else the machine runs)."""
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            started, cpu_started = time.perf_counter(), cpu_seconds()
            variants[name](r)
            seconds[name].append(time.perf_counter() - started)
            if cpu is not None:
                cpu.setdefault(name, []).append(cpu_seconds() - cpu_started)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {seconds[n][-1]:.2f} s" for n in names), file=sys.stderr, flush=True)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (what bench/README.md holds)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@dataclass
class Targets:
    """Targets a script checks; `exit_code()` is 1 when one is missed."""

    rows: list[list[Any]] = field(default_factory=list)
    missed: int = 0

    def check(self, name: str, value: float, limit: float, unit: str = "x",
              lower_is_better: bool = True) -> None:
        ok = value <= limit if lower_is_better else value >= limit
        self.missed += 0 if ok else 1
        sign = "<=" if lower_is_better else ">="
        self.rows.append([name, f"{value:.3f}{unit}", f"{sign} {limit}{unit}",
                          "met" if ok else "MISSED"])

    def report(self) -> str:
        return table(["target", "measured", "goal", ""], self.rows) if self.rows else ""

    def exit_code(self) -> int:
        return 1 if self.missed else 0
