"""Data-quality checks, alerts and metrics per micro-batch of the status stream: the sink called
as a plain batch function with a reporter, on tiny DataFrames."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.config import Config
from shipments.model.tables import ALERT_STATE, DQ_RESULTS, PIPELINE_METRICS, STREAM_TABLES
from shipments.observe.metrics import RunMetrics, write_metrics
from shipments.ops_config import CheckSpec, QualityConfig
from shipments.storage.delta import ensure_tables
from shipments.stream import report
from shipments.stream.quality import judge_batch
from shipments.stream.report import BatchReporter
from shipments.stream.sink import StatusBatchSink, StatusTables
from shipments.stream.stats import BatchStats
from shipments.stream.watermarks import WatermarkLog
from tests.helpers.lake import data_commits
from tests.stream_fixtures import event_row as ev
from tests.stream_fixtures import nov20 as t
from tests.stream_fixtures import record_batch as batch
from tests.stream_fixtures import rejected_row as bad
from tests.stream_fixtures import wait_for

HOUR = 3600
STREAM_ID = "test-stream"
DLQ = CheckSpec("dlq_share", "dlq_share", max=0.2, min_rows=20, severity="warn", alert="page")
LATE = CheckSpec("late_share", "late_share", max=0.5, min_rows=20, severity="warn", alert="ticket")


# --------------------------------------------------------------------------- judging (pure)


@pytest.mark.parametrize(
    ("spec", "records", "dlq", "late", "passed", "observed", "detail_part"),
    [
        (DLQ, 30, 10, 0, False, 10 / 30, "10 of 30 records"),
        (DLQ, 25, 5, 0, True, 0.2, "5 of 25 records"),  # exactly at max: passes
        (DLQ, 19, 19, 0, True, 1.0, "not judged below 20 records"),  # too small a batch
        (LATE, 40, 10, 15, True, 0.5, "15 of 30 valid events"),  # late share of the valid events
        (LATE, 40, 10, 16, False, 16 / 30, "16 of 30 valid events"),
        (LATE, 40, 21, 19, True, 1.0, "not judged below 20 valid events"),
    ],
)
def test_a_check_judges_its_share_of_the_batch(
    spec: CheckSpec, records: int, dlq: int, late: int, passed: bool, observed: float, detail_part: str
) -> None:
    stats = BatchStats(7, records=records, dlq=dlq, late=late, on_time=records - dlq - late)
    [result] = judge_batch([spec], stats)
    assert (result.passed, result.observed, result.threshold) == (passed, observed, spec.max)
    assert detail_part in result.detail
    # a judged result names its cause by the check kind only: every bad batch is one alert
    assert result.cause == ("" if "not judged" in detail_part else spec.check)


def test_dead_letter_reasons_are_the_samples_of_a_dlq_failure() -> None:
    stats = BatchStats(0, records=20, dlq=10, on_time=10, dlq_samples=("reason:malformed_json",))
    [result] = judge_batch([DLQ], stats)
    assert result.sample_keys == ("reason:malformed_json",)
    assert "reason:malformed_json" in result.detail


# --------------------------------------------------------------------------- the sink with a reporter


@pytest.fixture
def checked(config: Config) -> Config:
    return dataclasses.replace(config, quality=QualityConfig(stream=(DLQ, LATE)))


def new_sink(spark: SparkSession, config: Config, checkpoint: Path) -> StatusBatchSink:
    """A sink as a (re)started process builds it: a fresh reporter over the same tables."""
    return StatusBatchSink(
        StatusTables.of(config),
        WatermarkLog(spark, str(checkpoint), HOUR),
        reporter=BatchReporter(config, stream_id=STREAM_ID),
    )


@pytest.fixture
def sink(spark: SparkSession, checked: Config, tmp_path: Path) -> Iterator[StatusBatchSink]:
    ensure_tables(spark, checked, STREAM_TABLES)
    sink = new_sink(spark, checked, tmp_path / "checkpoint")
    yield sink
    published(sink).close()


def published(sink: StatusBatchSink) -> BatchReporter:
    """The sink's reporter, once the metrics of every batch it reported are published."""
    assert sink.reporter is not None
    sink.reporter.flush()
    return sink.reporter


