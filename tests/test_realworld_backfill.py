"""Real-world backfill (issue 8, item 7): a corrected file of the same byte length, whose
modification time was put back, is still new input: the backfill re-runs the date.

Driven only through ``shipments.cli.main`` and the Delta tables it writes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from tests.helpers.lake import LOCAL_CONF, totals

DAY = dt.date(2026, 11, 2)


def _line(sid: str, charge: str) -> str:
    return json.dumps(
        {
            "shipment_id": sid,
            "customer_id": "C1",
            "created_at": "2026-11-02T08:00:00Z",
            "updated_at": "2026-11-02T08:00:00Z",
            "status": "CREATED",
            "origin_region": "EU",
            "destination_region": "NA",
            "weight_kg": 1.5,
            "charge_usd": charge,
        }
    )


def _backfill(raw: Path, lake: Path) -> int:
    return main(
        [
            "backfill",
            "--start",
            DAY.isoformat(),
            "--end",
            DAY.isoformat(),
            "--conf",
            str(LOCAL_CONF),
            "--raw",
            str(raw),
            "--lake",
            str(lake),
        ]
    )


def test_same_size_correction_with_restored_mtime_is_rerun(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    folder = raw / "shipments" / f"ingest_date={DAY.isoformat()}"
    folder.mkdir(parents=True)
    landed = folder / "part-0.jsonl"
    landed.write_text(_line("S1", "10.00") + "\n" + _line("S2", "20.00") + "\n")

    rc = _backfill(raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 3.0, Decimal("30.00"))]

    # the upstream correction: same byte length, original modification time put back
    before = landed.stat()
    corrected = _line("S1", "10.00") + "\n" + _line("S2", "25.00") + "\n"
    assert len(corrected.encode()) == before.st_size
    landed.write_text(corrected)
    os.utime(landed, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = landed.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    rc = _backfill(raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 3.0, Decimal("35.00"))]
    runs = (
        spark.read.format("delta")
        .load(str(lake / "pipeline_runs"))
        .filter((F.col("run_date") == F.lit(DAY)) & (F.col("status") == "SUCCEEDED"))
        .collect()
    )
    assert len(runs) == 2
    for run in runs:
        assert (run.rows_read, run.rows_kept, run.rows_other_dates, run.rows_duplicates, run.rows_quarantined) == (
            2,
            2,
            0,
            0,
            0,
        )
