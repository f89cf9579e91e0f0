"""Real-world backfill (issue 8, item 7): a corrected file of the same byte length, whose
modification time was put back, is still new input: the backfill re-runs the date.

Driven only through ``shipments.cli.main`` and the Delta tables it writes.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from tests.helpers.lake import LOCAL_CONF, shipment_line, totals

DAY = dt.date(2026, 11, 2)


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
    landed.write_text(shipment_line("S1", charge="10.00") + "\n" + shipment_line("S2", charge="20.00") + "\n")

    rc = _backfill(raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 3.0, Decimal("30.00"))]

    # the upstream correction: same byte length, original modification time put back
    before = landed.stat()
    corrected = shipment_line("S1", charge="10.00") + "\n" + shipment_line("S2", charge="25.00") + "\n"
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


# A backfill pass over files as DMS writes them (RFC 4180 CSV without a header, full load then
# CDC files, timestamps as a New York database holds them, a delete landing two days after the
# insert), against the same dates run one by one: every table and every ledger count identical.
PASS_DAYS = [dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)]
DMS_FILES = {
    "2026/11/02/LOAD00000001.csv": [
        # 22:30 in New York on 11-01 is 03:30 UTC on 11-02: it ships on 11-02.
        'S1,C1,2026-11-01 22:30:00,2026-11-01 22:30:00,CREATED,"EU","NA",1.5,10.00',
        'S2,C2,2026-11-02 09:00:00,2026-11-02 09:00:00,CREATED,EU,"N,A",2.25,"20.50"',
        "S3,C1,2026-11-02 10:00:00,2026-11-02 10:00:00,CREATED,EU,NA,3.0,30.00",
        "S9,C2,2026-11-02 11:00:00,2026-11-02 11:00:00,CREATED,EU,NA",  # 8 fields: malformed
    ],
    "2026/11/03/20261103-101500123.csv": [
        "U,S2,C2,2026-11-02 09:00:00,2026-11-03 10:00:00,DELIVERED,EU,NA,2.25,20.50",
        "I,S4,C3,2026-11-03 12:00:00,2026-11-03 12:00:00,CREATED,NA,EU,0.5,5.00",  # C3: not a customer
    ],
    "2026/11/04/20261104-080000000.csv": [
        "D,S3,C1,2026-11-02 10:00:00,2026-11-02 10:00:00,CREATED,EU,NA,3.0,30.00",
        "I,S5,C1,2026-11-04 01:00:00,2026-11-04 01:00:00,CANCELLED,EU,NA,1.0,1.00",
    ],
}


def _dms_zone(raw: Path) -> None:
    (raw / "customers").mkdir(parents=True)
    # As Excel saves it: CRLF, a quoted comma.
    (raw / "customers" / "customers.csv").write_bytes(
        b'customer_id,customer_name,segment,region\r\nC1,"Acme, Inc",SMB,EU\r\nC2,Globex,ENT,NA\r\n'
    )
    for name, rows in DMS_FILES.items():
        path = raw / "shipments" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(("\r\n".join(rows) + "\r\n").encode())


def _tables(spark: SparkSession, lake: Path) -> dict[str, list[tuple[object, ...]]]:
    def rows(table: str, drop: tuple[str, ...]) -> list[tuple[object, ...]]:
        frame = spark.read.format("delta").load(str(lake / table))
        return sorted((tuple(r) for r in frame.drop(*drop).collect()), key=repr)

    return {
        "totals": rows("shipment_daily_totals", ()),
        "quarantine": rows("quarantine/shipments", ("run_id", "quarantined_at")),
        "ledger": rows(
            "pipeline_runs", ("run_id", "started_at", "ended_at", "table_version", "input_fingerprint", "error")
        ),
    }


def test_a_backfill_pass_over_dms_files_equals_the_dates_run_one_by_one(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    _dms_zone(raw)
    conf = tmp_path / "dms.yaml"
    conf.write_text(f"extends: {LOCAL_CONF}\ndaily:\n  layout: dms-csv\n  source_timezone: America/New_York\n")
    common = ["--conf", str(conf), "--raw", str(raw)]
    alone, passed = tmp_path / "lake-alone", tmp_path / "lake-pass"
    for day in PASS_DAYS:
        assert main(["daily", "--date", day.isoformat(), *common, "--lake", str(alone)]) == 0, capsys.readouterr()
    start, end = PASS_DAYS[0].isoformat(), PASS_DAYS[-1].isoformat()
    assert main(["backfill", "--start", start, "--end", end, *common, "--lake", str(passed)]) == 0
    out = capsys.readouterr().out
    assert sum("in one pass of 3 dates" in line for line in out.splitlines()) == 3, out

    ours, reference = _tables(spark, passed), _tables(spark, alone)
    assert ours == reference
    # What the dates hold, so "equal" is not "equally empty": S1 ships on 11-02 by its UTC
    # instant, S3's delete (landed 11-04) is seen by the run of 11-03 only, the 8-field row is
    # quarantined once, on the date it landed.
    kept = {r[0]: r[5] for r in ours["totals"]}
    assert sum(r[5] for r in ours["totals"] if r[0] == dt.date(2026, 11, 2)) == 3
    assert kept[dt.date(2026, 11, 3)] == 1 and kept[dt.date(2026, 11, 4)] == 1
    assert [(r[0], r[3]) for r in ours["quarantine"]] == [(dt.date(2026, 11, 2), "malformed_csv")]
