"""Real-world daily runs (issue 8, items 2, 3, 6 and 8): early arrivals in the previous day's
folder, charges that must never be rounded, file names that look like glob patterns, and
``spark.sql.ansi.enabled``.

Driven only through ``shipments.cli.main`` and the Delta tables it writes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable as RsTable
from pyspark.sql import SparkSession

from tests.helpers.lake import LOCAL_CONF, daily, land, last_daily_run, totals

DAY = dt.date(2026, 11, 2)
PREVIOUS = dt.date(2026, 11, 1)
CUSTOMERS = "customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\nC2,Globex,ENT,NA\n"


def _line(
    sid: str, cid: str, created: str, *, weight: str = "1.5", charge: str = '"10.00"', status: str = '"CREATED"'
) -> str:
    """One raw line; ``weight``, ``charge`` and ``status`` are JSON literals, written verbatim."""
    return (
        f'{{"shipment_id": "{sid}", "customer_id": "{cid}", "created_at": "{created}", "updated_at": "{created}", '
        f'"status": {status}, "origin_region": "EU", "destination_region": "NA", '
        f'"weight_kg": {weight}, "charge_usd": {charge}}}'
    )


def _customers(raw: Path) -> None:
    (raw / "customers").mkdir(parents=True, exist_ok=True)
    (raw / "customers" / "customers.csv").write_text(CUSTOMERS)


def _quarantine(spark: SparkSession, lake: Path) -> list[tuple]:
    rows = spark.read.format("delta").load(str(lake / "quarantine" / "shipments")).collect()
    rows = [(r.ingest_date, r.ship_date, r.shipment_id, r.reason, r.raw_text) for r in rows]
    return sorted(rows, key=lambda row: tuple("" if v is None else str(v) for v in row))


def _counts(row) -> tuple:  # type: ignore[no-untyped-def]
    return (row.rows_read, row.rows_kept, row.rows_other_dates, row.rows_duplicates, row.rows_quarantined)


def test_early_arrival_in_previous_folder_counts_on_its_ship_date(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: created on D, landed in ingest_date=D-1: the run for D counts it (lookbehind 1);
    the run for D-1 reads it too, as another date, and leaves it out of D-1's totals."""
    _customers(raw)
    land(
        raw,
        PREVIOUS,
        "part-0.jsonl",
        [
            _line("S1", "C1", "2026-11-02T00:30:00Z", charge='"3.00"'),  # D's shipment, landed a day early
            _line("S2", "C1", "2026-11-01T10:00:00Z", charge='"5.00"'),  # D-1's own
        ],
    )
    land(raw, DAY, "part-0.jsonl", [_line("S3", "C1", "2026-11-02T09:00:00Z", charge='"7.00"')])

    rc = daily(DAY, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake, DAY) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 3.0, Decimal("10.00"))]
    assert _counts(last_daily_run(spark, lake, DAY)) == (3, 2, 1, 0, 0)

    rc = daily(PREVIOUS, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake, PREVIOUS) == [(PREVIOUS, "C1", "Acme", "SMB", "EU", 1, 0, 1.5, Decimal("5.00"))]
    assert _counts(last_daily_run(spark, lake, PREVIOUS)) == (3, 1, 2, 0, 0)
    # D is untouched by the run for D-1
    assert totals(spark, lake, DAY) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 3.0, Decimal("10.00"))]


def test_charges_are_never_rounded(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 3: more than 2 decimals is bad_precision, as a string or a JSON number, at any
    magnitude; 16 integer digits + 2 decimals as a JSON number is stored exactly."""
    _customers(raw)
    lines = {
        "S1": _line("S1", "C1", "2026-11-02T08:00:00Z", charge='"19.99000000001"'),
        "S2": _line("S2", "C1", "2026-11-02T08:10:00Z", charge="19.990000000000001"),
        "S3": _line("S3", "C2", "2026-11-02T08:20:00Z", weight="2", charge="1234567890123456.78"),
        "S4": _line("S4", "C1", "2026-11-02T08:30:00Z", charge="1234567890123456.789"),
        "S5": _line("S5", "C1", "2026-11-02T08:40:00Z", weight="1.25", charge="10.50"),
    }
    land(raw, DAY, "part-0.jsonl", list(lines.values()))
    assert "19.990000000000001" in (raw / "shipments" / f"ingest_date={DAY}" / "part-0.jsonl").read_text()

    rc = daily(DAY, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert _quarantine(spark, lake) == [
        (DAY, DAY, sid, "bad_precision:charge_usd", lines[sid]) for sid in ("S1", "S2", "S4")
    ]
    assert totals(spark, lake) == [
        (DAY, "C1", "Acme", "SMB", "EU", 1, 0, 1.25, Decimal("10.50")),
        (DAY, "C2", "Globex", "ENT", "NA", 1, 0, 2.0, Decimal("1234567890123456.78")),
    ]
    assert _counts(last_daily_run(spark, lake, DAY)) == (5, 2, 0, 0, 3)


GLOB_LIKE_NAMES = ("export[1].jsonl", "*.jsonl", "a?b.jsonl", "{x,y}.jsonl", "with space.jsonl", "zoë.jsonl")


def test_file_names_are_not_glob_patterns(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 6: every landed file is read once, whatever characters its name holds."""
    _customers(raw)
    for i, name in enumerate(GLOB_LIKE_NAMES, start=1):
        land(raw, DAY, name, [_line(f"S{i}", "C1", f"2026-11-02T0{i}:00:00Z", weight="1", charge='"1.00"')])
    assert sorted(p.name for p in (raw / "shipments" / f"ingest_date={DAY}").iterdir()) == sorted(GLOB_LIKE_NAMES)

    rc = daily(DAY, raw, lake)
    assert rc == 0, capsys.readouterr().err
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 6, 0, 6.0, Decimal("6.00"))]
    run = last_daily_run(spark, lake, DAY)
    assert _counts(run) == (6, 6, 0, 0, 0)
    assert run.input_files == 6


