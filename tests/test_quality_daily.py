"""Data-quality checks of the daily job: each severity's effect, write-audit-publish, and the two
bad days the default checks must stop (an empty file landed again, a field renamed upstream)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.daily import ChecksFailed, DailyRequest, run_daily
from shipments.batch.ledger import SUCCEEDED, RunRecord, record_run
from shipments.cli import main
from shipments.config import Config
from shipments.dates import date_range
from shipments.devtools.generate import generate_raw_zone
from shipments.ops_config import CheckSpec, QualityConfig
from tests.helpers.lake import LOCAL_CONF, daily
from tests.helpers.lake import totals as totals_of

DAY = dt.date(2026, 11, 4)  # a Wednesday


def _table(spark: SparkSession, lake: Path, name: str) -> list[tuple[object, ...]]:
    return sorted((tuple(r) for r in spark.read.format("delta").load(str(lake / name)).collect()), key=str)


def _version(spark: SparkSession, lake: Path, name: str) -> int:
    return int(spark.sql(f"DESCRIBE HISTORY delta.`{lake / name}` LIMIT 1").collect()[0]["version"])


def _published(spark: SparkSession, lake: Path) -> tuple[int, int, list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What readers see of the batch tables: versions and contents of totals and quarantine."""
    names = ("shipment_daily_totals", "quarantine/shipments")
    return (*[_version(spark, lake, n) for n in names], *[_table(spark, lake, n) for n in names])  # type: ignore[return-value]


def _results(spark: SparkSession, lake: Path, check: str) -> list[dict[str, object]]:
    frame = spark.read.format("delta").load(str(lake / "dq_results")).filter(F.col("check_name") == check)
    return [r.asDict() for r in frame.orderBy("checked_at").collect()]


def _alerts(spark: SparkSession, lake: Path) -> list[dict[str, object]]:
    return [r.asDict() for r in spark.read.format("delta").load(str(lake / "alert_state")).collect()]


def _day_files(raw: Path, day: dt.date) -> list[Path]:
    return sorted((raw / "shipments" / f"ingest_date={day.isoformat()}").iterdir())


def _with(config: Config, *checks: CheckSpec) -> Config:
    return dataclasses.replace(config, quality=QualityConfig(daily=checks))


