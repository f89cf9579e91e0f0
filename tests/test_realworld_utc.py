"""Real-world clocks (issue 8, item 5): run timestamps are true UTC instants whatever the
machine's time zone. The job runs in a subprocess with TZ set east of UTC, and in the suite's own
process, whose zone (tests/conftest.py) is west of it; the recorded instants must lie within the
wall-clock window measured around the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.cli import main

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONF = ROOT / "conf" / "local.yaml"
SLACK_SECONDS = 5


def _line(sid: str, weight: object) -> str:
    return json.dumps(
        {
            "shipment_id": sid,
            "customer_id": "C1",
            "created_at": "2026-11-02T08:00:00Z",
            "updated_at": "2026-11-02T08:00:00Z",
            "status": "CREATED",
            "origin_region": "EU",
            "destination_region": "NA",
            "weight_kg": weight,
            "charge_usd": "10.00",
        }
    )


def _epochs(frame, *columns: str) -> list[float]:  # type: ignore[no-untyped-def]
    rows = frame.select(*[(F.unix_micros(c) / 1_000_000).alias(c) for c in columns]).collect()
    return [value for row in rows for value in row]


# A half-hour offset east of UTC in a fresh process; the suite's own zone (America/Los_Angeles,
# set before its JVM started) in-process, which spares a JVM start.
@pytest.mark.parametrize("zone", ["Asia/Kolkata", "suite"])
def test_run_timestamps_are_utc_instants(spark: SparkSession, tmp_path: Path, zone: str) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    folder = raw / "shipments" / "ingest_date=2026-11-02"
    folder.mkdir(parents=True)
    (folder / "part-0.jsonl").write_text(_line("S1", 1.5) + "\n" + _line("S2", "heavy") + "\n")

    arguments = ["daily", "--date", "2026-11-02", "--conf", str(LOCAL_CONF), "--raw", str(raw), "--lake", str(lake)]
    before = time.time()
    if zone == "suite":
        zone = spark.sparkContext._jvm.java.util.TimeZone.getDefault().getID()  # type: ignore[union-attr]
        assert zone == os.environ["TZ"] != "UTC", f"the suite's JVM runs in {zone}: nothing to prove"
        assert main(arguments) == 0
    else:
        command = [sys.executable, "-m", "shipments", *arguments]
        env = {**os.environ, "TZ": zone}
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    after = time.time()

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