def events(prefix: str, count: int, first_offset: int, when: dt.datetime) -> list[tuple[Any, ...]]:
    return [ev(f"{prefix}{i}", f"S{i}", "IN_TRANSIT", when, first_offset + i) for i in range(count)]


def malformed(count: int, first_offset: int) -> list[tuple[Any, ...]]:
    return [bad("{nope", "malformed_json", first_offset + i) for i in range(count)]


def dq_rows(spark: SparkSession, config: Config) -> list[tuple[Any, ...]]:
    rows = spark.read.format("delta").load(DQ_RESULTS.path(config))
    columns = ("batch_id", "run_id", "job", "check_name", "passed", "observed", "threshold")
    return sorted(tuple(r[c] for c in columns) for r in rows.collect())


def alert_rows(spark: SparkSession, config: Config) -> list[dict[str, Any]]:
    rows = spark.read.format("delta").load(ALERT_STATE.path(config))
    return [r.asDict() for r in rows.collect()]


def commits(config: Config, spec: Any) -> list[str]:
    return data_commits(spec.path(config))


def test_a_burst_of_dead_letters_raises_one_alert_that_a_clean_batch_resolves(
    spark: SparkSession, checked: Config, sink: StatusBatchSink
) -> None:
    # 10 of 30 records malformed: a share of 1/3 against at most 0.2
    sink(batch(spark, *events("a", 20, 0, t(12)), *malformed(10, 100)), 0)

    assert dq_rows(spark, checked) == [
        (0, "test-stream:0", "stream", "dlq_share", False, 10 / 30, 0.2),
        # the first batch of the process also records the checks that pass (to resolve what an
        # earlier run left open)
        (0, "test-stream:0", "stream", "late_share", True, 0.0, 0.5),
    ]
    [alert] = alert_rows(spark, checked)
    assert (alert["state"], alert["level"], alert["check_name"], alert["cause"], alert["job"]) == (
        "open",
        "page",
        "dlq_share",
        "dlq_share",
        "stream",
    )
    assert (alert["occurrences"], alert["sample_keys"], alert["last_run_id"]) == (
        1,
        ["reason:malformed_json"],
        "test-stream:0",
    )
    assert sink.stats[0].checks_failed == ("shipment_status.dlq_share",)

    # a second bad batch: the same alert, seen twice; late_share settled, so only dlq_share
    sink(batch(spark, *events("b", 20, 200, t(12)), *malformed(20, 300)), 1)
    [alert] = alert_rows(spark, checked)
    assert (alert["state"], alert["occurrences"], alert["last_run_id"]) == ("open", 2, "test-stream:1")
    assert [r for r in dq_rows(spark, checked) if r[0] == 1] == [
        (1, "test-stream:1", "stream", "dlq_share", False, 0.5, 0.2)
    ]

    # a clean batch resolves it
    sink(batch(spark, *events("c", 20, 400, t(12))), 2)
    [alert] = alert_rows(spark, checked)
    assert (alert["state"], alert["occurrences"], alert["resolved_at"] is not None) == ("resolved", 2, True)
    assert [r for r in dq_rows(spark, checked) if r[0] == 2] == [
        (2, "test-stream:2", "stream", "dlq_share", True, 0.0, 0.2)
    ]
    assert sink.stats[2].checks_failed == ()


def test_a_replayed_batch_reports_nothing_twice(
    spark: SparkSession, checked: Config, sink: StatusBatchSink, tmp_path: Path
) -> None:
    bad_batch = batch(spark, *events("a", 20, 0, t(12)), *malformed(10, 100))
    sink(bad_batch, 0)
    published(sink)
    tables = (DQ_RESULTS, ALERT_STATE, PIPELINE_METRICS)
    before = {spec.name: commits(checked, spec) for spec in tables}

    sink(bad_batch, 0)  # the same process calls it again
    published(sink)
    # and a restarted process replays it (a fresh reporter: its first batch)
    restarted = new_sink(spark, checked, tmp_path / "checkpoint")
    restarted(bad_batch, 0)
    published(restarted).close()

    assert {spec.name: commits(checked, spec) for spec in tables} == before
    [alert] = alert_rows(spark, checked)
    assert alert["occurrences"] == 1
    metrics = spark.read.format("delta").load(PIPELINE_METRICS.path(checked))
    assert metrics.filter(F.col("metric") == "rows_read").count() == 1


