"""Run metrics: the exact ``pipeline_metrics`` rows, the gauges a real Pushgateway exposes
(labels job/table/environment only; last success kept across a failed run), an EMF line, and
PutMetricData against moto's CloudWatch; an unreachable target only warns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.config import Config
from shipments.devtools.kafka_broker import free_port
from shipments.model.tables import PIPELINE_METRICS
from shipments.observe.metrics import METRICS, RunMetrics, publish_metrics
from shipments.ops_config import MetricsConfig
from shipments.storage import delta
from tests.cloud_fixtures import REGION, Moto, aws_env_fixture, moto_fixture  # noqa: F401
from tests.helpers.lake import data_commits
from tests.metrics_fixtures import Pushgateway, pushgateway  # noqa: F401

UTC = dt.UTC
RECORDED = dt.datetime(2026, 11, 27, 6, 45, 30, tzinfo=UTC)
DAILY_VALUES = {
    "duration_seconds": 84.5,
    "latency_seconds": 4230.0,
    "throughput_rows_per_second": 1200.25,
    "rows_read": 101421.0,
    "rows_written": 812.0,
    "error_rate": 0.0125,
    "freshness_seconds": 24330.0,
    "table_version": 17.0,
    "checks_failed": 0.0,
}


def daily_run(
    run_id: str = "daily-20261126-a1",
    *,
    succeeded: bool = True,
    recorded_at: dt.datetime = RECORDED,
    values: dict[str, float] | None = None,
) -> RunMetrics:
    return RunMetrics(
        run_id=run_id,
        job="daily",
        table="shipment_daily_totals",
        run_date=dt.date(2026, 11, 26),
        batch_id=None,
        succeeded=succeeded,
        recorded_at=recorded_at,
        values=DAILY_VALUES if values is None else values,
    )


def with_metrics(config: Config, **settings: Any) -> Config:
    return dataclasses.replace(config, metrics=MetricsConfig(**settings))


def table_rows(spark: SparkSession, config: Config) -> list[tuple[Any, ...]]:
    frame = delta.read_table(spark, config, PIPELINE_METRICS)
    assert frame is not None
    # recorded_at as text in the session's zone (UTC): the tests' process runs in another zone.
    return sorted(
        tuple(row)
        for row in frame.select(
            "run_id",
            "job",
            "table_name",
            "environment",
            F.col("run_date").cast("string"),
            "batch_id",
            "metric",
            "value",
            "unit",
            F.col("recorded_at").cast("string"),
        ).collect()
    )


# --------------------------------------------------------------------------- pipeline_metrics


def test_each_publish_appends_one_row_per_metric_in_one_commit(
    spark: SparkSession, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_metrics(config, environment="test")
    publish_metrics(spark, config, daily_run(values={"duration_seconds": 84.5, "rows_written": 812}))
    assert data_commits(PIPELINE_METRICS.path(config)) == ["CREATE TABLE", "WRITE"]  # created, then one append
    batch = RunMetrics(
        run_id="stream-q1",
        job="stream",
        table="shipment_status",
        run_date=None,
        batch_id=42,
        succeeded=False,
        recorded_at=dt.datetime(2026, 11, 27, 8, 0, 1, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        values={"latency_seconds": 2.5, "error_rate": 0.5},
    )
    publish_metrics(spark, config, batch)
    assert data_commits(PIPELINE_METRICS.path(config)) == ["CREATE TABLE", "WRITE", "WRITE"]

    daily = ("daily-20261126-a1", "daily", "shipment_daily_totals", "test", "2026-11-26", None)
    stream = ("stream-q1", "stream", "shipment_status", "test", None, 42)
    assert table_rows(spark, config) == [
        (*daily, "duration_seconds", 84.5, "Seconds", "2026-11-27 06:45:30"),
        (*daily, "rows_written", 812.0, "Count", "2026-11-27 06:45:30"),
        (*daily, "succeeded", 1.0, "None", "2026-11-27 06:45:30"),
        (*stream, "error_rate", 0.5, "None", "2026-11-27 07:00:01.25"),
        (*stream, "latency_seconds", 2.5, "Seconds", "2026-11-27 07:00:01.25"),
        (*stream, "succeeded", 0.0, "None", "2026-11-27 07:00:01.25"),
    ]
    # cloudwatch off, no Pushgateway: nothing else happens
    assert capsys.readouterr().out == ""


def test_metrics_declares_the_agreed_names_and_units() -> None:
    assert METRICS == {
        "duration_seconds": "Seconds",
        "latency_seconds": "Seconds",
        "latency_p50_seconds": "Seconds",
        "latency_max_seconds": "Seconds",
        "throughput_rows_per_second": "Count/Second",
        "rows_read": "Count",
        "rows_written": "Count",
        "error_rate": "None",
        "freshness_seconds": "Seconds",
        "table_version": "None",
        "checks_failed": "Count",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"values": {"duration_secs": 1.0}}, "unknown metric.*'duration_secs'"),
        ({"values": {"succeeded": 1.0}}, "unknown metric.*'succeeded'"),
        ({"values": {"rows_read": math.nan}}, "'rows_read' must be a finite number"),
        ({"values": {"rows_read": math.inf}}, "'rows_read' must be a finite number"),
        ({"values": {"checks_failed": True}}, "'checks_failed' must be a finite number"),
        ({"recorded_at": dt.datetime(2026, 11, 27, 6, 45)}, "recorded_at must be an aware datetime"),
        ({"job": "daily run"}, "job must be"),
        ({"run_id": ""}, "run_id must be"),
    ],
)
def test_a_bad_run_metrics_is_a_value_error(change: dict[str, Any], message: str) -> None:
    fields = {**dataclasses.asdict(daily_run()), **change}
    with pytest.raises(ValueError, match=message):
        RunMetrics(**fields)


def test_values_are_copied_when_built() -> None:
    values = {"rows_read": 10.0}
    metrics = daily_run(values=values)
    values["rows_read"] = 99.0
    values["bogus"] = 1.0
    assert dict(metrics.values) == {"rows_read": 10.0}


# --------------------------------------------------------------------------- Pushgateway

DAILY_LABELS = {"job": "daily", "table": "shipment_daily_totals", "instance": ""}


def test_pushgateway_exposes_one_gauge_per_metric_grouped_by_job_table_environment(
    spark: SparkSession,
    config: Config,
    pushgateway: Pushgateway,  # noqa: F811
) -> None:
    config = with_metrics(config, environment="pg-grouping", pushgateway=pushgateway.url)
    publish_metrics(spark, config, daily_run())

    # The gateway adds instance="" (an empty label is no label to Prometheus); run id and date
    # are never labels.
    labels = {**DAILY_LABELS, "environment": "pg-grouping"}
    assert pushgateway.group("pg-grouping") == {
        "shipments_duration_seconds": [(labels, 84.5)],
        "shipments_latency_seconds": [(labels, 4230.0)],
        "shipments_throughput_rows_per_second": [(labels, 1200.25)],
        "shipments_rows_read": [(labels, 101421.0)],
        "shipments_rows_written": [(labels, 812.0)],
        "shipments_error_rate": [(labels, 0.0125)],
        "shipments_freshness_seconds": [(labels, 24330.0)],
        "shipments_table_version": [(labels, 17.0)],
        "shipments_checks_failed": [(labels, 0.0)],
        "shipments_succeeded": [(labels, 1.0)],
        "shipments_last_success_timestamp_seconds": [(labels, RECORDED.timestamp())],
    }
    assert {"job": "daily", "table": "shipment_daily_totals", "environment": "pg-grouping"} in pushgateway.groups()


def test_a_failed_run_updates_duration_and_keeps_the_last_success(
    spark: SparkSession,
    config: Config,
    pushgateway: Pushgateway,  # noqa: F811
) -> None:
    config = with_metrics(config, environment="pg-failure", pushgateway=pushgateway.url)
    labels = {**DAILY_LABELS, "environment": "pg-failure"}
    stream_labels = {"job": "stream", "table": "shipment_status", "instance": "", "environment": "pg-failure"}
    ok_at = dt.datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    failed_at = ok_at + dt.timedelta(days=1)
    ok = daily_run("r1", recorded_at=ok_at, values={"duration_seconds": 80, "rows_written": 812})
    publish_metrics(spark, config, ok)
    failed = daily_run("r2", succeeded=False, recorded_at=failed_at, values={"duration_seconds": 3})
    publish_metrics(spark, config, failed)
    # A stream batch is another group: its failure touches nothing of the daily group.
    batch = RunMetrics("q1", "stream", "shipment_status", None, 7, False, failed_at, {"duration_seconds": 1.5})
    publish_metrics(spark, config, batch)

    assert pushgateway.group("pg-failure") == {
        "shipments_duration_seconds": [(labels, 3.0), (stream_labels, 1.5)],
        "shipments_succeeded": [(labels, 0.0), (stream_labels, 0.0)],
        # not measured by the failed run: the value last pushed stays
        "shipments_rows_written": [(labels, 812.0)],
        "shipments_last_success_timestamp_seconds": [(labels, ok_at.timestamp())],
    }

    next_ok = failed_at + dt.timedelta(hours=2)
    publish_metrics(spark, config, daily_run("r3", recorded_at=next_ok, values={"duration_seconds": 70}))
    last_success = pushgateway.group("pg-failure")["shipments_last_success_timestamp_seconds"]
    assert last_success == [(labels, next_ok.timestamp())]


# --------------------------------------------------------------------------- CloudWatch


def test_emf_prints_one_embedded_metric_format_line(
    spark: SparkSession, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_metrics(config, environment="prod", cloudwatch="emf", namespace="Shipments/Test")
    capsys.readouterr()
    publish_metrics(spark, config, daily_run(values={"duration_seconds": 84.5, "error_rate": 0.0125}))

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "_aws": {
            "Timestamp": 1795761930000,  # 2026-11-27T06:45:30Z in milliseconds
            "CloudWatchMetrics": [
                {
                    "Namespace": "Shipments/Test",
                    "Dimensions": [["job", "table", "environment"]],
                    "Metrics": [
                        {"Name": "succeeded", "Unit": "None"},
                        {"Name": "duration_seconds", "Unit": "Seconds"},
                        {"Name": "error_rate", "Unit": "None"},
                    ],
                }
            ],
        },
        "job": "daily",
        "table": "shipment_daily_totals",
        "environment": "prod",
        "run_id": "daily-20261126-a1",
        "run_date": "2026-11-26",
        "batch_id": None,
        "succeeded": 1.0,
        "duration_seconds": 84.5,
        "error_rate": 0.0125,
    }


def test_put_metric_data_reaches_cloudwatch(spark: SparkSession, config: Config, aws_env: Moto) -> None:
    config = with_metrics(
        config,
        environment="prod",
        cloudwatch="put_metric_data",
        namespace="Shipments/PutTest",
        region=REGION,
        endpoint_url=aws_env.endpoint_url,
    )
    publish_metrics(spark, config, daily_run(values={"duration_seconds": 84.5, "rows_written": 812}))

    cloudwatch = aws_env.client("cloudwatch")
    dims = [
        {"Name": "job", "Value": "daily"},
        {"Name": "table", "Value": "shipment_daily_totals"},
        {"Name": "environment", "Value": "prod"},
    ]
    listed = cloudwatch.list_metrics(Namespace="Shipments/PutTest")["Metrics"]
    assert sorted((m["MetricName"], sorted(d["Name"] + "=" + d["Value"] for d in m["Dimensions"])) for m in listed) == [
        (name, ["environment=prod", "job=daily", "table=shipment_daily_totals"])
        for name in ("duration_seconds", "rows_written", "succeeded")
    ]
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": name,
                "MetricStat": {
                    "Metric": {"Namespace": "Shipments/PutTest", "MetricName": name, "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
            for name in ("duration_seconds", "rows_written", "succeeded")
        ],
        StartTime=RECORDED - dt.timedelta(minutes=5),
        EndTime=RECORDED + dt.timedelta(minutes=5),
    )
    assert {r["Id"]: r["Values"] for r in answer["MetricDataResults"]} == {
        "duration_seconds": [84.5],
        "rows_written": [812.0],
        "succeeded": [1.0],
    }


# --------------------------------------------------------------------------- unreachable targets


@pytest.mark.parametrize("target", ["pushgateway", "put_metric_data"])
def test_an_unreachable_target_only_warns(
    spark: SparkSession,
    config: Config,
    target: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if target == "pushgateway":
        config = with_metrics(config, pushgateway=nobody)
    else:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            monkeypatch.setenv(name, value)
        config = with_metrics(config, cloudwatch="put_metric_data", region=REGION, endpoint_url=nobody)
    with caplog.at_level(logging.WARNING, logger="shipments.observe.metrics"):
        publish_metrics(spark, config, daily_run(values={"duration_seconds": 84.5}))

    warnings = [r for r in caplog.records if r.name == "shipments.observe.metrics"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "\n" not in message and "127.0.0.1" in message
    # the Delta rows were written first
    assert [row[6] for row in table_rows(spark, config)] == ["duration_seconds", "succeeded"]
