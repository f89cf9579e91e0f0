"""Backfill: 30 days in passes against one day and against a bare Spark read+write, isolated
runs for comparison, and the cost of rewriting one day as the table grows (issue 11, goals 2-3).

    python -m bench backfill          (with the other benchmarks: python -m bench)
    python -m bench.bench_backfill    (alone; same result file)

Two raw zones of 31 ingest dates (the 31st is the lookback of the 30th) are generated once and
reused: ``SMALL_PER_DAY`` and ``LARGE_PER_DAY`` shipments a day, both times ``BENCH_SCALE``. In
one long-lived SparkSession:

(a) small zone: ``run_backfill`` of the 30 dates in passes (the default config: one pass) against
    ``run_daily`` of one of those dates, each on a fresh lake, interleaved ``repeats()`` times
    (median). Goal: 30 days in at most 3x the time of one day. For context, the 30 dates as
    isolated runs (``daily.backfill_pass_mb`` 0) at parallelism 2, once.
(b) large zone: the backfill in passes against a bare Spark read+write of the same 32 folders
    (the fixed schema, written as Parquet), interleaved, median. Goal: at most 1.3x.
(c) one date re-run with ``run_daily`` in the 30-day lake of (a) against the same date in a lake
    holding only that date, interleaved ``REWRITE_REPEATS`` times (median). Goal: at most 1.1x.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io as text_io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from bench.common import LOCAL_CONF, config, load_average, median, repeats, scale, spark_session, timed
from shipments.batch.backfill import BackfillRequest, BackfillResult, run_backfill
from shipments.batch.daily import DailyRequest, run_daily
from shipments.config import Config, load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.model.shipments import RAW_SHIPMENT_SCHEMA
from shipments.session import build_spark

START = dt.date(2026, 10, 1)
DAYS = 30
END = START + dt.timedelta(days=DAYS - 1)
SMALL_PER_DAY = 1_000
LARGE_PER_DAY = 100_000
SEED = 31
ONE_DAY = START + dt.timedelta(days=14)
REWRITE_DATE = ONE_DAY
REWRITE_REPEATS = 5
GOAL_VS_ONE_DAY = 3.0
GOAL_VS_BARE = 1.3
GOAL_REWRITE = 1.1


def _session() -> SparkSession:
    """The shared bench session; when this module starts it, with the FAIR scheduler (which only
    changes anything for jobs that set a scheduler pool, as the backfill's threads do)."""
    if SparkContext._active_spark_context is None:
        spark_config = load_config(LOCAL_CONF, raw="/unused", lake="/unused").spark
        settings = {**spark_config.settings, "spark.scheduler.mode": "FAIR"}
        return build_spark(dataclasses.replace(spark_config, settings=settings), "shipments-bench")
    return spark_session()


def _raw_zone(folder: Path, shipments_per_day: int) -> Path:
    params = {"start": START.isoformat(), "days": DAYS + 1, "shipments_per_day": shipments_per_day, "seed": SEED}
    marker = folder / "_bench.json"
    if marker.exists() and json.loads(marker.read_text()) == params:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    generate_raw_zone(folder, START, DAYS + 1, shipments_per_day=shipments_per_day, seed=SEED, events_per_day=0)
    marker.write_text(json.dumps(params))
    return folder


def _isolated(settings: Config) -> Config:
    return dataclasses.replace(settings, daily=dataclasses.replace(settings.daily, backfill_pass_mb=0))


def _backfill(spark: SparkSession, settings: Config, lake: Path, parallelism: int = 1) -> BackfillResult:
    shutil.rmtree(lake, ignore_errors=True)
    out, err = text_io.StringIO(), text_io.StringIO()
    result = run_backfill(spark, settings, BackfillRequest(START, END, parallelism=parallelism), out=out, err=err)
    if result.failed or len(result.outcomes) != DAYS:
        raise RuntimeError(f"backfill failed: {result.summary()}\n{out.getvalue()}")
    return result


def _one_day(spark: SparkSession, settings: Config, lake: Path) -> None:
    shutil.rmtree(lake, ignore_errors=True)
    run_daily(spark, settings, DailyRequest(ONE_DAY))


def _bare(spark: SparkSession, raw: Path, out: Path) -> None:
    """Read the 32 folders a 30-day backfill reads with the fixed schema; write Parquet."""
    folders = [str(p) for p in sorted((raw / "shipments").glob("ingest_date=*"))]
    spark.read.schema(RAW_SHIPMENT_SCHEMA).json(folders).write.mode("overwrite").parquet(str(out))


def _passes(result: BackfillResult) -> int:
    return len({o.run_id for o in result.outcomes})


def _interleaved(
    spark: SparkSession, raw: Path, lake: Path, other: Callable[[], object]
) -> tuple[list[float], list[float], int]:
    """The 30-day backfill of ``raw`` in passes and ``other``, interleaved ``repeats()`` times:
    (backfill seconds, other seconds, passes the backfill made)."""
    backfills: list[float] = []
    others: list[float] = []
    passes = 0
    for _ in range(repeats()):
        seconds, result = timed(lambda: _backfill(spark, config(raw, lake), lake))
        backfills.append(seconds)
        passes = _passes(result)
        others.append(timed(other)[0])
    return backfills, others, passes


def run(workdir: Path) -> str:
    spark = _session()
    small_n = max(100, round(SMALL_PER_DAY * scale()))
    large_n = max(1_000, round(LARGE_PER_DAY * scale()))
    small = _raw_zone(workdir / f"raw-{small_n}", small_n)
    large = _raw_zone(workdir / f"raw-{large_n}", large_n)
    loads = [load_average()]

    # Warm-up (untimed): class loading, JIT and Delta's first-use costs belong to no number.
    _one_day(spark, config(small, workdir / "lake-warmup"), workdir / "lake-warmup")
    _backfill(spark, config(small, workdir / "lake-warmup"), workdir / "lake-warmup")

    # (a) 30 days in passes against one day, interleaved.
    times: dict[str, list[float]] = {}
    one_day = workdir / "lake-1"
    times["backfill"], times["one day"], passes = _interleaved(
        spark, small, workdir / "lake-30", lambda: _one_day(spark, config(small, one_day), one_day)
    )
    print(f"  30 days in passes {median(times['backfill']):.1f}s, one day {median(times['one day']):.1f}s", flush=True)
    isolated_lake = workdir / "lake-isolated"
    isolated, _ = timed(lambda: _backfill(spark, _isolated(config(small, isolated_lake)), isolated_lake, 2))
    print(f"  30 days as isolated runs, parallelism 2: {isolated:.1f}s", flush=True)
    loads.append(load_average())

    # (b) the large zone in passes against a bare Spark read+write of its folders, interleaved.
    times["large backfill"], times["bare"], large_passes = _interleaved(
        spark, large, workdir / "lake-large", lambda: _bare(spark, large, workdir / "bare")
    )
    print(f"  large: passes {median(times['large backfill']):.1f}s, bare {median(times['bare']):.1f}s", flush=True)
    loads.append(load_average())

    # (c) the same date rewritten in the 30-day table of (a) and in a table holding only it.
    thirty_lake, one_lake = workdir / "lake-30", workdir / "lake-1"
    rewrite: dict[str, list[float]] = {"1-day table": [], "30-day table": []}
    for _ in range(REWRITE_REPEATS):
        for label, lake in (("1-day table", one_lake), ("30-day table", thirty_lake)):
            seconds, _ = timed(lambda lake=lake: run_daily(spark, config(small, lake), DailyRequest(REWRITE_DATE)))
            rewrite[label].append(seconds)
    loads.append(load_average())
    input_mb = sum(p.stat().st_size for p in (large / "shipments").rglob("*") if p.is_file()) / 1e6
    return _report(small_n, large_n, input_mb, times, isolated, (passes, large_passes), rewrite, loads)


def _verdict(ratio: float, goal: float) -> str:
    return f"**{ratio:.2f}x**, goal <= {goal}x: {'PASS' if ratio <= goal else 'MISS'}"


def _report(
    small_n: int,
    large_n: int,
    input_mb: float,
    times: dict[str, list[float]],
    isolated: float,
    passes: tuple[int, int],
    rewrite: dict[str, list[float]],
    loads: list[str],
) -> str:
    m = {key: median(values) for key, values in times.items()}
    one, thirty = median(rewrite["1-day table"]), median(rewrite["30-day table"])
    runs = ", ".join(f"{key} {'/'.join(f'{t:.1f}' for t in values)}" for key, values in times.items())
    return "\n".join(
        [
            "## backfill",
            "",
            f"30 dates ({START}..{END}), each date's run reading its folder and the next (lookback 1 day) and the "
            "one before (lookbehind 1); generated raw zones (re-sends, newer versions, late and invalid lines); one "
            "SparkSession (conf/local.yaml, `local[2]`), medians of interleaved runs on fresh lakes.",
            "",
            "| what | seconds | ratio | goal |",
            "|---|---|---|---|",
            f"| {small_n:,}/day: 30 days in passes ({passes[0]} pass(es)) vs one day | {m['backfill']:.1f} vs "
            f"{m['one day']:.1f} | {_verdict(m['backfill'] / m['one day'], GOAL_VS_ONE_DAY)} | issue 11 goal 2 |",
            f"| {small_n:,}/day: 30 days as isolated runs, parallelism 2 (passes off), once | {isolated:.1f} | "
            f"{isolated / m['backfill']:.1f}x the passes | context |",
            f"| {large_n:,}/day ({input_mb:,.0f} MB in 32 folders): 30 days in passes ({passes[1]} pass(es)) vs bare "
            f"Spark read+write of the 32 folders | {m['large backfill']:.1f} vs {m['bare']:.1f} | "
            f"{_verdict(m['large backfill'] / m['bare'], GOAL_VS_BARE)} | issue 11 goal 2 |",
            f"| rewrite {REWRITE_DATE} in the 30-day table vs in a 1-day table (median of {REWRITE_REPEATS}) | "
            f"{thirty:.2f} vs {one:.2f} | {_verdict(thirty / one, GOAL_REWRITE)} | issue 11 goal 3 |",
            "",
            f"All runs (s): {runs}; rewrite 1-day table "
            f"{', '.join(f'{t:.2f}' for t in rewrite['1-day table'])}, 30-day table "
            f"{', '.join(f'{t:.2f}' for t in rewrite['30-day table'])}. 1-minute load average at the start and "
            f"after each part: {' / '.join(loads)}.",
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.__main__ import run_one

    sys.exit(0 if run_one("backfill") else 1)
