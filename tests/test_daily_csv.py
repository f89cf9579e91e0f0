"""``daily.raw_format: csv``: DMS-style CSV with a header row goes through the same rules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession

from shipments.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEADER = "shipment_id,customer_id,created_at,updated_at,status,origin_region,destination_region,weight_kg,charge_usd"


def test_csv_raw_zone(spark: SparkSession, tmp_path: Path) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "c.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    day = raw / "shipments" / "ingest_date=2026-11-02"
    day.mkdir(parents=True)
    (day / "LOAD00000001.csv").write_text(
        "\n".join(
            [
                HEADER,
                "S1,C1,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z,CREATED,EU,NA,1.5,10.10",
                "S1,C1,2026-11-02T10:00:00Z,2026-11-02T12:00:00Z,CANCELLED,EU,NA,1.5,10.10",  # newer version
                "S2,C1,2026-11-02T23:30:00-05:00,2026-11-03T05:00:00Z,CREATED,EU,NA,2,5",  # next UTC day
                "S3,C2,2026-11-02T11:00:00Z,2026-11-02T11:00:00Z,DELIVERED,,,3.25,7.00",  # unknown customer
                "S4,C1,2026-11-02T11:00:00Z,2026-11-02T11:00:00Z,CREATED,EU,NA,heavy,1.00",  # invalid
            ]
        )
        + "\n"
    )
    conf = tmp_path / "csv.yaml"
    conf.write_text(f"extends: {ROOT / 'conf' / 'local.yaml'}\ndaily:\n  raw_format: csv\n")
    assert main(["daily", "--date", "2026-11-02", "--conf", str(conf), "--raw", str(raw), "--lake", str(lake)]) == 0

    totals = sorted(spark.read.format("delta").load(str(lake / "shipment_daily_totals")).collect())
    assert [tuple(r) for r in totals] == [
        (dt.date(2026, 11, 2), "C1", "Acme", "SMB", "EU", 1, 1, 1.5, Decimal("10.10")),
        (dt.date(2026, 11, 2), "C2", "UNKNOWN", "UNKNOWN", "UNKNOWN", 1, 0, 3.25, Decimal("7.00")),
    ]
    quarantine = spark.read.format("delta").load(str(lake / "quarantine" / "shipments")).collect()
    assert [(q.reason, q.raw_text) for q in quarantine] == [
        ("bad_number:weight_kg", "S4,C1,2026-11-02T11:00:00Z,2026-11-02T11:00:00Z,CREATED,EU,NA,heavy,1.00")
    ]
    run = spark.read.format("delta").load(str(lake / "pipeline_runs")).collect()[0]
    assert (run.rows_read, run.rows_kept, run.rows_other_dates, run.rows_duplicates, run.rows_quarantined) == (
        5,
        2,
        1,
        1,
        1,
    )