def test_an_empty_file_landed_again_fails_the_rerun_and_leaves_the_published_day(
    spark: SparkSession, raw: Path, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate_raw_zone(raw, DAY - dt.timedelta(days=1), 3, shipments_per_day=300, customers=20, seed=3, gzip_share=0)
    assert daily(DAY, raw, lake) == 0
    before = _published(spark, lake)
    for path in _day_files(raw, DAY):
        path.unlink()
    (raw / "shipments" / f"ingest_date={DAY}" / "part-00000.jsonl").write_bytes(b"")

    assert daily(DAY, raw, lake) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "check(s) failed" in err and "shipment_daily_totals.shrink" in err and "--allow-shrink" in err
    assert _published(spark, lake) == before
    [shrink] = [r for r in _results(spark, lake, "shrink") if not r["passed"]]
    assert shrink["severity"] == "fail" and shrink["run_date"] == DAY and shrink["observed"] > 0.5
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs")).orderBy("started_at").collect()
    assert [r.status for r in runs] == ["SUCCEEDED", "FAILED"] and runs[-1].checks_failed >= 1

    # Intended (the source really withdrew the day's data): --allow-shrink publishes it.
    assert daily(DAY, raw, lake, LOCAL_CONF, "--allow-shrink") == 0
    assert _version(spark, lake, "shipment_daily_totals") == before[0] + 1


def test_a_field_renamed_upstream_fails_the_day_with_one_alert_naming_the_files(
    spark: SparkSession, raw: Path, lake: Path
) -> None:
    generate_raw_zone(raw, DAY - dt.timedelta(days=1), 3, shipments_per_day=1000, customers=20, seed=4, gzip_share=0)
    folder = raw / "shipments" / f"ingest_date={DAY}"
    lines = [line for path in _day_files(raw, DAY) for line in path.read_text().splitlines() if line.strip()]
    for path in _day_files(raw, DAY):
        path.unlink()
    # The producer's new release: created_at is createdAt now, in 100 files.
    renamed = [line.replace('"created_at"', '"createdAt"') for line in lines]
    for number in range(100):
        (folder / f"part-{number:05d}.jsonl").write_text("\n".join(renamed[number::100]) + "\n")

    assert daily(DAY, raw, lake) == 1
    totals = spark.read.format("delta").load(str(lake / "shipment_daily_totals"))
    assert totals.filter(F.col("ship_date") == F.lit(DAY)).count() == 0
    quarantine = spark.read.format("delta").load(str(lake / "quarantine" / "shipments"))
    assert quarantine.filter(F.col("ingest_date") == F.lit(DAY)).count() == 0
    [schema] = _results(spark, lake, "schema")
    assert not schema["passed"] and schema["observed"] == 100.0
    assert "'created_at' missing from every record of 100 file(s)" in str(schema["detail"])
    # The invalid share leaves the drifted files to the schema check: one cause, one alert.
    assert all(r["passed"] for r in _results(spark, lake, "invalid_share"))
    [alert] = _alerts(spark, lake)
    assert (alert["level"], alert["check_name"], alert["state"]) == ("page", "schema", "open")
    assert alert["affected_dates"] == [DAY] and len(alert["sample_keys"]) == 5  # type: ignore[arg-type]
    assert all(str(k).startswith("part-") for k in alert["sample_keys"])  # type: ignore[union-attr]


def test_each_severity_has_its_effect(spark: SparkSession, raw: Path, lake: Path, config: Config) -> None:
    generate_raw_zone(raw, DAY - dt.timedelta(days=1), 3, shipments_per_day=300, customers=20, seed=5, gzip_share=0)
    heavy = {"check": "range", "column": "weight_kg", "max": 60.0}

    warned = run_daily(spark, _with(config, CheckSpec(name="heavy", severity="warn", **heavy)), DailyRequest(DAY))
    [result] = warned.checks
    assert not result.passed and result.observed and len(result.sample_keys) == 5
    assert "1 failed: shipments.heavy (warn)" in warned.summary()
    valid = warned.counts.read - warned.counts.quarantined
    heavy_count = round(result.observed * valid)
    assert 0 < heavy_count < valid
    published = _table(spark, lake, "shipment_daily_totals")

    quarantined = run_daily(
        spark, _with(config, CheckSpec(name="heavy", severity="quarantine", **heavy)), DailyRequest(DAY)
    )
    # Every heavy record read (in D's folder and its neighbours') left the totals for the
    # quarantine; records conserve as always.
    assert quarantined.counts.quarantined - warned.counts.quarantined == heavy_count
    assert quarantined.counts.conserved and quarantined.counts.kept < warned.counts.kept
    stored = spark.read.format("delta").load(str(lake / "quarantine" / "shipments"))
    stored_heavy = stored.filter(F.col("reason") == "check:heavy").collect()
    assert stored_heavy and all(float(json.loads(r.raw_text)["weight_kg"]) > 60 for r in stored_heavy)
    assert {r.ingest_date for r in stored_heavy} == {DAY}

    before = _published(spark, lake)
    failing = _with(config, CheckSpec(name="heavy", severity="fail", **heavy))
    with pytest.raises(ChecksFailed, match=r"shipments\.heavy"):
        run_daily(spark, failing, DailyRequest(DAY))
    assert _published(spark, lake) == before
    assert published != before[2]  # the quarantine run published fewer shipments


def test_a_weekday_far_below_its_baseline_pages_once_and_a_normal_day_resolves_it(
    spark: SparkSession, tmp_path: Path, lake: Path, config: Config
) -> None:
    # Four weeks of history: the same weekday published about 1,000 shipments each week.
    for weeks, kept in zip((1, 2, 3, 4), (1000, 990, 1010, 1005), strict=True):
        day = DAY - dt.timedelta(weeks=weeks)
        record = RunRecord(run_id=f"history-{day}", job="daily", run_date=day, status=SUCCEEDED, rows_kept=kept)
        record_run(spark, config, record)
    quiet, normal = tmp_path / "quiet", tmp_path / "normal"
    generate_raw_zone(quiet, DAY - dt.timedelta(days=1), 3, shipments_per_day=400, customers=20, seed=6, gzip_share=0)
    next_week = DAY + dt.timedelta(weeks=1)
    generate_raw_zone(normal, next_week - dt.timedelta(days=1), 3, shipments_per_day=1000, customers=20, seed=7)

    low = run_daily(spark, dataclasses.replace(config, raw=str(quiet)), DailyRequest(DAY))
    [volume] = [r for r in low.checks if r.spec.name == "volume"]
    assert not volume.passed and volume.cause == "below_baseline"
    [alert] = _alerts(spark, lake)
    assert (alert["level"], alert["check_name"], alert["state"], alert["occurrences"]) == ("page", "volume", "open", 1)
    notified = alert["notified_at"]

    run_daily(spark, dataclasses.replace(config, raw=str(quiet)), DailyRequest(DAY))  # the same day again
    [alert] = _alerts(spark, lake)
    assert (alert["state"], alert["occurrences"], alert["notified_at"]) == ("open", 2, notified)

    fine = run_daily(spark, dataclasses.replace(config, raw=str(normal)), DailyRequest(next_week))
    assert [r.passed for r in fine.checks if r.spec.name == "volume"] == [True]
    [alert] = _alerts(spark, lake)
    assert alert["state"] == "resolved" and alert["resolved_at"] is not None


def test_the_ledger_keeps_the_stage_counts(spark: SparkSession, raw: Path, lake: Path) -> None:
    generate_raw_zone(raw, DAY - dt.timedelta(days=1), 3, shipments_per_day=300, customers=20, seed=8)
    assert daily(DAY, raw, lake) == 0
    run = spark.read.format("delta").load(str(lake / "pipeline_runs")).collect()[0]
    reasons = json.loads(run.quarantine_reasons)
    assert sum(reasons.values()) == run.rows_quarantined > 0
    # the generator lands late versions, never early ones (tests/test_reconcile.py lands one)
    assert run.rows_early == 0 and run.rows_late > 0 and run.checks_failed == 0


def test_a_backfill_broken_by_one_upstream_field_raises_one_alert_naming_every_date(
    spark: SparkSession, raw: Path, lake: Path
) -> None:
    # twelve dates: the grouping is the same for any number; each date is a whole daily run
    dates = date_range(dt.date(2026, 10, 1), dt.date(2026, 10, 12))
    # and two folders more, the last dates' lookback
    generate_raw_zone(raw, dates[0], len(dates) + 2, shipments_per_day=60, customers=10, seed=9, gzip_share=0)
    for path in (raw / "shipments").rglob("*.json*"):
        path.write_text(path.read_text().replace('"created_at"', '"created"'))
    arguments = ["--start", str(dates[0]), "--end", str(dates[-1]), "--raw", str(raw), "--lake", str(lake)]
    assert main(["backfill", *arguments, "--parallelism", "2"]) == 1

    totals = spark.read.format("delta").load(str(lake / "shipment_daily_totals"))
    assert totals.count() == 0
    [alert] = _alerts(spark, lake)
    assert (alert["check_name"], alert["level"], alert["cause"]) == ("schema", "page", "vanished:created_at")
    assert sorted(alert["affected_dates"]) == dates  # type: ignore[type-var]
    failed = spark.read.format("delta").load(str(lake / "dq_results")).filter(~F.col("passed"))
    assert sorted(r.run_date for r in failed.filter(F.col("check_name") == "schema").collect()) == dates


def _producer_line(number: int, created_key: str = "created_at", region: str = "EU") -> str:
    """A record as another producer writes it: keys in its own order, numbers as numbers."""
    record = {
        "weight_kg": 2.5,
        "charge_usd": 10.25,
        "destination_region": "NA",
        "origin_region": region,
        "status": "CREATED",
        "updated_at": "2026-11-04T09:00:00+01:00",
        created_key: "2026-11-04T09:00:00+01:00",
        "customer_id": "C1",
        "shipment_id": f"P{number:04d}",
    }
    return json.dumps(record)


def test_checks_on_files_as_other_producers_write_them_under_ansi(
    spark: SparkSession, raw: Path, lake: Path, config: Config
) -> None:
    (raw / "customers").mkdir(parents=True)
    # As Excel saves CSV: CRLF line ends, a quoted name holding a comma.
    customers = 'customer_id,customer_name,segment,region\r\nC1,"Acme, Inc.",SMB,EU\r\n'
    (raw / "customers" / "customers.csv").write_text(customers)
    folder = raw / "shipments" / f"ingest_date={DAY}"
    folder.mkdir(parents=True)
    # One producer moved to camelCase (gzip, a name with a space and brackets); another still
    # writes the contract's names, with regions as people type them.
    with gzip.open(folder / "export (1).jsonl.gz", "wt") as renamed:
        renamed.write("\n".join(_producer_line(n, created_key="createdAt") for n in range(12)) + "\n")
    regions = ["EU", " EU ", "eu", "NA"] * 3
    (folder / "part-0000.json").write_text(
        "\n".join(_producer_line(100 + n, region=r) for n, r in enumerate(regions)) + "\n"
    )
    schema = CheckSpec(name="schema", check="schema", min_rows=10)
    regions_rule = CheckSpec(
        name="regions", check="accepted_values", column="origin_region", values=("EU", "NA"), severity="quarantine"
    )
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        with pytest.raises(ChecksFailed, match=r"'created_at' missing from every record of 1 file"):
            run_daily(spark, _with(config, schema, regions_rule), DailyRequest(DAY))
        [failed] = [r for r in _results(spark, lake, "schema") if not r["passed"]]
        assert failed["sample_keys"] == ["export (1).jsonl.gz"] and failed["observed"] == 1.0

        warned = dataclasses.replace(schema, severity="warn", alert="log")
        result = run_daily(spark, _with(config, warned, regions_rule), DailyRequest(DAY))
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "false")
    # 24 read: 12 renamed (missing created_at), 3 lower-case regions quarantined by the rule; the
    # padded " EU " is trimmed and accepted. 09:00+01:00 is 08:00 UTC on D.
    assert (result.counts.read, result.counts.quarantined, result.counts.kept) == (24, 15, 9)
    stored = spark.read.format("delta").load(str(lake / "quarantine" / "shipments"))
    by_reason = Counter(r.reason for r in stored.collect())
    assert by_reason == {"missing_field:created_at": 12, "check:regions": 3}
    assert totals_of(spark, lake) == [(DAY, "C1", "Acme, Inc.", "SMB", "EU", 9, 0, 22.5, Decimal("92.25"))]
