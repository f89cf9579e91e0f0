"""Conservation can fail in production: a reader that loses records and a write that loses rows
each fail the run with a one-line reason and leave the tables' content as it was."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from shipments.devtools.generate import generate_raw_zone
from shipments.model.layouts import FileKind
from shipments.storage import delta, raw
from shipments.storage.raw import RawFile
from tests.conftest import ROOT

DAY = dt.date(2026, 11, 2)
HEADER = "shipment_id,customer_id,created_at,updated_at,status,origin_region,destination_region,weight_kg,charge_usd"


@pytest.fixture(scope="module")
def zone(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("daily_audit")
    raw_zone, lake = root / "raw", root / "lake"
    generate_raw_zone(raw_zone, dt.date(2026, 11, 1), 3, shipments_per_day=200, customers=20, seed=5, events_per_day=0)
    assert main(_args({"raw": raw_zone, "lake": lake})) == 0
    return {"raw": raw_zone, "lake": lake}


def _args(zone: dict[str, Path]) -> list[str]:
    return ["daily", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(zone["lake"])]


def _content(spark: SparkSession, lake: Path) -> tuple[list, list, int]:
    """(totals rows, quarantine rows, quarantine version): what a reader of the tables sees."""
    totals_path, quarantine_path = str(lake / "shipment_daily_totals"), str(lake / "quarantine" / "shipments")
    return (
        sorted(spark.read.format("delta").load(totals_path).collect()),
        sorted(spark.read.format("delta").load(quarantine_path).drop("quarantined_at").collect(), key=str),
        DeltaTable.forPath(spark, quarantine_path).history(1).collect()[0].version,
    )


def _without_run_id(rows: list) -> list:
    return sorted((tuple(v for k, v in r.asDict().items() if k != "run_id") for r in rows), key=str)


def _last_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    return err[-1]


def _failed_runs(spark: SparkSession, lake: Path) -> list:
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs"))
    return runs.filter(F.col("status") == "FAILED").orderBy("started_at").collect()


def test_a_reader_that_drops_lines_fails_the_run_before_any_write(
    spark: SparkSession, zone: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _content(spark, zone["lake"])
    totals = DeltaTable.forPath(spark, str(zone["lake"] / "shipment_daily_totals"))
    totals_version = totals.history(1).collect()[0].version
    real_read = raw.read_raw_files

    def dropping_blank_lines(spark: SparkSession, files: list[RawFile], kind: FileKind) -> DataFrame:
        # The generated days hold blank lines (quarantined as malformed_json): a reader that
        # skips them, as Spark's CSV reader does, would shrink `read` with them.
        return real_read(spark, files, kind).filter(F.trim("value") != "")

    monkeypatch.setattr(raw, "read_raw_files", dropping_blank_lines)
    assert main(_args(zone)) == 1
    err = _last_error(capsys)
    assert "records lost or gained between the files and the parse" in err and ".jsonl" in err, err
    assert _content(spark, zone["lake"]) == before
    assert totals.history(1).collect()[0].version == totals_version
    assert "records lost or gained" in _failed_runs(spark, zone["lake"])[-1].error


def test_a_write_that_loses_rows_is_put_back_and_fails_the_run(
    spark: SparkSession, zone: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _content(spark, zone["lake"])
    totals_path = str(zone["lake"] / "shipment_daily_totals")
    assert any(r.customer_id == "C0001" and r.ship_date == DAY for r in before[0])
    start = DeltaTable.forPath(spark, totals_path).history(1).collect()[0].version
    real_replace = delta.replace_partitions

    def losing_replace(frame: DataFrame, path: str, column: str, values: Sequence[dt.date], *, run_id: str) -> None:
        # A write that commits without one customer's row (a lost task output, a writer bug).
        if path == totals_path:
            frame = frame.filter(F.col("customer_id") != "C0001")
        real_replace(frame, path, column, values, run_id=run_id)

    monkeypatch.setattr(delta, "replace_partitions", losing_replace)
    assert main(_args(zone)) == 1
    err = _last_error(capsys)
    assert f"the write of {DAY} to {totals_path} lost or gained rows" in err, err
    assert f"put back as they were at version {start}" in err, err
    # Both checks saw it: the commit's own numOutputRows and the partition as written.
    assert "the commit wrote" in err and f"version {start + 1} holds" in err, err
    after = _content(spark, zone["lake"])
    assert after[0] == before[0]  # the published day is as it was
    # The quarantine, written before the totals, is the failed run's: the same lines (same input).
    assert after[2] == before[2] + 1 and _without_run_id(after[1]) == _without_run_id(before[1])
    history = DeltaTable.forPath(spark, totals_path).history(2).orderBy("version").collect()
    assert [h.version for h in history] == [start + 1, start + 2]  # the lost write, then the put-back
    failed = _failed_runs(spark, zone["lake"])[-1]
    assert history[1].userMetadata == f"{failed.run_id}:put-back"
    assert "lost or gained rows" in failed.error and failed.table_version is None


def test_a_csv_file_whose_quote_swallows_records_fails_the_run(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw_zone, lake = tmp_path / "raw", tmp_path / "lake"
    (raw_zone / "customers").mkdir(parents=True)
    (raw_zone / "customers" / "c.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    day = raw_zone / "shipments" / f"ingest_date={DAY}"
    day.mkdir(parents=True)
    good = "S1,C1,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z,CREATED,EU,NA,1.5,10.10"
    (day / "quoted.csv").write_text(
        f'{HEADER}\n{good}\nS2,C1,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z,CREATED,"EU,NA,2,5\n'
        f"{good.replace('S1', 'S3')}\n{good.replace('S1', 'S4')}\n"
    )
    # Quoted fields, one of them over two lines, and an empty line: 2 records, as the reader says.
    spanning = '"S6",C1,2026-11-02T10:00:00Z,2026-11-02T10:00:00Z,"IN\n_TRANSIT",EU,NA,1,1'
    (day / "fine.csv").write_text(f"{HEADER}\n{good.replace('S1', 'S5')}\n{spanning}\n\n")
    conf = tmp_path / "csv.yaml"
    conf.write_text(f"extends: {ROOT / 'conf' / 'local.yaml'}\ndaily:\n  raw_format: csv\n")

    code = main(["daily", "--date", DAY.isoformat(), "--conf", str(conf), "--raw", str(raw_zone), "--lake", str(lake)])

    err = _last_error(capsys)
    assert code == 1
    assert "quoted.csv holds 4 record(s), the reader gave 2" in err and "fine.csv" not in err, err
    assert spark.read.format("delta").load(str(lake / "shipment_daily_totals")).count() == 0
