"""Appends to the tables every run writes (the ledger, check results, metrics): about one append
in 50 compacts its table, decided by a hash of the table and the rows' run id, and a compaction
that fails never fails the append it follows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.batch.ledger import RunRecord, record_run
from shipments.config import Config, load_config
from shipments.model.tables import DQ_RESULTS, DQ_RESULTS_SCHEMA, PIPELINE_METRICS, PIPELINE_RUNS, TableSpec
from shipments.observe.metrics import RunMetrics, write_metrics
from shipments.ops_config import CheckSpec
from shipments.quality.results import CheckResult, write_results
from shipments.storage import delta
from tests.helpers.lake import ROOT, commit_infos

# Every environment file of conf/ (each extends base.yaml).
ENVS = tuple(sorted(p.stem for p in (ROOT / "conf").glob("*.yaml") if p.stem != "base"))
TABLES = ("/lake/pipeline_runs", "/lake/dq_results", "/lake/pipeline_metrics")


def run_ids(count: int) -> list[str]:
    """Run ids shaped as the daily job's (``daily-<date>-<stamp>-<8 hex>``), the same every time."""
    return [
        f"daily-2026-11-{1 + n % 28:02d}-20261202T{n % 24:02d}0000Z-{hashlib.sha256(str(n).encode()).hexdigest()[:8]}"
        for n in range(count)
    ]


def test_about_one_append_in_fifty_compacts_and_a_run_does_not_compact_every_table_at_once() -> None:
    ids = run_ids(10_000)
    due = {table: {key for key in ids if delta.compaction_due(table, key)} for table in TABLES}
    assert all(150 <= len(keys) <= 250 for keys in due.values()), {t: len(k) for t, k in due.items()}
    runs, results, metrics = due.values()
    assert len(runs & results & metrics) <= 2  # 10,000 / 50^3 expected: 0.08
    # Stream run ids (<query id>:<batch id>) spread alike.
    batches = [f"0c4a6d9e-5f1b-4a8e-9d2c-7b3e1f0a6c58:{n}" for n in range(10_000)]
    assert all(150 <= sum(delta.compaction_due(table, key) for key in batches) <= 250 for table in TABLES)


