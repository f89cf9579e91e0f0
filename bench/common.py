"""Helpers shared by the ``bench_*.py`` modules: scale, repeats, timing, the Spark session, tables."""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pyspark.sql import SparkSession

from shipments.config import Config, load_config
from shipments.session import build_spark

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONF = ROOT / "conf" / "local.yaml"

T = TypeVar("T")


def scale() -> float:
    """Volume multiplier from ``BENCH_SCALE`` (default 1; ``python -m bench --scale`` sets it)."""
    value = float(os.environ.get("BENCH_SCALE", "1"))
    if value <= 0:
        raise ValueError(f"BENCH_SCALE must be > 0, got {value}")
    return value


def repeats(default: int = 3) -> int:
    """How many times each timing is taken (``BENCH_REPEATS``); the median is reported."""
    return max(1, int(os.environ.get("BENCH_REPEATS", str(default))))


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` once; return (wall seconds, its result)."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@functools.cache
def base_config() -> Config:
    """``conf/local.yaml``, read once per process: every timing of a run uses the same settings."""
    return load_config(LOCAL_CONF, raw="/unset", lake="/unset")


def config(raw: Path, lake: Path) -> Config:
    """``conf/local.yaml`` with the given raw zone and lake."""
    return base_config().with_paths(raw=str(raw), lake=str(lake))


def spark_session(app_name: str = "shipments-bench") -> SparkSession:
    """The long-lived session every module shares (``build_spark`` joins an existing one)."""
    return build_spark(base_config().spark, app_name)


def load_average() -> str:
    """1-minute load average: above ``nproc``, other work was competing for the CPU."""
    return f"{os.getloadavg()[0]:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def process_parents() -> dict[int, int]:
    """Process id -> parent id of every process now (from /proc; one that ends mid-read is left out)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone between the listing and the read
            continue
        # the command name (in parentheses) may hold spaces: the fields after it are fixed
        parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return parents


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """Every process below ``root`` in ``parents`` (``process_parents``)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = [], [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found
