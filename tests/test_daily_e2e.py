"""The daily job end to end on generated data full of traps, through the command line.

Expected values come from tests/oracle.py, a plain-Python reading of the contract.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from shipments.devtools.generate import generate_raw_zone
from tests import oracle

START = dt.date(2026, 11, 1)
DAY = dt.date(2026, 11, 2)
OTHER_DAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def zone(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-day raw zone and a lake where the job ran for 11-01 and 11-02 through the CLI."""
    root = tmp_path_factory.mktemp("daily_e2e")
    raw, lake = root / "raw", root / "lake"
    generate_raw_zone(raw, START, 3, shipments_per_day=400, customers=40, seed=11)
    for day in (OTHER_DAY, DAY):
        assert main(["daily", "--date", day.isoformat(), "--raw", str(raw), "--lake", str(lake)]) == 0
    return {"raw": raw, "lake": lake}


def _totals(spark: SparkSession, lake: Path, day: dt.date) -> dict[tuple, tuple]:
    rows = (
        spark.read.format("delta").load(str(lake / "shipment_daily_totals")).filter(F.col("ship_date") == day).collect()
    )
    return {
        (r.ship_date, r.customer_id, r.customer_name, r.segment, r.region): (
            r.shipment_count,
            r.cancelled_count,
            r.total_weight_kg,
            r.total_charge_usd,
        )
        for r in rows
    }


def _assert_totals_equal(actual: dict[tuple, tuple], expected: dict[tuple, tuple]) -> None:
    assert set(actual) == set(expected)
    for key, (count, cancelled, weight, charge) in expected.items():
        got = actual[key]
        assert got[0] == count and got[1] == cancelled, key
        assert got[2] == pytest.approx(weight, rel=1e-12), key
        assert got[3] == charge and isinstance(got[3], Decimal), key


@pytest.mark.parametrize("day", [OTHER_DAY, DAY])
def test_totals_match_the_contract(spark: SparkSession, zone: dict[str, Path], day: dt.date) -> None:
    expected = oracle.expected_run(zone["raw"], day)
    _assert_totals_equal(_totals(spark, zone["lake"], day), expected["totals"])
    # the traps were really there
    assert expected["duplicates"] > 0 and expected["quarantined"] > 0 and expected["other_dates"] > 0
    assert any(key[2] == "UNKNOWN" for key in expected["totals"])


def test_table_schema_is_the_contract(spark: SparkSession, zone: dict[str, Path]) -> None:
    table = spark.read.format("delta").load(str(zone["lake"] / "shipment_daily_totals"))
    assert [(f.name, f.dataType.simpleString()) for f in table.schema.fields] == [
        ("ship_date", "date"),
        ("customer_id", "string"),
        ("customer_name", "string"),
        ("segment", "string"),
        ("region", "string"),
        ("shipment_count", "bigint"),
        ("cancelled_count", "bigint"),
        ("total_weight_kg", "double"),
        ("total_charge_usd", "decimal(18,2)"),
    ]
    detail = DeltaTable.forPath(spark, str(zone["lake"] / "shipment_daily_totals")).detail().collect()[0]
    assert detail.partitionColumns == ["ship_date"]


def test_every_invalid_line_is_quarantined_with_its_reason(spark: SparkSession, zone: dict[str, Path]) -> None:
    quarantine = spark.read.format("delta").load(str(zone["lake"] / "quarantine" / "shipments"))
    for day in (OTHER_DAY, DAY):
        rows = quarantine.filter(F.col("ingest_date") == day).collect()
        assert sorted((r.raw_text, r.reason) for r in rows) == oracle.expected_run(zone["raw"], day)["quarantine"]
        assert all(r.source_file.endswith((".jsonl", ".jsonl.gz")) and r.run_id.startswith("daily-") for r in rows)
    reasons = {r.reason.split(":")[0] for r in quarantine.select("reason").distinct().collect()}
    assert reasons == {
        "malformed_json",
        "missing_field",
        "bad_timestamp",
        "bad_number",
        "out_of_range",
        "bad_precision",
        "bad_value",
    }


def test_pipeline_runs_conserve_every_record(spark: SparkSession, zone: dict[str, Path]) -> None:
    runs = spark.read.format("delta").load(str(zone["lake"] / "pipeline_runs"))
    row = runs.filter((F.col("run_date") == DAY) & (F.col("status") == "SUCCEEDED")).orderBy("started_at").collect()[0]
    expected = oracle.expected_run(zone["raw"], DAY)
    assert (row.rows_read, row.rows_kept, row.rows_other_dates, row.rows_duplicates, row.rows_quarantined) == (
        expected["read"],
        expected["kept"],
        expected["other_dates"],
        expected["duplicates"],
        expected["quarantined"],
    )
    assert row.rows_read == row.rows_kept + row.rows_other_dates + row.rows_duplicates + row.rows_quarantined
    assert row.unknown_customers == expected["unknown_customers"]
    assert row.dimension_duplicates == 1
    assert row.rows_written == len(expected["totals"])
    assert (
        row.table_version
        == DeltaTable.forPath(spark, str(zone["lake"] / "shipment_daily_totals"))
        .history()
        .filter(F.col("userMetadata") == row.run_id)
        .collect()[0]
        .version
    )
    # D-1, D and D+1 (lookbehind and lookback 1), two files each
    assert row.input_files == 6 and row.input_fingerprint and row.ended_at >= row.started_at


def _partition_files(spark: SparkSession, lake: Path, day: dt.date) -> set[str]:
    table = spark.read.format("delta").load(str(lake / "shipment_daily_totals"))
    return {
        r.f for r in table.filter(F.col("ship_date") == day).select(F.input_file_name().alias("f")).distinct().collect()
    }


def test_reruns_give_the_same_partition_and_leave_other_dates_alone(spark: SparkSession, zone: dict[str, Path]) -> None:
    lake = zone["lake"]
    before = _totals(spark, lake, DAY)
    other_before = _totals(spark, lake, OTHER_DAY)
    other_files = _partition_files(spark, lake, OTHER_DAY)
    table = DeltaTable.forPath(spark, str(lake / "shipment_daily_totals"))
    start = table.history(1).collect()[0].version
    versions = []
    for _ in range(3):
        assert main(["daily", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(lake)]) == 0
        assert _totals(spark, lake, DAY) == before
        versions.append(table.history(1).collect()[0].version)
    assert versions == [start + 1, start + 2, start + 3]  # each rerun is exactly one commit
    assert _totals(spark, lake, OTHER_DAY) == other_before
    assert _partition_files(spark, lake, OTHER_DAY) == other_files  # not even rewritten