def test_each_batch_publishes_its_metrics(spark: SparkSession, checked: Config, sink: StatusBatchSink) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ages = (40, 30, 20, 10, 10, 10, 5, 5)  # seconds before the batch: the oldest is 40 s old
    rows = [ev(f"e{i}", f"S{i}", "CREATED", start - dt.timedelta(seconds=age), i) for i, age in enumerate(ages)]
    sink(batch(spark, *rows, *malformed(2, 50)), 0)
    published(sink)
    elapsed = (dt.datetime.now(dt.UTC) - start).total_seconds()

    table = spark.read.format("delta").load(PIPELINE_METRICS.path(checked))
    assert {(r.run_id, r.job, r.table_name, r.batch_id) for r in table.collect()} == {
        ("test-stream:0", "stream", "shipment_status", 0)
    }
    values = {r.metric: r.value for r in table.collect()}
    assert set(values) == {
        "succeeded",
        "duration_seconds",
        "rows_read",
        "throughput_rows_per_second",
        "error_rate",
        "rows_written",
        "checks_failed",
        "latency_seconds",
        "latency_p50_seconds",
        "latency_max_seconds",
        "freshness_seconds",
    }
    assert (values["succeeded"], values["rows_read"], values["error_rate"], values["rows_written"]) == (1, 10, 0.2, 8)
    assert values["checks_failed"] == 0  # 10 records: below min_rows, not judged
    assert 0 <= values["latency_p50_seconds"] <= values["latency_seconds"] <= values["latency_max_seconds"]
    # the oldest event was 40 s old when the batch started, and visible before the test went on
    assert 40 <= values["latency_max_seconds"] <= 40 + elapsed
    assert 5 <= values["freshness_seconds"] <= 5 + elapsed
    assert 0 < values["duration_seconds"] <= elapsed
    assert values["throughput_rows_per_second"] == pytest.approx(10 / values["duration_seconds"])
    # the progress line shows what was published
    assert sink.stats[0].metrics == {name: value for name, value in values.items() if name != "succeeded"}


@pytest.fixture
def reporting(spark: SparkSession, checked: Config, tmp_path: Path) -> Iterator[Callable[[str], StatusBatchSink]]:
    """Builds a sink whose reporter appends metrics once per the interval given (each closed
    after the test)."""
    sinks: list[StatusBatchSink] = []

    def build(interval: str) -> StatusBatchSink:
        config = dataclasses.replace(checked, stream=dataclasses.replace(checked.stream, metrics_interval=interval))
        ensure_tables(spark, config, (*STREAM_TABLES, PIPELINE_METRICS))
        sinks.append(new_sink(spark, config, tmp_path / f"checkpoint-{len(sinks)}"))
        return sinks[-1]

    yield build
    for sink in sinks:
        published(sink).close()


@pytest.fixture
def gathering(reporting: Callable[[str], StatusBatchSink]) -> StatusBatchSink:
    """A sink whose reporter appends metrics once per 10 minutes."""
    return reporting("10 minutes")


@contextlib.contextmanager
def metrics_table_broken(config: Config) -> Iterator[None]:
    """``pipeline_metrics`` cannot be appended to inside (its path is a file), as before after."""
    table = Path(PIPELINE_METRICS.path(config))
    away = table.with_name("pipeline_metrics.away")
    table.rename(away)
    table.write_text("not a table")
    try:
        yield
    finally:
        table.unlink()
        away.rename(table)