def test_ansi_mode_gives_the_same_tables(
    spark: SparkSession, raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 8: with spark.sql.ansi.enabled=true, bad numbers and timestamps are still quarantined
    (not exceptions) and every table is the same as with ANSI off."""
    _customers(raw)
    land(
        raw,
        DAY,
        "part-0.jsonl",
        [
            _line("S1", "C1", "2026-11-02T08:00:00Z", weight="2.5", charge='"12.30"'),
            _line("S2", "C1", "2026-11-02T09:00:00Z", weight='"heavy"'),
            _line("S3", "C1", "2026-11-02T10:00:00Z", charge='"abc"'),
            _line("S4", "C1", "yesterday"),
            _line("S5", "C1", "2026-11-02T11:00:00Z", charge='"99999999999999999.00"'),
        ],
    )
    ansi = tmp_path / "ansi.yaml"
    ansi.write_text(f'extends: {LOCAL_CONF}\nspark:\n  settings:\n    spark.sql.ansi.enabled: "true"\n')
    lake_off, lake_on = tmp_path / "lake_off", tmp_path / "lake_on"

    rc = daily(DAY, raw, lake_off)
    assert rc == 0, capsys.readouterr().err
    expected_totals = [(DAY, "C1", "Acme", "SMB", "EU", 1, 0, 2.5, Decimal("12.30"))]
    expected_reasons = [
        ("S2", "bad_number:weight_kg"),
        ("S3", "bad_number:charge_usd"),
        ("S4", "bad_timestamp:created_at"),
        ("S5", "out_of_range:charge_usd"),
    ]
    assert totals(spark, lake_off) == expected_totals
    assert sorted((q[2], q[3]) for q in _quarantine(spark, lake_off)) == expected_reasons
    off = _counts(last_daily_run(spark, lake_off, DAY))
    assert off == (5, 1, 0, 0, 4)

    try:
        rc = daily(DAY, raw, lake_on, ansi)
        err = capsys.readouterr().err
        assert spark.conf.get("spark.sql.ansi.enabled") == "true"  # the setting really applied
        assert rc == 0, err
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "false")
    assert totals(spark, lake_on) == expected_totals
    assert _quarantine(spark, lake_on) == _quarantine(spark, lake_off)
    assert _counts(last_daily_run(spark, lake_on, DAY)) == off


def test_windows_1252_files_land_as_replacement_characters_every_reader_can_read(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Excel on Windows saves CSV in cp1252 and some exporters write JSON so: a ü is the one byte
    0xFC, not UTF-8. Spark's readers turn it into U+FFFD; the tables must hold valid UTF-8, or a
    reader that checks it (delta-rs, Arrow) refuses the whole file."""
    (raw / "customers").mkdir(parents=True)
    customers = "customer_id,customer_name,segment,region\nC1,M\u00fcller GmbH,SMB,EU\n"
    (raw / "customers" / "customers.csv").write_bytes(customers.encode("cp1252"))
    folder = raw / "shipments" / f"ingest_date={DAY.isoformat()}"
    folder.mkdir(parents=True)
    kept = _line("S1", "C1", "2026-11-02T09:00:00Z").replace('"NA"', '"M\u00fcnchen"')
    rejected = _line("S2", "C1", "2026-11-02T09:00:00Z", weight="-5").replace('"EU"', '"Z\u00fcrich"')
    (folder / "part-0.jsonl").write_bytes(f"{kept}\n{rejected}\n".encode("cp1252"))

    assert daily(DAY, raw, lake) == 0, capsys.readouterr().err
    assert totals(spark, lake, DAY) == [(DAY, "C1", "M\ufffdller GmbH", "SMB", "EU", 1, 0, 1.5, Decimal("10.00"))]
    [quarantined] = _quarantine(spark, lake)
    assert quarantined[2:4] == ("S2", "out_of_range:weight_kg") and '"origin_region": "Z\ufffdrich"' in quarantined[4]
    for table in ("shipment_daily_totals", "quarantine/shipments", "pipeline_runs"):
        assert RsTable(str(lake / table)).to_pyarrow_table().num_rows == 1, table
