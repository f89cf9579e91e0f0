"""A run that fails or is killed part-way leaves the table exactly as it was."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from shipments.config import load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.model.tables import BATCH_TABLES, PIPELINE_RUNS
from shipments.storage import delta

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONF = ROOT / "conf" / "local.yaml"
DAY = dt.date(2026, 11, 2)


@pytest.fixture(scope="module")
def zone(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("daily_failures")
    raw, lake = root / "raw", root / "lake"
    generate_raw_zone(raw, dt.date(2026, 11, 1), 3, shipments_per_day=200, customers=20, seed=5)
    assert main(["daily", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake)]) == 0
    return {"raw": raw, "lake": lake}


def _state(spark: SparkSession, lake: Path) -> tuple[int, int, list, list]:
    """(totals version, quarantine version, totals rows, quarantine rows), fully sorted."""
    totals_path, quarantine_path = str(lake / "shipment_daily_totals"), str(lake / "quarantine" / "shipments")
    return (
        DeltaTable.forPath(spark, totals_path).history(1).collect()[0].version,
        DeltaTable.forPath(spark, quarantine_path).history(1).collect()[0].version,
        sorted(spark.read.format("delta").load(totals_path).collect()),
        sorted(spark.read.format("delta").load(quarantine_path).drop("quarantined_at").collect(), key=str),
    )


def _without_run_id(rows: list) -> list:
    return sorted((tuple(v for k, v in r.asDict().items() if k != "run_id") for r in rows), key=str)


def _runs(spark: SparkSession, lake: Path) -> DataFrame:
    return spark.read.format("delta").load(str(lake / "pipeline_runs"))


def _args(zone: dict[str, Path]) -> list[str]:
    return ["daily", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(zone["lake"])]


def test_failure_during_the_write_changes_nothing(
    spark: SparkSession, zone: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _state(spark, zone["lake"])
    real_replace = delta.replace_partitions

    def failing_replace(frame: DataFrame, path: str, column: str, values: Sequence[dt.date], *, run_id: str) -> int:
        # The Spark write job itself fails on its rows, after data files may have been written.
        name = frame.columns[-1]
        failing = F.when(F.lit(True), F.raise_error(F.lit("injected failure")))
        poisoned = frame.withColumn(name, failing.cast(frame.schema[name].dataType))
        return real_replace(poisoned, path, column, values, run_id=run_id)

    monkeypatch.setattr(delta, "replace_partitions", failing_replace)
    assert main(_args(zone)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("shipments daily: failed:") and "injected failure" in err
    assert _state(spark, zone["lake"]) == before
    failed = _runs(spark, zone["lake"]).filter(F.col("status") == "FAILED").collect()
    assert len(failed) == 1 and "injected failure" in failed[0].error and failed[0].rows_read > 0


def test_records_that_do_not_conserve_stop_the_run_before_any_write(
    spark: SparkSession, zone: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shipments.batch.plan as plan

    before = _state(spark, zone["lake"])

    def fanning_out(shipments: DataFrame, customers: DataFrame) -> DataFrame:
        # A join against a dimension with every customer twice: the bug the check exists for.
        from shipments.transforms.enrich import with_customer

        return with_customer(shipments, customers).unionByName(with_customer(shipments, customers).limit(3))

    monkeypatch.setattr(plan, "with_customer", fanning_out)
    assert main(_args(zone)) == 1
    assert "records do not conserve" in capsys.readouterr().err
    assert _state(spark, zone["lake"]) == before


@pytest.mark.slow
def test_process_killed_mid_write_changes_nothing_and_the_next_run_succeeds(
    spark: SparkSession, zone: dict[str, Path], tmp_path: Path
) -> None:
    before = _state(spark, zone["lake"])
    marker = tmp_path / "writing"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.hang_in_write", str(marker), *_args(zone)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the JVM and Python workers die with it
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, "the job ended before reaching the write"
            assert time.monotonic() < deadline, "the job never reached the write"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    # The totals commit publishes the day: killed while writing it, the published day is as it
    # was. The quarantine, written just before, may already be the killed run's.
    killed = _state(spark, zone["lake"])
    assert (killed[0], killed[2]) == (before[0], before[2])

    assert main(_args(zone)) == 0
    after = _state(spark, zone["lake"])
    assert after[0] == before[0] + 1 and after[2] == before[2]
    assert _without_run_id(after[3]) == _without_run_id(before[3])


def test_a_table_that_cannot_be_created_fails_after_the_others_are_created(spark: SparkSession, tmp_path: Path) -> None:
    # Tables are created at once; one that fails (its location is a file someone left there) must
    # not stop the others, nor leave the caller before they are done.
    config = load_config(LOCAL_CONF, raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))
    blocked = Path(PIPELINE_RUNS.path(config))
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a table\n")
    with pytest.raises(AnalysisException, match=r"pipeline_runs` is not a Delta table"):
        delta.ensure_tables(spark, config, BATCH_TABLES)
    created = {spec.name for spec in BATCH_TABLES if delta.is_table(spark, spec.path(config))}
    assert created == {spec.name for spec in BATCH_TABLES} - {PIPELINE_RUNS.name}
    assert blocked.read_text() == "not a table\n"
