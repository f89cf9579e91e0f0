"""Appends to the tables every run writes (the ledger, check results, metrics): about one append
in 50 compacts its table, decided by a hash of the table and the rows' run id, and a compaction
that fails never fails the append it follows."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.storage import delta
from tests.helpers.lake import commit_infos

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
    # The same append decides alike every time (a retried write compacts or not as the first did).
    assert all(delta.compaction_due(table, key) for table, keys in due.items() for key in keys)


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