def metric_batches(spark: SparkSession, config: Config) -> list[int]:
    """The batch ids of ``pipeline_metrics``, one per batch published."""
    table = spark.read.format("delta").load(PIPELINE_METRICS.path(config))
    return sorted(r.batch_id for r in table.filter(F.col("metric") == "rows_read").collect())


def test_batches_within_the_metrics_interval_share_one_commit_and_flush_or_close_publish_them(
    spark: SparkSession, checked: Config, gathering: StatusBatchSink
) -> None:
    before = commits(checked, PIPELINE_METRICS)
    # The first batch's metrics go out at once: nothing was published before.
    gathering(batch(spark, *events("a", 20, 0, t(12))), 0)
    wait_for(lambda: metric_batches(spark, checked) == [0], 120, "the first batch's metrics")
    assert len(commits(checked, PIPELINE_METRICS)) == len(before) + 1

    # The next ones wait for the interval; a flush publishes them in one commit, and a batch
    # reported twice before its first report was written once.
    gathering(batch(spark, *events("b", 20, 100, t(12))), 1)
    gathering(batch(spark, *events("c", 20, 200, t(12))), 2)
    gathering(batch(spark, *events("c", 20, 200, t(12))), 2)
    flushed = time.monotonic()
    published(gathering)
    assert time.monotonic() - flushed < 300, "flush waited for the interval"
    assert len(commits(checked, PIPELINE_METRICS)) == len(before) + 2
    assert metric_batches(spark, checked) == [0, 1, 2]

    # close() publishes what is still waiting, as a stopping stream does.
    gathering(batch(spark, *events("d", 20, 300, t(12))), 3)
    assert gathering.reporter is not None
    gathering.reporter.close()
    assert len(commits(checked, PIPELINE_METRICS)) == len(before) + 3
    assert metric_batches(spark, checked) == [0, 1, 2, 3]


@pytest.mark.parametrize("committed_anyway", [False, True], ids=["failed", "failed-after-its-commit"])
def test_a_failed_metrics_append_is_tried_again_with_the_next_and_written_once(
    spark: SparkSession,
    checked: Config,
    gathering: StatusBatchSink,
    caplog: pytest.LogCaptureFixture,
    committed_anyway: bool,
) -> None:
    gathering(batch(spark, *events("a", 20, 0, t(12))), 0)
    published(gathering)
    with metrics_table_broken(checked):
        gathering(batch(spark, *events("b", 20, 100, t(12))), 1)
        published(gathering)
    assert "metrics of micro-batch(es) 1 not appended yet" in caplog.text
    assert metric_batches(spark, checked) == [0]
    if committed_anyway:  # as an append whose commit landed before its error reached us
        written = RunMetrics("test-stream:1", "stream", "shipment_status", None, 1, True, t(12), {"rows_read": 999.0})
        write_metrics(spark, checked, written)
    before = commits(checked, PIPELINE_METRICS)

    gathering(batch(spark, *events("c", 20, 200, t(12))), 2)
    published(gathering)
    assert metric_batches(spark, checked) == [0, 1, 2]
    assert len(commits(checked, PIPELINE_METRICS)) == len(before) + 1
    rows_read = spark.read.format("delta").load(PIPELINE_METRICS.path(checked)).filter(F.col("metric") == "rows_read")
    batch_1 = [r.value for r in rows_read.filter(F.col("batch_id") == 1).collect()]
    assert batch_1 == [999.0 if committed_anyway else 20.0]


def test_a_failed_metrics_append_is_tried_again_on_the_timer_without_a_new_batch(
    spark: SparkSession, checked: Config, reporting: Callable[[str], StatusBatchSink]
) -> None:
    sink = reporting("1 second")
    sink(batch(spark, *events("a", 20, 0, t(12))), 0)
    published(sink)
    with metrics_table_broken(checked):
        sink(batch(spark, *events("b", 20, 100, t(12))), 1)
        published(sink)  # the append fails
    # no batch and no flush after it: the waiting batch goes out on its own
    wait_for(lambda: metric_batches(spark, checked) == [0, 1], 120, "the waiting batch's metrics")


