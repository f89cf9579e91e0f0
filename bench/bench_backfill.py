"""Backfill: 30 days at parallelism 1, 2 and 4, and the cost of rewriting one day as the table grows.

    python -m bench backfill          (with the other benchmarks: python -m bench)
    python -m bench.bench_backfill    (alone; same result file)

A raw zone of 31 ingest dates (``SHIPMENTS_PER_DAY`` times ``BENCH_SCALE`` shipments a day; the
31st is the lookback of the 30th) is generated once and reused. In one long-lived SparkSession:

(a) ``shipments.batch.backfill.run_backfill`` for the 30 dates on a fresh lake, at parallelism 1, 2,
    4 and 1 again (wall time of the whole backfill; 30 daily runs already average out, and the
    two parallelism-1 runs bracket the others against drifting load);
(b) one date re-run with ``run_daily`` in the 30-day lake against the same date re-run in a lake
    that holds only that date, interleaved ``BENCH_REPEATS`` times (median): the goal is that a
    day costs at most 1.2x as much to rewrite in a 30-day table as in a 1-day table.

Every run writes its partition with a ``replaceWhere`` on the partition column, so (b) measures
what the extra history (30+ commits, a checkpoint, 30 partitions) costs a rewrite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io as text_io
import json
import shutil
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from bench.common import LOCAL_CONF, config, load_average, median, repeats, scale, spark_session, table, timed
from shipments.batch.backfill import BackfillRequest, run_backfill
from shipments.batch.daily import DailyRequest, run_daily
from shipments.config import load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.session import build_spark

START = dt.date(2026, 10, 1)
DAYS = 30
SHIPMENTS_PER_DAY = 1_000
SEED = 31
# Parallelism 1 is measured first and again last: the speed-ups are against the mean of the two,
# so a drift in the machine's load or the JVM's warm-up over the run biases no level in particular.
PARALLELISM = (1, 2, 4, 1)
REWRITE_DATE = START + dt.timedelta(days=14)
GOAL = 1.2


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


def run(workdir: Path) -> str:
    spark = _session()
    mode = spark.sparkContext.getConf().get("spark.scheduler.mode", "FIFO")
    per_day = max(100, round(SHIPMENTS_PER_DAY * scale()))
    raw = _raw_zone(workdir / f"raw-{per_day}", per_day)
    end = START + dt.timedelta(days=DAYS - 1)

    # Warm-up (untimed): class loading, JIT and Delta's first-use costs belong to no number.
    warm = workdir / "lake-warmup"
    shutil.rmtree(warm, ignore_errors=True)
    run_daily(spark, config(raw, warm), DailyRequest(START))

    backfills: list[tuple[int, float, str]] = []
    lakes: dict[int, Path] = {}
    for parallelism in PARALLELISM:
        lake = workdir / f"lake-p{parallelism}"
        shutil.rmtree(lake, ignore_errors=True)
        out, err = text_io.StringIO(), text_io.StringIO()
        load_before = load_average()
        seconds, result = timed(
            lambda lake=lake, parallelism=parallelism, out=out, err=err: run_backfill(
                spark, config(raw, lake), BackfillRequest(START, end, parallelism=parallelism), out=out, err=err
            )
        )
        if result.failed:
            raise RuntimeError(f"backfill at parallelism {parallelism} failed: {result.summary()}\n{out.getvalue()}")
        backfills.append((parallelism, seconds, f"{load_before} / {load_average()}"))
        lakes[parallelism] = lake
        print(f"  backfill {DAYS} days, parallelism {parallelism}: {seconds:.1f}s", flush=True)

    # The same date rewritten in a 30-day table and in a table holding only that date.
    big = lakes[max(PARALLELISM)]
    small = workdir / "lake-one-day"
    shutil.rmtree(small, ignore_errors=True)
    run_daily(spark, config(raw, small), DailyRequest(REWRITE_DATE))
    rewrite: dict[str, list[float]] = {"1-day table": [], "30-day table": []}
    for _ in range(repeats()):
        # Interleaved, so a burst of load from other work hits both alike.
        for label, lake in (("1-day table", small), ("30-day table", big)):
            seconds, _ = timed(lambda lake=lake: run_daily(spark, config(raw, lake), DailyRequest(REWRITE_DATE)))
            rewrite[label].append(seconds)
    one, thirty = median(rewrite["1-day table"]), median(rewrite["30-day table"])
    print(f"  rewrite {REWRITE_DATE}: 1-day table {one:.1f}s, 30-day table {thirty:.1f}s", flush=True)
    return _report(per_day, mode, backfills, rewrite, one, thirty)


def _report(
    per_day: int,
    mode: str,
    backfills: list[tuple[int, float, str]],
    rewrite: dict[str, list[float]],
    one: float,
    thirty: float,
) -> str:
    base = median([s for p, s, _ in backfills if p == 1])  # the mean, for two values
    rows = [(p, f"{s:.1f}", f"{s / DAYS:.2f}", "-" if p == 1 else f"{base / s:.2f}x", load) for p, s, load in backfills]
    # On 2 cores a speed-up above the parallelism cannot come from the backfill itself: the
    # competing load changed between measurements. Say so rather than print it as a result.
    distorted = sorted({p for p, s, _ in backfills if p > 1 and base / s > p * 1.05})
    caveat = (
        [
            "",
            f"**Caveat**: the speed-up at parallelism {', '.join(map(str, distorted))} exceeds the parallelism, "
            "which the backfill cannot do on its own: other work competed for the CPU unevenly across the runs "
            "(see the load column). Treat these speed-ups as upper bounds; rerun on an idle machine for clean ones.",
        ]
        if distorted
        else []
    )
    ratio = thirty / one
    spread = max(max(times) - min(times) for times in rewrite.values())
    verdict = "meets" if ratio <= GOAL else "misses"
    return "\n".join(
        [
            "## backfill",
            "",
            f"30 dates ({START}..{START + dt.timedelta(days=DAYS - 1)}), about {per_day} generated shipments a day "
            f"(plus re-sends, newer versions, late and invalid lines), lookback 1 day; one SparkSession "
            f"(conf/local.yaml, `local[2]`), spark.scheduler.mode {mode}, each date in its own scheduler pool.",
            "",
            "### 30-day backfill",
            "",
            f"In the order run; speed-up against the mean of the two parallelism-1 runs ({base:.1f}s).",
            "",
            table(("parallelism", "wall time (s)", "s per date", "speed-up vs 1", "1-min load before / after"), rows),
            *caveat,
            "",
            "### Rewriting one day as the table grows",
            "",
            f"`run_daily` for {REWRITE_DATE} again, in the 30-day table against a table holding only that date "
            f"(median of {len(rewrite['1-day table'])}, interleaved).",
            "",
            table(
                ("table", "median (s)", "all runs (s)"),
                [
                    (label, f"{median(times):.2f}", ", ".join(f"{t:.2f}" for t in times))
                    for label, times in rewrite.items()
                ],
            ),
            "",
            f"Ratio 30-day / 1-day: **{ratio:.2f}x**: {verdict} the goal of at most {GOAL}x.",
            "",
            "Reading it: at this volume a daily run is mostly fixed cost (listing, several small Spark jobs, two "
            "Delta commits, the ledger append), much of it driver-side latency that parallel dates overlap; the CPU "
            "work itself cannot go faster than 2 cores allow. A rewrite touches only its own partition "
            "(`replaceWhere` on the partition column); what grows with the table is the Delta log (30+ commits, "
            "replayed from the last checkpoint), the commit-history lookup and the ledger. "
            + (
                f"Here the difference between the medians ({abs(thirty - one):.2f}s) is no larger than the run-to-run "
                f"spread within one table ({spread:.2f}s): it is within the noise of this machine's load."
                if abs(thirty - one) <= spread
                else f"The difference between the medians ({thirty - one:+.2f}s) exceeds the run-to-run spread "
                f"within one table ({spread:.2f}s)."
            ),
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.__main__ import run_one

    sys.exit(0 if run_one("backfill") else 1)
