"""Real-world CSV (issue 8, items 1 and 4): the customer dimension and the CSV raw zone as real
tools write them (RFC 4180, UTF-8, columns found by header name), and duplicate customer rows.

Driven only through ``shipments.cli.main`` and the Delta tables it writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.helpers.lake import LOCAL_CONF, daily, land, last_daily_run, totals

DAY = dt.date(2026, 11, 2)


def _line(
    sid: str, cid: str, created: str, *, status: str = "CREATED", weight: float = 1.0, charge: str = "1.00"
) -> str:
    return json.dumps(
        {
            "shipment_id": sid,
            "customer_id": cid,
            "created_at": created,
            "updated_at": created,
            "status": status,
            "origin_region": "EU",
            "destination_region": "NA",
            "weight_kg": weight,
            "charge_usd": charge,
        }
    )


def test_customer_csv_written_by_python_csv_module(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 1: RFC 4180 quoting, UTF-8, reordered header and an extra ``Op`` column."""
    (raw / "customers").mkdir(parents=True)
    with open(raw / "customers" / "customers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # RFC 4180: quotes as needed, "" for a quote, \r\n line ends
        writer.writerow(["Op", "region", "customer_id", "segment", "customer_name"])
        writer.writerow(["I", "EU", "C1", "SMB", "Acme, Inc."])
        writer.writerow(["I", "NA", "C2", "ENT", 'The "Best" Co'])
        writer.writerow(["U", "APAC", "C3", "SMB", "Line one\nLine two"])
        writer.writerow(["I", "EU", "C4", "ENT", "Zoë"])
    land(
        raw,
        DAY,
        "part-0.jsonl",
        [
            _line("S1", "C1", "2026-11-02T08:00:00Z", charge="1.00"),
            _line("S2", "C2", "2026-11-02T09:00:00Z", charge="2.00"),
            _line("S3", "C3", "2026-11-02T10:00:00Z", charge="3.00"),
            _line("S4", "C4", "2026-11-02T11:00:00Z", charge="4.00"),
        ],
    )
    rc = daily(DAY, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [
        (DAY, "C1", "Acme, Inc.", "SMB", "EU", 1, 0, 1.0, Decimal("1.00")),
        (DAY, "C2", 'The "Best" Co', "ENT", "NA", 1, 0, 1.0, Decimal("2.00")),
        (DAY, "C3", "Line one\nLine two", "SMB", "APAC", 1, 0, 1.0, Decimal("3.00")),
        (DAY, "C4", "Zoë", "ENT", "EU", 1, 0, 1.0, Decimal("4.00")),
    ]
    run = last_daily_run(spark, lake, DAY)
    assert (run.rows_read, run.rows_kept, run.unknown_customers, run.dimension_duplicates) == (4, 4, 0, 0)


def test_csv_raw_zone_maps_columns_by_header_name(
    spark: SparkSession, raw: Path, lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 1: ``daily.raw_format: csv`` with a reordered header and an extra ``Op`` column."""
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    folder = raw / "shipments" / f"ingest_date={DAY.isoformat()}"
    folder.mkdir(parents=True)
    (folder / "LOAD00000001.csv").write_text(
        "Op,charge_usd,weight_kg,status,updated_at,created_at,customer_id,shipment_id,destination_region,origin_region\n"
        "I,10.10,1.5,CREATED,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z,C1,S1,NA,EU\n"
        "I,5.00,2.25,CANCELLED,2026-11-02T11:00:00Z,2026-11-02T11:00:00Z,C1,S2,NA,EU\n"
    )
    conf = tmp_path / "csv.yaml"
    conf.write_text(f"extends: {LOCAL_CONF}\ndaily:\n  raw_format: csv\n")
    rc = daily(DAY, raw, lake, conf)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 1, 3.75, Decimal("15.10"))]
    run = last_daily_run(spark, lake, DAY)
    assert (run.rows_read, run.rows_kept, run.rows_other_dates, run.rows_duplicates, run.rows_quarantined) == (
        2,
        2,
        0,
        0,
        0,
    )


def test_customer_csv_missing_required_column_fails_the_run(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 1: a customer file without ``segment`` fails the run, naming the column; no totals."""
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,region\nC1,Acme,EU\n")
    land(raw, DAY, "part-0.jsonl", [_line("S1", "C1", "2026-11-02T08:00:00Z")])
    capsys.readouterr()
    rc = daily(DAY, raw, lake)
    err = capsys.readouterr().err
    assert rc != 0, err
    reasons = [line for line in err.splitlines() if line.startswith("shipments daily:")]
    assert len(reasons) == 1 and "segment" in reasons[0], err
    assert "Traceback" not in err
    totals = lake / "shipment_daily_totals"
    assert not totals.exists() or spark.read.format("delta").load(str(totals)).count() == 0


def test_duplicate_customer_rows_prefer_the_non_blank_one(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 4: ``C1,,,`` and ``C1,Acme,SMB,EU``: C1 is Acme/SMB/EU, one dimension duplicate."""
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text(
        "customer_id,customer_name,segment,region\nC1,,,\nC1,Acme,SMB,EU\n"
    )
    land(raw, DAY, "part-0.jsonl", [_line("S1", "C1", "2026-11-02T08:00:00Z", weight=2.5, charge="7.25")])
    rc = daily(DAY, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 1, 0, 2.5, Decimal("7.25"))]
    run = last_daily_run(spark, lake, DAY)
    assert run.dimension_duplicates == 1
    assert (run.rows_read, run.rows_kept, run.unknown_customers) == (1, 1, 0)
