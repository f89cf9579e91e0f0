"""Backfill: parallel days in one Spark application, resumable and idempotent through the ledger.

The reference for every comparison is the daily job run date by date, sequentially, on the same
raw zone (``sequential`` below): a backfill must give exactly those tables, however it ran.
Tests in this module share one raw zone; the one that edits it runs last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch import backfill as backfill_module
from shipments.batch.backfill import SKIPPED, BackfillRequest, BackfillResult, DayOutcome, run_backfill
from shipments.batch.daily import DailyRequest, daily_inputs, run_daily
from shipments.batch.ledger import FAILED, SUCCEEDED
from shipments.batch.passes import PassDay, pass_days, pass_listing
from shipments.batch.plan import RUN_DATE, daily_plan, for_run_dates, ingest_dates, raw_layout
from shipments.batch.reconcile import ReconcileRequest, run_reconcile
from shipments.batch.resume import RUN, DayPlan, plan_backfill
from shipments.batch.retry import is_commit_conflict, run_with_retry
from shipments.cli import main
from shipments.config import Config, DailyConfig, load_config
from shipments.dates import date_range
from shipments.devtools.generate import generate_raw_zone
from shipments.errors import ConfigError
from shipments.model.tables import PIPELINE_RUNS_SCHEMA
from shipments.storage import raw as raw_files
from shipments.storage.raw import RawFile, RawListing
from shipments.transforms.dedup import to_latest_versions
from shipments.transforms.validate import to_valid_shipments
from tests.conftest import LOCAL_CONF, ROOT

START = dt.date(2026, 11, 1)
END = dt.date(2026, 11, 5)
DAYS = date_range(START, END)
GENERATED_DAYS = len(DAYS) + 1  # one more than the backfill, so the last date has its lookback folder


def _config(raw: Path, lake: Path, *, pass_mb: float | None = None) -> Config:
    """The local config on ``raw`` and ``lake``; ``pass_mb`` replaces ``daily.backfill_pass_mb``
    (0: every date an isolated run)."""
    config = load_config(LOCAL_CONF, raw=str(raw), lake=str(lake))
    if pass_mb is None:
        return config
    return dataclasses.replace(config, daily=dataclasses.replace(config.daily, backfill_pass_mb=pass_mb))


def _folder_mb(raw: Path, days: list[dt.date]) -> float:
    """The MB of the ingest folders of ``days``."""
    folders = [raw / "shipments" / f"ingest_date={day}" for day in days]
    return sum(p.stat().st_size for folder in folders if folder.exists() for p in folder.iterdir()) / 1024 / 1024


def _rows(spark: SparkSession, lake: Path, dates: list[dt.date]) -> dict[str, list[tuple]]:
    """Table contents for ``dates``, sorted, without what legitimately differs between runs
    (run ids, timestamps, the raw zone's folder). Weights compare exactly: the job sums them as
    decimals before the cast to double, so no order of partial sums can change a bit."""
    totals = [
        (
            r.ship_date,
            r.customer_id,
            r.customer_name,
            r.segment,
            r.region,
            r.shipment_count,
            r.cancelled_count,
            r.total_weight_kg,
            r.total_charge_usd,
        )
        for r in spark.read.format("delta")
        .load(str(lake / "shipment_daily_totals"))
        .filter(F.col("ship_date").isin(dates))
        .collect()
    ]
    quarantine = [
        (r.ingest_date, r.ship_date, r.shipment_id, r.reason, r.raw_text, r.source_file.rsplit("/shipments/", 1)[-1])
        for r in spark.read.format("delta")
        .load(str(lake / "quarantine" / "shipments"))
        .filter(F.col("ingest_date").isin(dates))
        .collect()
    ]
    return {"totals": sorted(totals, key=repr), "quarantine": sorted(quarantine, key=repr)}


def _ledger(spark: SparkSession, lake: Path) -> list:
    return spark.read.format("delta").load(str(lake / "pipeline_runs")).filter(F.col("job") == "daily").collect()


def _files(lake: Path) -> dict[str, int]:
    """Every file under the lake with its size: a new table version anywhere adds a file."""
    return {str(p.relative_to(lake)): p.stat().st_size for p in lake.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("backfill") / "raw"
    generate_raw_zone(folder, START, GENERATED_DAYS, shipments_per_day=200, customers=40, seed=23, events_per_day=0)
    return folder


@pytest.fixture(scope="module")
def sequential(spark: SparkSession, raw: Path) -> dict[str, list[tuple]]:
    """The reference: the daily job for each date, one after the other."""
    lake = raw.parent / "lake-sequential"
    config = _config(raw, lake)
    for day in DAYS:
        run_daily(spark, config, DailyRequest(day))
    return _rows(spark, lake, DAYS)


@pytest.fixture(scope="module")
def parallel_lake(spark: SparkSession, raw: Path) -> Path:
    """The same dates, backfilled as isolated runs 4 at a time (passes off)."""
    lake = raw.parent / "lake-parallel"
    result = run_backfill(spark, _config(raw, lake, pass_mb=0), BackfillRequest(START, END, parallelism=4))
    assert not result.failed, result.summary()
    assert {o.pass_dates for o in result.outcomes} == {0}
    return lake


@pytest.fixture(scope="module")
def pass_lake(spark: SparkSession, raw: Path) -> tuple[Path, BackfillResult]:
    """The same dates, backfilled in passes (the default): one pass of all of them."""
    lake = raw.parent / "lake-passes"
    result = run_backfill(spark, _config(raw, lake), BackfillRequest(START, END))
    assert not result.failed, result.summary()
    return lake, result


# ------------------------------------------------------------------- retry on commit conflicts


def _java_error(spark: SparkSession, class_name: str) -> Py4JJavaError:
    java_class = spark.sparkContext._jvm
    for part in class_name.split("."):
        java_class = getattr(java_class, part)
    return Py4JJavaError("An error occurred while calling o1.save.\n", java_class("conflicting commit"))


@pytest.mark.parametrize(
    ("class_name", "conflict"),
    [
        ("io.delta.exceptions.ConcurrentAppendException", True),
        ("io.delta.exceptions.ConcurrentDeleteReadException", True),
        ("io.delta.exceptions.MetadataChangedException", True),
        ("java.io.IOException", False),
    ],
)
def test_commit_conflicts_are_told_apart_by_java_class(spark: SparkSession, class_name: str, conflict: bool) -> None:
    assert is_commit_conflict(_java_error(spark, class_name)) is conflict


def test_a_wrapped_conflict_is_still_a_conflict(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    inner = jvm.io.delta.exceptions.ConcurrentAppendException("conflicting commit")
    outer = jvm.java.lang.RuntimeException("job failed", inner)
    assert is_commit_conflict(Py4JJavaError("An error occurred.\n", outer))


def test_conflicts_are_retried_with_growing_backoff_then_succeed(spark: SparkSession) -> None:
    delays: list[float] = []

    def flaky(attempt: int) -> str:
        if attempt < 3:
            raise _java_error(spark, "io.delta.exceptions.ConcurrentAppendException")
        return "done"

    result, attempts = run_with_retry(flaky, max_attempts=4, backoff_seconds=1.0, sleep=delays.append)  # type: ignore[arg-type]
    assert (result, attempts) == ("done", 3)
    assert len(delays) == 2 and 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 2.0


def test_retries_are_bounded_and_other_errors_are_not_retried(spark: SparkSession) -> None:
    calls: list[int] = []

    def always_conflicts(attempt: int) -> str:
        calls.append(attempt)
        raise _java_error(spark, "io.delta.exceptions.ConcurrentAppendException")

    with pytest.raises(Py4JJavaError):
        run_with_retry(always_conflicts, max_attempts=3, backoff_seconds=0.0, sleep=lambda _: None)
    assert calls == [1, 2, 3]

    calls.clear()

    def broken(attempt: int) -> str:
        calls.append(attempt)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):
        run_with_retry(broken, max_attempts=3, backoff_seconds=0.0, sleep=lambda _: None)
    assert calls == [1]


# ------------------------------------------------------------------------------ EMR steps


def _emr_steps(args: list[str], tmp_path: Path) -> tuple[int, list[dict]]:
    import runpy

    generator = runpy.run_path(str(ROOT / "emr" / "backfill_steps.py"))
    out = tmp_path / "steps.json"
    code = generator["main"]([*args, "--artifacts", "s3://bucket/shipments", "--out", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else [])


def test_emr_steps_are_one_idempotent_backfill_per_date(tmp_path: Path) -> None:
    code, steps = _emr_steps(
        [
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-03",
            "--step-concurrency",
            "3",
            "--dynamodb-table",
            "delta_log",
            "--dynamodb-region",
            "eu-west-1",
        ],
        tmp_path,
    )
    assert code == 0
    assert [s["Name"] for s in steps] == [f"shipments backfill 2026-11-0{i}" for i in (1, 2, 3)]
    assert all(s["ActionOnFailure"] == "CONTINUE" and s["Jar"] == "command-runner.jar" for s in steps)
    args = steps[1]["Args"]
    assert args[args.index("--start") + 1] == args[args.index("--end") + 1] == "2026-11-02"
    assert "spark.delta.logStore.s3.impl=io.delta.storage.S3DynamoDBLogStore" in args


def test_emr_steps_refuse_concurrent_drivers_without_a_dynamodb_log_store(tmp_path: Path) -> None:
    code, steps = _emr_steps(["--start", "2026-11-01", "--end", "2026-11-03", "--step-concurrency", "2"], tmp_path)
    assert code != 0 and steps == []


# ------------------------------------------------------------------------------- end to end


def test_dry_run_prints_the_plan_and_writes_nothing(
    spark: SparkSession, raw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = raw.parent / "lake-dry-run"
    args = ["backfill", "--raw", str(raw), "--lake", str(lake), "--start", "2026-11-01", "--end", "2026-11-03"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 to run, 0 skipped (dry run" in out
    assert all(f"{day}  run   never run" in out for day in ("2026-11-01", "2026-11-02", "2026-11-03"))
    assert not lake.exists()


def test_parallel_backfill_gives_the_same_tables_as_sequential_runs(
    spark: SparkSession, sequential: dict[str, list[tuple]], parallel_lake: Path
) -> None:
    parallel = _rows(spark, parallel_lake, DAYS)
    assert parallel["totals"] == sequential["totals"]
    assert parallel["quarantine"] == sequential["quarantine"]
    assert {r[0] for r in parallel["totals"]} == set(DAYS)
    succeeded = Counter(r.run_date for r in _ledger(spark, parallel_lake) if r.status == SUCCEEDED)
    assert succeeded == Counter(DAYS)


def test_a_backfill_in_one_pass_gives_what_isolated_runs_give_date_by_date(
    spark: SparkSession, raw: Path, sequential: dict[str, list[tuple]], pass_lake: tuple[Path, BackfillResult]
) -> None:
    lake, result = pass_lake
    assert {o.pass_dates for o in result.outcomes} == {len(DAYS)}
    ours = _rows(spark, lake, DAYS)
    assert ours["totals"] == sequential["totals"]
    assert ours["quarantine"] == sequential["quarantine"]
    # Every date has its own ledger row with its own counts, exactly those of its isolated run;
    # the pass's dates share its run id and its one totals commit.
    counted = [f.name for f in PIPELINE_RUNS_SCHEMA.fields if f.name.startswith(("rows_", "unknown_"))]
    counted += ["quarantine_reasons", "input_fingerprint", "input_files", "input_bytes", "checks_failed"]
    passed = {r.run_date: r for r in _ledger(spark, lake)}
    alone = {r.run_date: r for r in _ledger(spark, raw.parent / "lake-sequential")}
    assert sorted(passed) == DAYS and all(r.status == SUCCEEDED for r in passed.values())
    assert {d: [r[c] for c in counted] for d, r in passed.items()} == {
        d: [r[c] for c in counted] for d, r in alone.items()
    }
    assert len({(r.run_id, r.table_version) for r in passed.values()}) == 1
    totals = DeltaTable.forPath(spark, str(lake / "shipment_daily_totals")).history()
    assert totals.filter(F.col("operation") == "WRITE").count() == 1
    # Reconcile follows the pass's commit back to the date's ledger row, as for any run: the
    # only difference it finds is the generator's shipments landed beyond the lookback.
    day = dt.date(2026, 11, 4)
    report = run_reconcile(spark, _config(raw, lake), ReconcileRequest(day))
    assert f"last written by daily run {passed[day].run_id} (table version" in report.summary()
    assert report.findings and all("landed after the lookback window" in f for f in report.findings)
    # ... and shows the date's own checks, not every date's of the pass (they share its run id).
    results = spark.read.format("delta").load(str(lake / "dq_results"))
    own = results.filter(F.col("run_date") == F.lit(day)).count()
    assert 0 < own < results.count()
    assert f"checks: {own} judged" in report.summary(), report.summary()


def test_passes_are_consecutive_dates_within_the_input_cap() -> None:
    def day(number: int, *sizes: tuple[str, int]) -> PassDay:
        files = [RawFile(path, size, 0, dt.date(2026, 11, number), "x", "shipments") for path, size in sizes]
        return PassDay(dt.date(2026, 11, number), RawListing(files, []), f"f{number}")

    # Each date reads its own folder and the next (shared files count once towards the cap).
    days = [day(n, (f"d{n}", 40), (f"d{n + 1}", 40)) for n in (1, 2, 3, 4, 6, 7)]
    groups = [[d.run_date.day for d in group] for group in pass_days(days, 120)]
    assert groups == [[1, 2], [3, 4], [6, 7]]  # 1+2 read 120 bytes, +3 would be 160; 5 is not run
    assert [[d.run_date.day for d in g] for g in pass_days(days, 10)] == [[1], [2], [3], [4], [6], [7]]
    assert len(pass_days(days, 10**6)) == 2  # the gap at the 5th still cuts


def test_passes_and_isolated_dates_run_in_date_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1st-2nd form a pass; the 3rd could not be listed; the 4th-5th form a pass that fails
    (they run isolated); the 6th reads more than the cap: each runs in its date's turn, so the
    volume check of a date sees the dates before it recorded, as date by date."""

    def plan(number: int, size: int | None) -> DayPlan:
        run_date = dt.date(2026, 11, number)
        if size is None:
            return DayPlan(run_date, RUN, "input could not be listed")
        files = [RawFile(f"d{number}", size, 0, run_date, "x", "shipments")]
        return DayPlan(run_date, RUN, "new", fingerprint=f"f{number}", listing=RawListing(files, []))

    calls: list[str] = []

    def run_all(backfill: object, dates: list[dt.date], parallelism: int) -> Iterator[DayOutcome]:
        if dates:  # (the real one makes nothing of an empty list either)
            calls.append("isolated " + ",".join(str(d.day) for d in dates))
        yield from (DayOutcome(d, SUCCEEDED) for d in dates)

    def run_one_pass(backfill: object, group: list[PassDay]) -> list[DayOutcome] | None:
        calls.append("pass " + ",".join(str(d.run_date.day) for d in group))
        return None if group[0].run_date.day == 4 else [DayOutcome(d.run_date, SUCCEEDED) for d in group]

    monkeypatch.setattr(backfill_module, "_run_all", run_all)
    monkeypatch.setattr(backfill_module, "_run_one_pass", run_one_pass)
    config = load_config(LOCAL_CONF, raw="/unused", lake="/unused")
    config = dataclasses.replace(config, daily=dataclasses.replace(config.daily, backfill_pass_mb=100 / 2**20))
    backfill = backfill_module._Backfill(None, config, "b", 1, 0.0, False)  # type: ignore[arg-type]
    plans = [plan(1, 40), plan(2, 40), plan(3, None), plan(4, 40), plan(5, 40), plan(6, 500)]
    outcomes = list(backfill_module._run_passes(backfill, plans, 2))
    assert [o.run_date.day for o in outcomes] == [1, 2, 3, 4, 5, 6]
    assert calls == ["pass 1,2", "isolated 3", "pass 4,5", "isolated 4,5", "isolated 6"]


@pytest.mark.parametrize("value", [-1, "big", True, float("inf")])
def test_a_bad_pass_cap_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"daily\.backfill_pass_mb must be a number of MB"):
        DailyConfig(backfill_pass_mb=value)  # type: ignore[arg-type]


