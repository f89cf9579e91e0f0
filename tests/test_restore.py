"""Partition restore: one ship_date back as of a table version, every other date untouched."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.daily import DailyRequest, run_daily
from shipments.batch.ledger import SUCCEEDED
from shipments.batch.restore import RestoreRequest, run_restore
from shipments.cli import main
from shipments.config import Config, load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.errors import TableError
from tests.conftest import LOCAL_CONF

DAY = dt.date(2026, 11, 1)
OTHER = dt.date(2026, 11, 2)


def _partition(spark: SparkSession, table: str, day: dt.date, version: int | None = None) -> list[tuple]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted((tuple(r) for r in reader.load(table).filter(F.col("ship_date") == day).collect()), key=repr)


def _data_files(spark: SparkSession, table: str, day: dt.date) -> set[str]:
    """The Parquet files that make up partition ``day`` now: identical files = identical bytes."""
    files = spark.read.format("delta").load(table).filter(F.col("ship_date") == day).inputFiles()
    return {f for f in files if f"/ship_date={day}/" in f}


def _lake_files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_size for p in lake.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two dates run; then DAY re-run on changed input (the 'bad' rerun to be undone)."""
    root = tmp_path_factory.mktemp("restore")
    raw, lake = root / "raw", root / "lake"
    generate_raw_zone(raw, DAY, 3, shipments_per_day=150, customers=30, seed=5, events_per_day=0)
    config: Config = load_config(LOCAL_CONF, raw=str(raw), lake=str(lake))
    good = run_daily(spark, config, DailyRequest(DAY)).table_version
    run_daily(spark, config, DailyRequest(OTHER))
    with (raw / "shipments" / f"ingest_date={DAY}" / "part-00000.jsonl").open("a") as handle:
        handle.write(
            '{"shipment_id":"S-WRONG-1","customer_id":"C0001","created_at":"2026-11-01T09:00:00Z",'
            '"updated_at":"2026-11-01T09:00:00Z","status":"CREATED","weight_kg":99999,"charge_usd":99999.99}\n'
        )
    bad = run_daily(spark, config, DailyRequest(DAY)).table_version
    return {"config": config, "lake": lake, "table": str(lake / "shipment_daily_totals"), "good": good, "bad": bad}


def test_restore_puts_one_partition_back_and_leaves_the_others_identical(spark: SparkSession, lake: dict) -> None:
    table = lake["table"]
    assert _partition(spark, table, DAY, lake["good"]) != _partition(spark, table, DAY, lake["bad"])
    other_rows, other_files = _partition(spark, table, OTHER), _data_files(spark, table, OTHER)

    result = run_restore(spark, lake["config"], RestoreRequest(DAY, lake["good"]))

    assert _partition(spark, table, DAY) == _partition(spark, table, DAY, lake["good"])
    assert _partition(spark, table, OTHER) == other_rows
    assert _data_files(spark, table, OTHER) == other_files  # not even rewritten
    assert result.from_version == lake["good"] and result.table_version > lake["bad"]
    assert result.rows_written == len(_partition(spark, table, DAY))
    runs = (
        spark.read.format("delta").load(str(lake["lake"] / "pipeline_runs")).filter(F.col("job") == "restore").collect()
    )
    assert [(r.run_date, r.status, r.table_version, r.rows_written) for r in runs] == [
        (DAY, SUCCEEDED, result.table_version, result.rows_written)
    ]


def test_a_version_that_does_not_exist_is_refused_and_nothing_changes(
    spark: SparkSession, lake: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _lake_files(lake["lake"])
    code = main(
        [
            "restore",
            "--raw",
            lake["config"].raw,
            "--lake",
            str(lake["lake"]),
            "--date",
            DAY.isoformat(),
            "--to-version",
            "999",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("shipments restore: error: version 999 of ") and "does not exist" in err[-1]
    assert _lake_files(lake["lake"]) == before


def test_a_version_without_the_date_is_refused(spark: SparkSession, lake: dict) -> None:
    before = _lake_files(lake["lake"])
    with pytest.raises(TableError, match="no rows in version 0"):
        run_restore(spark, lake["config"], RestoreRequest(DAY, 0))  # version 0: the empty table as created
    assert _lake_files(lake["lake"]) == before


def test_a_vacuumed_version_is_refused_with_a_clear_error(spark: SparkSession, lake: dict, tmp_path: Path) -> None:
    # On a copy of the lake, so the module's other tests never meet a vacuumed table, whatever
    # runs first. The 'bad' rerun replaced the 'good' version's files of DAY (and a restore, if
    # it ran, replaced those of 'bad'): VACUUM removes them.
    shutil.copytree(lake["lake"], tmp_path / "lake")
    config = load_config(LOCAL_CONF, raw=lake["config"].raw, lake=str(tmp_path / "lake"))
    table = str(tmp_path / "lake" / "shipment_daily_totals")
    # VACUUM lists the table with this many tasks (default 10000): far too many for a test.
    settings = {
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    }
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        DeltaTable.forPath(spark, table).vacuum(0)
    finally:
        for key in settings:
            spark.conf.unset(key)
    before = _lake_files(tmp_path / "lake")
    with pytest.raises(TableError, match="removed by VACUUM"):
        run_restore(spark, config, RestoreRequest(DAY, lake["good"]))
    assert _lake_files(tmp_path / "lake") == before
