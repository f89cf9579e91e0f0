"""``shipments reconcile``: agreement after a run, the recorded ledger of the run that wrote the
partition, and each kind of difference explained."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from shipments.batch.ledger import recorded_runs
from shipments.cli import main
from shipments.config import load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.model.tables import PIPELINE_RUNS_SCHEMA
from tests import oracle
from tests.conftest import LOCAL_CONF
from tests.helpers.lake import last_daily_run

DAY = dt.date(2026, 11, 2)
STAGES = ("read", "invalid", "duplicates", "deleted", "other dates", "kept", "unknown customers", "written")
NEW_COLUMNS = ("rows_early", "rows_late", "quarantine_reasons", "checks_failed")


def _line(shipment_id: str, created: str = "2026-11-02T08:00:00Z") -> str:
    return json.dumps(
        {
            "shipment_id": shipment_id,
            "customer_id": "C0001",
            "created_at": created,
            "updated_at": created,
            "status": "CREATED",
            "weight_kg": 2.5,
            "charge_usd": 10.00,
        }
    )


@pytest.fixture(scope="module")
def zone(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reconcile")
    raw, lake = root / "raw", root / "lake"
    generate_raw_zone(raw, dt.date(2026, 11, 1), 3, shipments_per_day=150, customers=10, seed=3)
    # A shipment of D in D-1's folder (a producer clock a little ahead): an early arrival.
    (raw / "shipments" / "ingest_date=2026-11-01" / "early.jsonl").write_text(
        _line("EARLY-0001", "2026-11-02T00:10:00Z") + "\n"
    )
    assert main(["daily", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake)]) == 0
    return {"raw": raw, "lake": lake}


def _reconcile(zone: dict[str, Path], capsys: pytest.CaptureFixture[str], lake: Path | None = None) -> tuple[int, str]:
    capsys.readouterr()
    lake = lake or zone["lake"]
    code = main(["reconcile", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(lake)])
    return code, capsys.readouterr().out


def _ledger(out: str) -> dict[str, list[str]]:
    """The printed ledger: stage -> [run, raw now, detail...] (columns split on 2+ spaces)."""
    rows = {}
    for line in out.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if line.startswith("    ") and parts[0] in STAGES:
            rows[parts[0]] = parts[1:]
    assert list(rows) == list(STAGES), out
    return rows


def _lines(out: str, prefix: str) -> list[str]:
    return [line.strip().removeprefix(prefix) for line in out.splitlines() if line.strip().startswith(prefix)]


def _runs(spark: SparkSession, lake: Path, job: str) -> list[Row]:
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs")).filter(F.col("job") == job)
    return runs.filter(F.col("run_date") == DAY).orderBy("started_at").collect()


def _independent_ledger(raw: Path) -> dict[str, object]:
    """D's stages counted by the plain-Python reading of the contract (tests/oracle.py), with
    the reasons of every line read and the ingest folder each winning version came from."""
    expected = oracle.expected_run(raw, DAY)
    reasons: Counter[str] = Counter()
    winners: dict[str, tuple[tuple, dt.date, dict]] = {}
    for offset in (-1, 0, 1):
        ingest = DAY + dt.timedelta(days=offset)
        for _, line in oracle.read_lines(raw, ingest):
            reason, record = oracle.classify(line)
            if reason is not None:
                reasons[reason] += 1
                continue
            assert record is not None
            # Equal versions: the one from the later ingest folder wins (README: the tie rule).
            key = (oracle.version_key(record), ingest)
            best = winners.get(record["shipment_id"])
            if best is None or key > best[:2]:
                winners[record["shipment_id"]] = (*key, record)
    on_day = [(ingest, record) for _, ingest, record in winners.values() if record["ship_date"] == DAY]
    unknown = {key: value for key, value in expected["totals"].items() if key[2] == "UNKNOWN"}
    return {
        **expected,
        "reasons": reasons,
        "early": sum(ingest < DAY for ingest, _ in on_day),
        "late": sum(ingest > DAY for ingest, _ in on_day),
        "written": len(expected["totals"]),
        "unknown_rows": sum(count for count, *_ in unknown.values()),
    }


def test_agrees_right_after_a_run_and_prints_the_runs_ledger(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _reconcile(zone, capsys)
    assert code == 0 and out.startswith(f"reconcile {DAY}: AGREE"), out
    run = last_daily_run(spark, zone["lake"], DAY)
    counted = _independent_ledger(zone["raw"])
    reasons = sorted(counted["reasons"].items(), key=lambda item: (-item[1], item[0]))
    assert len(reasons) > 3  # the generated day has invalid lines of several kinds
    top = ", ".join(f"{reason} {count}" for reason, count in reasons[:3]) + f", +{len(reasons) - 3} more reason(s)"
    expected = {
        "read": [str(counted["read"]), str(counted["read"])],
        "invalid": [str(counted["quarantined"])] * 2 + [top],
        "duplicates": [str(counted["duplicates"])] * 2,
        "deleted": ["0", "0"],
        "other dates": [str(counted["other_dates"])] * 2,
        "kept": [str(counted["kept"])] * 2 + [f"of which early {counted['early']}, late {counted['late']}"],
        "unknown customers": [str(counted["unknown_customers"])] * 2 + [f"{counted['unknown_rows']} shipment(s)"],
        "written": [str(counted["written"])] * 2 + ["customer rows"],
    }
    assert _ledger(out) == expected, out
    # The run column is the ledger row itself.
    recorded = dict(
        zip(
            STAGES,
            (
                run.rows_read,
                run.rows_quarantined,
                run.rows_duplicates,
                run.rows_deleted,
                run.rows_other_dates,
                run.rows_kept,
                run.unknown_customers,
                run.rows_written,
            ),
            strict=True,
        )
    )
    assert {stage: int(values[0]) for stage, values in _ledger(out).items()} == recorded
    assert (run.rows_early, run.rows_late) == (counted["early"], counted["late"])
    assert json.loads(run.quarantine_reasons) == dict(counted["reasons"])
    assert counted["early"] and counted["late"]  # the day has both kinds of arrival
    assert _lines(out, "partition ") == [
        f"{DAY} was last written by daily run {run.run_id} (table version {run.table_version})"
    ]
    assert _lines(out, "conservation: ") == [
        f"read {run.rows_read} = invalid {run.rows_quarantined} + duplicates {run.rows_duplicates} + deleted 0 "
        f"+ other dates {run.rows_other_dates} + kept {run.rows_kept}: holds"
    ]
    checks = spark.read.format("delta").load(str(zone["lake"] / "dq_results")).filter(F.col("run_id") == run.run_id)
    failed = checks.filter(~F.col("passed")).orderBy("check_name").collect()
    assert run.checks_failed == len(failed)
    shown = "; ".join(f"{r.check_name} ({r.severity}): {r.detail}" for r in failed)
    assert _lines(out, "checks: ") == [
        f"{checks.count()} judged, " + (f"{len(failed)} failed: {shown}" if failed else "none failed")
    ]
    assert _lines(out, "table now: ") == [
        f"partition {DAY} holds {counted['written']} customer rows, {counted['kept']} shipments"
    ]
    assert _lines(out, "explained: ") == []


def test_a_ledger_without_the_new_columns_still_explains(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An older release's lake, copied so the module's other tests keep theirs: its runs recorded
    # no arrivals, reasons or checks (null in the ledger), and it has no dq_results.
    lake = tmp_path / "lake"
    shutil.copytree(zone["lake"], lake)
    shutil.rmtree(lake / "dq_results")
    DeltaTable.forPath(spark, str(lake / "pipeline_runs")).update(set={c: F.lit(None) for c in NEW_COLUMNS})
    run = last_daily_run(spark, lake, DAY)

    code, out = _reconcile(zone, capsys, lake)

    assert code == 0, out
    ledger = _ledger(out)
    assert ledger["invalid"][2] == "reasons not recorded (raw now: " + ledger["invalid"][2].split("(raw now: ")[1]
    assert ledger["kept"][2].startswith("early/late arrivals not recorded (raw now: of which early ")
    assert [values[0] for values in ledger.values()] == [
        str(v)
        for v in (
            run.rows_read,
            run.rows_quarantined,
            run.rows_duplicates,
            run.rows_deleted,
            run.rows_other_dates,
            run.rows_kept,
            run.unknown_customers,
            run.rows_written,
        )
    ]
    assert _lines(out, "checks: ") == ["not recorded"]
    assert _lines(out, "conservation: ")[0].endswith(": holds")


def test_a_ledger_older_than_a_column_reads_it_as_not_recorded(spark: SparkSession, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    old_columns = [f for f in PIPELINE_RUNS_SCHEMA.fields if f.name not in (*NEW_COLUMNS, "rows_deleted")]
    row = {f.name: None for f in old_columns} | {
        "run_id": "daily-old",
        "job": "daily",
        "run_date": DAY,
        "started_at": dt.datetime(2026, 11, 3, 6, 0),
        "ended_at": dt.datetime(2026, 11, 3, 6, 5),
        "status": "SUCCEEDED",
        "rows_read": 7,
    }
    schema = PIPELINE_RUNS_SCHEMA.__class__(old_columns)
    spark.createDataFrame([tuple(row[f.name] for f in old_columns)], schema).write.format("delta").save(
        str(lake / "pipeline_runs")
    )
    config = load_config(LOCAL_CONF, raw=str(tmp_path / "raw"), lake=str(lake))

    [run] = recorded_runs(spark, config, DAY)

    assert (run.run_id, run.rows_read, run.rows_deleted, run.rows_early, run.quarantine_reasons) == (
        "daily-old",
        7,
        None,
        None,
        None,
    )


def test_a_file_landing_after_the_run_is_explained_then_fixed_by_a_rerun(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = last_daily_run(spark, zone["lake"], DAY)
    late = zone["raw"] / "shipments" / "ingest_date=2026-11-03" / "late-upload.jsonl"
    late.write_text(_line("LATE-0001") + "\n")
    code, out = _reconcile(zone, capsys)
    assert code == 3
    assert "customer C0001: shipment_count raw" in out
    assert "LATE-0001" in out
    # Explained from the recorded read count first: nothing else moved.
    assert _lines(out, "explained: ") == [
        f"raw now holds {run.rows_read + 1} records, the run read {run.rows_read}: 1 record(s) landed after the run "
        f"(1 file(s): late-upload.jsonl (ingest 2026-11-03)); rerun `shipments daily --date {DAY}`"
    ]
    ledger = _ledger(out)
    assert ledger["read"][:2] == [str(run.rows_read), str(run.rows_read + 1)]
    assert ledger["kept"][:2] == [str(run.rows_kept), str(run.rows_kept + 1)]
    assert ledger["kept"][2] == f"of which early {run.rows_early}, late {run.rows_late} (raw now: of which early " + (
        f"{run.rows_early}, late {run.rows_late + 1})"
    )

    assert main(["daily", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(zone["lake"])]) == 0
    code, out = _reconcile(zone, capsys)
    assert code == 0, out
    assert _lines(out, "explained: ") == []


def test_a_partition_restored_to_an_older_version_is_explained_as_written_by_the_restore(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # After the previous test: two daily runs of D, the second with the late file.
    before, after = _runs(spark, zone["lake"], "daily")[-2:]
    lake = ["--raw", str(zone["raw"]), "--lake", str(zone["lake"]), "--date", DAY.isoformat()]
    assert main(["restore", *lake, "--to-version", str(before.table_version)]) == 0
    [restore] = _runs(spark, zone["lake"], "restore")

    code, out = _reconcile(zone, capsys)

    assert code == 3, out
    [written_by] = _lines(out, "partition ")
    assert written_by.startswith(f"{DAY}: restore {restore.run_id} at "), written_by
    assert written_by.endswith(
        f"(table version {restore.table_version}) put back table version {before.table_version}; "
        f"so it holds what daily run {before.run_id} published (table version {before.table_version})"
    ), written_by
    assert _lines(out, "ledger of daily run ")[0].startswith(f"{before.run_id} (started ")
    assert _ledger(out)["read"][:2] == [str(before.rows_read), str(after.rows_read)]
    # The table holds what that run recorded, so the difference comes from raw: the late file.
    assert _lines(out, "explained: ") == [
        f"raw now holds {after.rows_read} records, the run read {before.rows_read}: 1 record(s) landed after the "
        f"run (1 file(s): late-upload.jsonl (ingest 2026-11-03)); rerun `shipments daily --date {DAY}`"
    ]
    assert _lines(out, "table now: ") == [
        f"partition {DAY} holds {before.rows_written} customer rows, {before.rows_kept} shipments"
    ]

    # Restored again to the later run's version: a restore of a restore's source, and agreement.
    assert main(["restore", *lake, "--to-version", str(after.table_version)]) == 0
    code, out = _reconcile(zone, capsys)
    assert code == 0, out
    assert _lines(out, "partition ")[0].endswith(
        f"so it holds what daily run {after.run_id} published (table version {after.table_version})"
    )


def test_shipments_beyond_the_lookback_window_are_named(
    zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = zone["raw"] / "shipments" / "ingest_date=2026-11-05"
    folder.mkdir()
    (folder / "part-00000.jsonl").write_text(
        _line("VERY-LATE-1") + "\n" + _line("NEXT-DAY", "2026-11-05T01:00:00Z") + "\n"
    )
    try:
        code, out = _reconcile(zone, capsys)
        assert code == 3
        assert "1 shipment(s) of 2026-11-02 landed after the lookback window" in out and "VERY-LATE-1" in out
        assert "NEXT-DAY" not in out
    finally:
        (folder / "part-00000.jsonl").unlink()
        folder.rmdir()


def test_fan_out_in_the_table_is_reported(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(zone["lake"] / "shipment_daily_totals")
    table = spark.read.format("delta").load(path)
    c0002 = table.filter((F.col("ship_date") == DAY) & (F.col("customer_id") == "C0002"))
    [twice] = c0002.collect()
    c0002.write.format("delta").mode("append").save(path)
    code, out = _reconcile(zone, capsys)
    assert code == 3
    assert "fan-out: customer_id(s) C0002 appear more than once" in out
    # The table no longer holds what the run recorded: explained by the commit no run made.
    run = last_daily_run(spark, zone["lake"], DAY)
    appended = DeltaTable.forPath(spark, path).history(1).collect()[0]
    [written_by] = _lines(out, "partition ")
    assert written_by.startswith(f"{DAY}: table version {appended.version} (WRITE at "), written_by
    assert written_by.endswith(
        f"published (table version {run.table_version}), changed since by writes no run recorded"
    )
    [explained] = _lines(out, "explained: ")
    assert explained.startswith(
        f"table holds {run.rows_kept + twice.shipment_count} shipments in {run.rows_written + 1} customer rows, "
        f"the run recorded {run.rows_kept} kept in {run.rows_written} rows: the partition changed after the run "
        f"(table version {appended.version}: WRITE at "
    )
