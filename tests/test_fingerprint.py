"""The input fingerprint a daily run records: what makes a backfill re-run a date."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pyspark.sql import SparkSession

from shipments.batch.daily import daily_inputs
from shipments.config import Config
from shipments.devtools.generate import generate_raw_zone

DAY = dt.date(2026, 11, 2)


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_fingerprint_follows_raw_files_customers_and_settings(spark: SparkSession, config: Config, raw: Path) -> None:
    generate_raw_zone(raw, dt.date(2026, 11, 1), 4, shipments_per_day=20, customers=5, seed=1)
    listing, first = daily_inputs(spark, config, DAY)
    assert {f.ingest_date for f in listing.files} == {DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)}
    assert daily_inputs(spark, config, DAY)[1] == first  # stable

    _touch_later(raw / "customers" / "customers.csv")  # a corrected dimension re-runs the day
    second = daily_inputs(spark, config, DAY)[1]
    assert second != first

    _touch_later(raw / "shipments" / "ingest_date=2026-11-04" / "part-00000.jsonl")  # outside D's window
    assert daily_inputs(spark, config, DAY)[1] == second

    _touch_later(raw / "shipments" / "ingest_date=2026-11-03" / "part-00000.jsonl")  # D's lookback day
    assert daily_inputs(spark, config, DAY)[1] != second
