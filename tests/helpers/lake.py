"""Small raw zones and lake reads shared by the end-to-end tests: what a test lands, how it runs
the daily command, and what it reads back. Expected values stay in each test."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from shipments.cli import main

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CONF = ROOT / "conf" / "local.yaml"


def shipment_line(sid: str, *, weight: object = 1.5, charge: object = "10.00") -> str:
    """A JSON line of shipment ``sid`` of customer C1, created and updated 2026-11-02 08:00 UTC."""
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
            "charge_usd": charge,
        }
    )


def land(raw: Path, ingest: dt.date, name: str, lines: list[str]) -> Path:
    """Write ``lines`` as file ``name`` of the default layout's folder for ``ingest``."""
    folder = raw / "shipments" / f"ingest_date={ingest.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def daily(day: dt.date, raw: Path, lake: Path, conf: Path = LOCAL_CONF, *options: str) -> int:
    """``shipments daily`` for ``day`` through the real command line; its exit code."""
    arguments = ["--date", day.isoformat(), "--conf", str(conf), "--raw", str(raw), "--lake", str(lake), *options]
    return main(["daily", *arguments])


def totals(spark: SparkSession, lake: Path, day: dt.date | None = None) -> list[tuple[object, ...]]:
    """``shipment_daily_totals`` (only ``day`` when given), sorted."""
    frame = spark.read.format("delta").load(str(lake / "shipment_daily_totals"))
    if day is not None:
        frame = frame.filter(F.col("ship_date") == F.lit(day))
    return sorted(tuple(r) for r in frame.collect())


def last_daily_run(spark: SparkSession, lake: Path, day: dt.date) -> Row:
    """The latest ``daily`` run of ``day`` in ``pipeline_runs``, checked to have succeeded and to
    conserve its records (read = kept + other dates + duplicates + quarantined + deleted)."""
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs"))
    row = (
        runs.filter((F.col("run_date") == F.lit(day)) & (F.col("job") == "daily"))
        .orderBy(F.col("started_at").desc())
        .first()
    )
    assert row is not None
    assert row.status == "SUCCEEDED", row.error
    accounted = row.rows_kept + row.rows_other_dates + row.rows_duplicates + row.rows_quarantined + row.rows_deleted
    assert row.rows_read == accounted, row
    return row


def commit_infos(table: Path | str, operation: str | None = None) -> list[dict[str, Any]]:
    """The commitInfo of every commit of the Delta table at ``table`` (only ``operation``'s when
    given), oldest first: which engine wrote it (``engineInfo``), its userMetadata."""
    infos = []
    for log in sorted(Path(table, "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        infos += [action["commitInfo"] for action in actions if "commitInfo" in action]
    return [info for info in infos if operation is None or info["operation"] == operation]


def data_commits(table: Path | str) -> list[str]:
    """The operations of the commits of the Delta table at ``table``, oldest first, without the
    compactions (OPTIMIZE: an append to the tables every run writes compacts about one time in 50,
    storage.delta.append_rows)."""
    return [info["operation"] for info in commit_infos(table) if info["operation"] != "OPTIMIZE"]