def test_a_clean_batch_with_nothing_to_resolve_commits_no_check_or_alert(
    spark: SparkSession, checked: Config, sink: StatusBatchSink
) -> None:
    sink(batch(spark, *events("a", 20, 0, t(12))), 0)  # the first batch: settles both checks
    published(sink)
    dq_before, alerts_before = commits(checked, DQ_RESULTS), commits(checked, ALERT_STATE)
    metrics_before = commits(checked, PIPELINE_METRICS)

    sink(batch(spark, *events("b", 25, 100, t(12)), *malformed(1, 200)), 1)
    published(sink)

    assert commits(checked, DQ_RESULTS) == dq_before
    assert commits(checked, ALERT_STATE) == alerts_before
    assert [r for r in dq_rows(spark, checked) if r[0] == 1] == []
    assert len(commits(checked, PIPELINE_METRICS)) == len(metrics_before) + 1  # only its metrics


# --------------------------------------------------------------------------- the publisher's retry logic alone
# (a stand-in for pipeline_metrics that fails on demand: the cases a real table cannot be made to
# show on cue, e.g. a lookup that fails while appends work, or an append whose commit landed
# before its error)


class MetricsTable:
    """What the publisher wrote and exported, in order; failures on demand."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.exported: list[str] = []
        self.lookup_fails = self.append_fails = self.fails_after_commit = False

    def recorded(self, spark: object, config: object, spec: object, column: str, values: list[str]) -> set[str]:
        if self.lookup_fails:
            raise OSError("lookup failed")
        return {value for value in values if value in self.rows}

    def write(self, spark: object, config: object, *runs: RunMetrics) -> None:
        if self.append_fails:
            raise OSError("append failed")
        self.rows += [run.run_id for run in runs]
        if self.fails_after_commit:
            raise OSError("the commit landed, its reply was lost")

    def export(self, config: object, *runs: RunMetrics) -> None:
        self.exported += [run.run_id for run in runs]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, config: Config) -> tuple[MetricsTable, Any]:
    table = MetricsTable()
    monkeypatch.setattr(report, "_recorded_ids", table.recorded)
    monkeypatch.setattr(report, "write_metrics", table.write)
    monkeypatch.setattr(report, "export_metrics", table.export)
    publisher = report._MetricsPublisher(config)
    publisher._spark = object()  # never used by the stand-in
    return table, publisher


def reported(batch_id: int) -> RunMetrics:
    return RunMetrics(f"q:{batch_id}", "stream", "shipment_status", None, batch_id, True, t(12), {"rows_read": 1.0})


def test_batches_keep_their_order_when_the_table_cannot_be_searched(stand_in: tuple[MetricsTable, Any]) -> None:
    table, publisher = stand_in
    table.append_fails = True
    publisher._publish([(reported(1), False)])  # 1 waits, to be looked for
    table.append_fails, table.lookup_fails = False, True
    publisher._publish([(reported(2), False), (reported(3), False)])  # 1 cannot be looked for: all wait
    assert table.rows == []
    table.lookup_fails = False
    publisher._publish([(reported(4), False)])
    assert table.rows == table.exported == ["q:1", "q:2", "q:3", "q:4"]


def test_a_batch_whose_failed_append_had_committed_is_exported_once_and_not_written_again(
    stand_in: tuple[MetricsTable, Any],
) -> None:
    table, publisher = stand_in
    table.fails_after_commit = True
    publisher._publish([(reported(1), False)])
    assert (table.rows, table.exported) == (["q:1"], [])
    table.fails_after_commit = False
    publisher._publish([(reported(2), False)])
    assert table.rows == table.exported == ["q:1", "q:2"]


def test_a_replay_an_earlier_process_published_is_neither_written_nor_exported_again(
    stand_in: tuple[MetricsTable, Any],
) -> None:
    table, publisher = stand_in
    table.rows = ["q:1"]  # written and exported by the process before the restart
    table.lookup_fails = True
    publisher._publish([(reported(1), True), (reported(2), False)])  # both wait
    table.lookup_fails = False
    publisher._publish([])
    assert (table.rows, table.exported) == (["q:1", "q:2"], ["q:2"])
