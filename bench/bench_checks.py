"""What the data-quality checks cost: the daily job with the shipped checks on vs off.

The raw zone is bench_daily's (1M shipments a day, times ``BENCH_SCALE``; generated once and
reused). Each variant reruns D on its own lake, prepared alike: D already published and four
weeks of same-weekday history in ``pipeline_runs``, so the ``shrink`` check reads the partition
it would replace and ``volume`` reads the ledger, as in production. Runs are interleaved (on,
off, on, off, ...) and the medians compared. Goal (issue 9): checks cost at most 10% more time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

from bench.bench_daily import RUN_DATE, _raw_zone
from bench.common import config, load_average, median, repeats, scale, spark_session, table, timed
from shipments.batch.daily import DailyRequest, run_daily
from shipments.batch.ledger import SUCCEEDED, RunRecord, record_run
from shipments.config import Config
from shipments.ops_config import QualityConfig

SHIPMENTS = 1_000_000
GOAL = 1.10


def run(workdir: Path) -> str:
    spark = spark_session()
    n = max(1_000, round(SHIPMENTS * scale()))
    raw, info = _raw_zone(workdir.parent / "daily" / f"raw-{n}", n)
    variants: dict[str, Config] = {}
    for name in ("on", "off"):
        lake = workdir / f"lake-{name}"
        shutil.rmtree(lake, ignore_errors=True)
        settings = config(raw, lake)
        if name == "off":
            settings = dataclasses.replace(settings, quality=QualityConfig())
        published = run_daily(spark, settings, DailyRequest(RUN_DATE))  # also the warm-up
        for weeks in range(1, 5):
            day = RUN_DATE - dt.timedelta(weeks=weeks)
            kept = published.counts.kept + weeks  # a steady weekday
            record_run(spark, settings, RunRecord(f"history-{day}", "daily", day, status=SUCCEEDED, rows_kept=kept))
        variants[name] = settings

    times: dict[str, list[float]] = {"on": [], "off": []}
    loads = [load_average()]
    checks = 0
    for _ in range(repeats()):
        for name, settings in variants.items():
            seconds, result = timed(lambda settings=settings: run_daily(spark, settings, DailyRequest(RUN_DATE)))
            times[name].append(seconds)
            checks = max(checks, len(result.checks))
    loads.append(load_average())
    on, off = median(times["on"]), median(times["off"])
    ratio = on / off
    print(f"  checks on {on:.1f}s, off {off:.1f}s: {ratio:.2f}x", flush=True)
    verdict = "PASS" if ratio <= GOAL else "MISS"
    rows = [(f"{n:,}", f"{info['bytes'] / 1e6:.0f}", checks, f"{on:.1f}", f"{off:.1f}", f"{ratio:.2f}x", verdict)]
    runs = ", ".join(f"{k} " + "/".join(f"{s:.1f}" for s in v) for k, v in times.items())
    return "\n".join(
        [
            "## Data-quality checks: on vs off",
            "",
            f"`run_daily` rerunning {RUN_DATE} on bench_daily's raw zone, with the checks shipped in conf/base.yaml "
            f"(on) and with `quality.daily` empty (off); each lake already holds D and four weeks of history, so "
            f"`shrink` and `volume` make their reads. Median of {repeats()} interleaved runs each "
            f"(all runs: {runs}); load average {' / '.join(loads)}.",
            "",
            table(
                ("shipments/day", "input MB", "checks", "on (s)", "off (s)", "on / off", f"goal <= {GOAL:.2f}x"),
                rows,
            ),
            "",
        ]
    )