def test_an_append_decides_alike_in_every_process() -> None:
    # A retried or replayed append compacts, or not, as the first did: no per-process hash seed.
    keys = run_ids(2_000)
    script = (
        "import json, sys\n"
        "from shipments.storage.delta import compaction_due\n"
        "keys = json.load(sys.stdin)\n"
        f"print(json.dumps([compaction_due(t, k) for t in {list(TABLES)!r} for k in keys]))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert json.loads(other.stdout) == [delta.compaction_due(t, k) for t in TABLES for k in keys]


def test_the_tables_every_run_appends_to_are_created_without_delta_auto_compaction() -> None:
    # Delta's auto compaction rewrote them at every run's first append (its counts live in the session).
    assert all(not spec.properties for spec in (PIPELINE_RUNS, DQ_RESULTS, PIPELINE_METRICS))


BOUNDS = {
    "spark.databricks.delta.optimize.minFileSize": str(64 * 1024 * 1024),
    "spark.databricks.delta.optimize.maxFileSize": str(128 * 1024 * 1024),
}


def test_every_environment_bounds_the_compaction_to_small_files(spark: SparkSession) -> None:
    # Files under 64 MB into files of up to 128 MB, as Delta's auto compaction did: OPTIMIZE's
    # own 1 GB would rewrite the whole table each time. Set in conf/base.yaml for every platform.
    for env in ENVS:
        settings = load_config(ROOT / "conf" / f"{env}.yaml").spark.settings
        assert {name: settings.get(name) for name in BOUNDS} == BOUNDS, env
    assert {name: spark.conf.get(name) for name in BOUNDS} == BOUNDS


def test_the_ledger_results_and_metrics_decide_by_their_run_id(
    spark: SparkSession, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    def due(path: str, key: str) -> bool:
        asked.append((Path(path).name, key))
        return False

    monkeypatch.setattr(delta, "compaction_due", due)
    day, now = dt.date(2026, 11, 2), dt.datetime(2026, 11, 3, 6, 0, tzinfo=dt.UTC)
    record_run(spark, config, RunRecord("daily-2026-11-02-a", "daily", day))
    check = CheckSpec(name="volume", check="volume", severity="warn")
    write_results(spark, config, [CheckResult(check, True, 1.0, 0.0)], job="daily", run_id="daily-b", checked_at=now)
    write_metrics(
        spark, config, RunMetrics("stream:7", "stream", "shipment_status", None, 7, True, now, {"rows_read": 10})
    )
    assert asked == [
        ("pipeline_runs", "daily-2026-11-02-a"),
        ("dq_results", "daily-b"),
        ("pipeline_metrics", "stream:7"),
    ]


def test_an_append_that_is_due_compacts_the_table_and_keeps_every_row(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "appended")
    keys = [f"run-{n}" for n in range(1_000)]
    quiet = [key for key in keys if not delta.compaction_due(path, key)][:3]
    due = next(key for key in keys if delta.compaction_due(path, key))

    def append(number: int, key: str) -> None:
        delta.append_rows(spark.createDataFrame([(number, key)], "n int, run_id string"), path, key=key)

    for number, key in enumerate(quiet):
        append(number, key)
    assert [c["operation"] for c in commit_infos(path)] == ["WRITE"] * 3
    assert len(spark.read.format("delta").load(path).inputFiles()) == 3

    append(3, due)

    assert [c["operation"] for c in commit_infos(path)] == ["WRITE"] * 4 + ["OPTIMIZE"]
    table = spark.read.format("delta").load(path)
    assert len(table.inputFiles()) == 1
    assert sorted(tuple(r) for r in table.collect()) == [(n, key) for n, key in enumerate([*quiet, due])]


def test_a_compaction_that_fails_is_logged_and_raises_nothing(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-table-here")
    with caplog.at_level(logging.WARNING, logger="shipments.storage.delta"):
        delta.compact(spark, missing)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"compaction of {missing} failed, a later append compacts it"
    ]


def test_a_lake_of_the_earlier_release_keeps_its_rows_and_compacts_as_due(spark: SparkSession, config: Config) -> None:
    # dq_results as the release before created it: Delta's auto compaction on. The property stays
    # (unsetting it is the operator's, README "Tables"); our compaction runs beside it.
    older = TableSpec(DQ_RESULTS.name, DQ_RESULTS_SCHEMA, properties={"delta.autoOptimize.autoCompact": "true"})
    delta.ensure_table(spark, config, older)
    path = DQ_RESULTS.path(config)
    ids = [f"daily-2026-11-{day:02d}-20261130T060000Z-{n:08x}" for day in range(1, 29) for n in range(40)]
    quiet = [run_id for run_id in ids if not delta.compaction_due(path, run_id)][:3]
    due = next(run_id for run_id in ids if delta.compaction_due(path, run_id))
    check = CheckSpec(name="volume", check="volume", severity="warn")
    now = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    for run_id in [*quiet, due]:
        write_results(spark, config, [CheckResult(check, True, 1.0, 0.0)], job="daily", run_id=run_id, checked_at=now)

    assert [c["operation"] for c in commit_infos(path)] == ["CREATE TABLE"] + ["WRITE"] * 4 + ["OPTIMIZE"]
    table = spark.read.format("delta").load(path)
    assert len(table.inputFiles()) == 1
    assert sorted(r.run_id for r in table.collect()) == sorted([*quiet, due])


VERIFY_OFF_UTC = "spark.databricks.delta.allFilesInCrc.verificationMode.forceOnNonUTC.enabled"


def _jobs_of(spark: SparkSession, group: str, write: Callable[[], None]) -> int:
    """The Spark jobs ``write`` runs (in this thread, as Delta's commit does)."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        write()
    finally:
        context._jsc.clearJobGroup()  # the group and its description, on this thread
    return len(context.statusTracker().getJobIdsForGroup(group))


def test_a_commit_in_a_zone_other_than_utc_does_not_rebuild_the_table_state(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's JVM runs in America/Los_Angeles (conftest), where Delta 3.3 rebuilds a table's
    # whole state after every commit to check its .crc, unless told not to (conf/base.yaml).
    jvm = spark.sparkContext._jvm
    assert jvm is not None and "utc" not in jvm.java.util.TimeZone.getDefault().getID().lower()
    assert all(load_config(ROOT / "conf" / f"{env}.yaml").spark.settings[VERIFY_OFF_UTC] == "false" for env in ENVS)
    monkeypatch.setattr(delta, "compaction_due", lambda path, key: False)  # the append alone
    path = str(tmp_path / "table")
    rows = spark.range(3)

    def append() -> None:
        delta.append_rows(rows, path, key="run")

    append()
    configured = _jobs_of(spark, "append-as-configured", append)
    setting = spark.conf.get(VERIFY_OFF_UTC)
    spark.conf.set(VERIFY_OFF_UTC, "true")
    try:
        forced = _jobs_of(spark, "append-with-the-check", append)
    finally:
        spark.conf.set(VERIFY_OFF_UTC, setting)
    assert (configured, forced) == (1, 3)  # the write; the check adds two (the state rebuilt from the log)
    assert spark.read.format("delta").load(path).count() == 9
