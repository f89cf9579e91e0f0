"""Real-world clocks (issue 8, item 5): run timestamps are true UTC instants whatever the
machine's time zone. The job runs in a subprocess with TZ set east of UTC, and in the suite's own
process, whose zone (tests/conftest.py) is west of it; the recorded instants must lie within the
wall-clock window measured around the run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.cold_run import DAY, ZONE, ColdRun, land_two_shipments
from tests.helpers.lake import daily

SLACK_SECONDS = 5


def _epochs(frame, *columns: str) -> list[float]:  # type: ignore[no-untyped-def]
    rows = frame.select(*[(F.unix_micros(c) / 1_000_000).alias(c) for c in columns]).collect()
    return [value for row in rows for value in row]


def test_run_timestamps_are_utc_instants_in_a_process_east_of_utc(
    spark: SparkSession,
    cold_daily: ColdRun,
) -> None:
    # A half-hour offset east of UTC, in a fresh process (a JVM's zone is fixed when it starts).
    _assert_utc_instants(spark, cold_daily.lake, cold_daily.started, cold_daily.ended, ZONE)


def test_run_timestamps_are_utc_instants_in_the_suites_zone(spark: SparkSession, tmp_path: Path) -> None:
    # The suite's own zone (America/Los_Angeles, set before its JVM started), in-process.
    zone = spark.sparkContext._jvm.java.util.TimeZone.getDefault().getID()  # type: ignore[union-attr]
    assert zone == os.environ["TZ"] != "UTC", f"the suite's JVM runs in {zone}: nothing to prove"
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    land_two_shipments(raw)
    before = time.time()
    assert daily(DAY, raw, lake) == 0
    _assert_utc_instants(spark, lake, before, time.time(), zone)


def _assert_utc_instants(spark: SparkSession, lake: Path, before: float, after: float, zone: str) -> None:
    """The run of ``land_two_shipments``'s input recorded instants within the wall-clock window
    of the run (``before`` .. ``after``, ``time.time()``)."""
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs"))
    quarantine = spark.read.format("delta").load(str(lake / "quarantine" / "shipments"))
    assert runs.count() == 1 and quarantine.count() == 1
    window = (before - SLACK_SECONDS, after + SLACK_SECONDS)
    started_at, ended_at = _epochs(runs, "started_at", "ended_at")
    (quarantined_at,) = _epochs(quarantine, "quarantined_at")
    for name, value in (("started_at", started_at), ("ended_at", ended_at), ("quarantined_at", quarantined_at)):
        assert window[0] <= value <= window[1], f"{name} is {value - after:+.0f}s from the run's wall clock (TZ={zone})"
    assert started_at <= ended_at
    # Freshness: from the newest live event (S1's updated_at, 08:00 UTC) to when the metrics were
    # recorded, both instants; a time read back in the driver's zone would be off by its offset.
    metrics = spark.read.format("delta").load(str(lake / "pipeline_metrics"))
    freshness_rows = metrics.filter(F.col("metric") == "freshness_seconds")
    (freshness,) = [row.value for row in freshness_rows.select("value").collect()]
    (recorded_at,) = _epochs(freshness_rows, "recorded_at")
    newest_event = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC).timestamp()
    assert freshness == pytest.approx(recorded_at - newest_event, abs=0.01), f"TZ={zone}"