def test_repeating_a_finished_backfill_writes_nothing(
    spark: SparkSession, raw: Path, parallel_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(parallel_lake)
    code = main(
        [
            "backfill",
            "--raw",
            str(raw),
            "--lake",
            str(parallel_lake),
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--parallelism",
            "4",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"0 to run, {len(DAYS)} skipped" in out
    assert sum(line.split()[1] == SKIPPED for line in out.splitlines() if line[:4] == "2026") == len(DAYS)
    assert _files(parallel_lake) == before  # no table version, no ledger row, no data file


def test_a_corrupt_file_fails_the_days_that_read_it_and_only_those(
    spark: SparkSession, raw: Path, sequential: dict[str, list[tuple]], capsys: pytest.CaptureFixture[str]
) -> None:
    # ingest_date=11-03 is read by the runs of 11-03, 11-02 (its lookback) and 11-04 (its lookbehind).
    zone = raw.parent / "raw-corrupt"
    shutil.copytree(raw / "customers", zone / "customers")
    for day in date_range(START, END + dt.timedelta(days=1)):
        shutil.copytree(raw / "shipments" / f"ingest_date={day}", zone / "shipments" / f"ingest_date={day}")
    corrupt = zone / "shipments" / "ingest_date=2026-11-03" / "part-00001.jsonl.gz"
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # a truncated upload
    with pytest.raises(EOFError):
        gzip.decompress(corrupt.read_bytes())
    lake = raw.parent / "lake-corrupt"

    code = main(
        [
            "backfill",
            "--raw",
            str(zone),
            "--lake",
            str(lake),
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-05",
            "--parallelism",
            "2",
        ]
    )
    out = capsys.readouterr().out

    assert code != 0
    lines = {line.split()[0]: line for line in out.splitlines() if line[:4] == "2026"}
    broken = ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert [d for d, line in sorted(lines.items()) if line.split()[1] == FAILED] == broken
    for day in broken:
        assert str(corrupt) in lines[day] and "corrupt input file" in lines[day]
    good = [dt.date(2026, 11, 1), dt.date(2026, 11, 5)]
    ours = _rows(spark, lake, good)
    assert ours["totals"] == [r for r in sequential["totals"] if r[0] in good]
    assert ours["quarantine"] == [r for r in sequential["quarantine"] if r[0] in good]
    assert _rows(spark, lake, [dt.date.fromisoformat(d) for d in broken]) == {"totals": [], "quarantine": []}
    failed = [r for r in _ledger(spark, lake) if r.status == FAILED]
    assert sorted(str(r.run_date) for r in failed) == broken
    assert all(str(corrupt) in r.error for r in failed)


@pytest.mark.slow
def test_a_backfill_killed_part_way_resumes_where_it_stopped(
    spark: SparkSession, raw: Path, sequential: dict[str, list[tuple]], tmp_path: Path
) -> None:
    days = date_range(START, dt.date(2026, 11, 4))
    lake = raw.parent / "lake-killed"
    # Passes of two dates: the kill comes between the first pass's records and the second's.
    conf = tmp_path / "two-dates-a-pass.yaml"
    conf.write_text(f"extends: {LOCAL_CONF}\ndaily:\n  backfill_pass_mb: {_folder_mb(raw, days[:3]):.6f}\n")
    command = [
        sys.executable,
        "-m",
        "shipments",
        "backfill",
        "--conf",
        str(conf),
        "--raw",
        str(raw),
        "--lake",
        str(lake),
        "--start",
        str(days[0]),
        "--end",
        str(days[-1]),
        "--parallelism",
        "2",
    ]
    with open(tmp_path / "stderr.log", "w") as stderr:
        # Its own session (process group), so the kill takes the JVM down with the driver, as a
        # lost node would.
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        watchdog = threading.Timer(420, lambda: os.killpg(process.pid, signal.SIGKILL))
        watchdog.start()
        try:
            done = 0
            assert process.stdout is not None
            for line in process.stdout:
                done += f" {SUCCEEDED} " in line
                if done == 2:
                    break
            with contextlib.suppress(ProcessLookupError):  # it may have died on its own
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            watchdog.cancel()
    assert done == 2, (tmp_path / "stderr.log").read_text()[-2000:]
    before = {r.run_date for r in _ledger(spark, lake) if r.status == SUCCEEDED}
    assert before == set(days[:2])

    result = run_backfill(spark, load_config(conf, raw=str(raw), lake=str(lake)), BackfillRequest(days[0], days[-1]))

    assert not result.failed, result.summary()
    assert {o.run_date for o in result.outcomes if o.status == SKIPPED} == before
    succeeded = Counter(r.run_date for r in _ledger(spark, lake) if r.status == SUCCEEDED)
    assert succeeded == Counter(days)  # each date succeeded exactly once, killed or not
    ours = _rows(spark, lake, days)
    assert ours["totals"] == [r for r in sequential["totals"] if r[0] in days]
    assert ours["quarantine"] == [r for r in sequential["quarantine"] if r[0] in days]


@pytest.mark.parametrize("dates", [DAYS[2:3], DAYS], ids=["one date", "a pass"])
def test_the_latest_versions_cost_one_shuffle_of_the_rows_read(
    spark: SparkSession, raw: Path, dates: list[dt.date]
) -> None:
    """The rows are shuffled once. A pass shuffles them by shipment before they are copied to
    their run dates (each folder's latest version kept first): no second shuffle of the copies.
    One date copies nothing: its versions are combined on each side of the one shuffle, so
    re-sends cross it once per task, not once per line. Their contents are those of the plain
    route (every row copied, then grouped), as the isolated runs give them (the pass tests above)."""
    config = _config(raw, raw.parent / "lake-unused")
    files = pass_listing([PassDay(day, *daily_inputs(spark, config, day)) for day in dates]).files
    with daily_plan(spark, config, files, run_dates=dates) as plan:
        latest = plan.latest.count()
        executed = plan.latest._jdf.queryExecution().executedPlan().toString()
        # The same rows as the plain route: every valid row copied, then the latest per copy.
        plain = to_latest_versions(for_run_dates(to_valid_shipments(plan.validated), config, dates), (RUN_DATE,))
        assert plan.latest.exceptAll(plain).count() == 0 and plain.exceptAll(plan.latest).count() == 0
    # The plan between the cache of the latest versions and the cache of the validated rows
    # (a tree printed parent first).
    cached = executed.split("InMemoryRelation", 2)[1]
    assert cached.count("Exchange") == 1, cached
    if len(dates) > 1:
        # The exchange below the copy; each folder's latest version kept before the copy.
        assert cached.index("Generate explode") < cached.index("Exchange hashpartitioning(shipment_id"), cached
        assert "SortAggregate(key=[ingest_date" in cached, cached
    else:
        # A partial aggregate below the exchange, the final one above it.
        exchange = cached.index("Exchange hashpartitioning(run_date")
        assert cached.index("functions=[max(struct(") < exchange < cached.index("functions=[partial_max("), cached
    assert latest > 0


def test_a_pass_keeps_the_latest_version_across_folders_as_producers_write_them(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Versions of one shipment as a producer re-sends them: an older and a newer version in one
    file (CRLF line ends), the newer re-sent the next day in another key order with the same
    instant written in another zone, and a later version two days on. Each run date of a pass
    keeps the latest version its own folders hold, the re-send's later folder winning the tie."""
    zone = tmp_path / "raw"
    config = _config(zone, tmp_path / "lake")

    def version(updated: str, status: str) -> dict[str, str]:
        return {
            "shipment_id": "S1",
            "customer_id": "C1",
            "created_at": "2026-11-01T06:00:00Z",
            "updated_at": updated,
            "status": status,
            "weight_kg": "2.5",
            "charge_usd": "12.30",
        }

    first = dt.date(2026, 11, 1)
    folder = {d: zone / "shipments" / f"ingest_date={first + dt.timedelta(days=d)}" for d in range(3)}
    for path in folder.values():
        path.mkdir(parents=True)
    created, in_transit = version("2026-11-01T07:00:00Z", "CREATED"), version("2026-11-01T08:00:00Z", "IN_TRANSIT")
    (folder[0] / "part 0 (1).json").write_bytes(
        (json.dumps(created) + "\r\n" + json.dumps(in_transit) + "\r\n").encode()
    )
    resent = dict(reversed(list({**in_transit, "updated_at": "2026-11-01T10:00:00+02:00"}.items())))
    (folder[1] / "re-send.json").write_text(json.dumps(resent, separators=(",", ":")) + "\n")
    (folder[2] / "later.json").write_text(json.dumps(version("2026-11-03T09:00:00Z", "DELIVERED")) + "\n")

    dates = [first, first + dt.timedelta(days=1), first + dt.timedelta(days=2)]
    window = sorted({folder for day in dates for folder in ingest_dates(day, config)})
    files = raw_files.list_raw_files(spark, str(zone), window, raw_layout(config), required=None).files
    with daily_plan(spark, config, files, run_dates=dates) as plan:
        kept = sorted((r.run_date, r.status, r.ingest_date) for r in plan.latest.collect())
    assert kept == [
        (dates[0], "IN_TRANSIT", dates[1]),  # 10-31..11-02: the re-send's folder wins the tie
        (dates[1], "DELIVERED", dates[2]),
        (dates[2], "DELIVERED", dates[2]),
    ]


def test_changed_input_reruns_only_the_dates_that_read_it(
    spark: SparkSession, raw: Path, parallel_lake: Path, sequential: dict[str, list[tuple]]
) -> None:
    # Runs last in this module: it edits the shared raw zone. A new shipment for 11-03 lands on
    # 11-03; that folder is the input of 11-03, the lookback of 11-02 and the lookbehind of 11-04,
    # and of no other date.
    day = dt.date(2026, 11, 3)
    landed = raw / "shipments" / f"ingest_date={day}" / "part-00000.jsonl"
    with landed.open("a") as handle:
        handle.write(
            '{"shipment_id":"S-LATE-FIX-1","customer_id":"C0001","created_at":"2026-11-03T10:00:00Z",'
            '"updated_at":"2026-11-03T10:00:00Z","status":"CREATED","weight_kg":2.5,"charge_usd":19.99}\n'
        )
    config = _config(raw, parallel_lake)
    plans = plan_backfill(spark, config, START, END)
    readers = [dt.date(2026, 11, 2), day, dt.date(2026, 11, 4)]
    assert [p.run_date for p in plans if p.action == "RUN"] == readers
    assert all("input changed" in p.reason for p in plans if p.action == "RUN")

    result = run_backfill(spark, config, BackfillRequest(START, END, parallelism=4))

    assert {o.run_date for o in result.outcomes if o.status == SUCCEEDED} == set(readers)
    assert result.count(SKIPPED) == len(DAYS) - len(readers)
    after = _rows(spark, parallel_lake, DAYS)
    untouched = [d for d in DAYS if d != day]
    assert [r for r in after["totals"] if r[0] in untouched] == [r for r in sequential["totals"] if r[0] in untouched]
    customer = {r[1]: r for r in after["totals"] if r[0] == day}["C0001"]
    reference = {r[1]: r for r in sequential["totals"] if r[0] == day}.get("C0001")
    assert customer[5] == (reference[5] if reference else 0) + 1
