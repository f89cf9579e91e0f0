"""Run metrics: what one run (or one micro-batch) measured, recorded in ``pipeline_metrics`` and
exported to a Prometheus Pushgateway and CloudWatch when the config says so.

``publish_metrics`` writes the Delta rows first, in one commit: they are the record. The exports
come after, and an export that cannot reach its target logs one warning and never fails the run.

Exported metrics carry only low-cardinality dimensions (job, table, environment): a run id or a
date as a label would make a new time series per run. Those stay in the Delta table (and as
plain properties of an EMF line, which CloudWatch does not turn into dimensions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from pyspark.sql import SparkSession

from shipments.config import Config
from shipments.errors import describe
from shipments.model.tables import PIPELINE_METRICS, PIPELINE_METRICS_SCHEMA
from shipments.storage import delta, driver_rows

log = logging.getLogger(__name__)

# name -> (CloudWatch unit, what it means). The Prometheus gauge is ``shipments_<name>``.
_DECLARED: dict[str, tuple[str, str]] = {
    "duration_seconds": ("Seconds", "Wall-clock time of the run or micro-batch."),
    "latency_seconds": (
        "Seconds",
        "Data landed -> table available (daily); event time -> visible in the table, p95 of the micro-batch (stream).",
    ),
    "latency_p50_seconds": ("Seconds", "Median of the latency (stream: of the micro-batch's events)."),
    "latency_max_seconds": ("Seconds", "Largest latency (stream: of the micro-batch's events)."),
    "throughput_rows_per_second": ("Count/Second", "Rows read per second of the run's duration."),
    "rows_read": ("Count", "Records read."),
    "rows_written": ("Count", "Rows written to the table."),
    "error_rate": ("None", "Share of records read that were quarantined or dead-lettered (0 to 1)."),
    "freshness_seconds": ("Seconds", "Time from the newest event time in the table to the end of the run."),
    "table_version": ("None", "Delta version the run committed."),
    "checks_failed": ("Count", "Data-quality checks that failed."),
}
METRICS: dict[str, str] = {name: unit for name, (unit, _) in _DECLARED.items()}

# Recorded for every run from ``RunMetrics.succeeded`` (1 or 0); not a key of ``values``.
SUCCEEDED = "succeeded"
SUCCEEDED_UNIT = "None"
_SUCCEEDED_HELP = "1 when the run or micro-batch succeeded, 0 when it failed."
PROMETHEUS_PREFIX = "shipments_"
LAST_SUCCESS = "shipments_last_success_timestamp_seconds"
_LAST_SUCCESS_HELP = "Unix time of the last successful run (recorded_at); pushed only by a successful run."

# A dimension value: what Prometheus, CloudWatch and the Pushgateway URL all accept unchanged.
_DIMENSION = re.compile(r"^[A-Za-z0-9_./-]{1,128}$")
# An unreachable target costs the run at most about this long per export.
_TIMEOUT_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class RunMetrics:
    """What one run of ``job`` on ``table`` measured.

    ``run_date`` is the daily run's date D (None for a micro-batch), ``batch_id`` the
    micro-batch's id (None for a daily run). ``recorded_at`` is an aware datetime (UTC).
    ``values`` maps names from ``METRICS`` to numbers; a metric the run did not measure is left
    out, never given as 0. An unknown name, a non-finite value or a naive ``recorded_at`` is a
    bug of the caller: ``ValueError``.
    """

    run_id: str
    job: str
    table: str
    run_date: dt.date | None
    batch_id: int | None
    succeeded: bool
    recorded_at: dt.datetime
    values: Mapping[str, float]

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(f"RunMetrics.run_id must be a non-empty string, got {self.run_id!r}")
        for name in ("job", "table"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _DIMENSION.match(value):
                raise ValueError(f"RunMetrics.{name} must be 1-128 of A-Z a-z 0-9 _ . / -, got {value!r}")
        if self.batch_id is not None and (isinstance(self.batch_id, bool) or not isinstance(self.batch_id, int)):
            raise ValueError(f"RunMetrics.batch_id must be an int or None, got {self.batch_id!r}")
        if not isinstance(self.succeeded, bool):
            raise ValueError(f"RunMetrics.succeeded must be True or False, got {self.succeeded!r}")
        if not isinstance(self.recorded_at, dt.datetime) or self.recorded_at.utcoffset() is None:
            raise ValueError(f"RunMetrics.recorded_at must be an aware datetime (UTC), got {self.recorded_at!r}")
        unknown = sorted(set(self.values) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
        values: dict[str, float] = {}
        for name in METRICS:
            if name not in self.values:
                continue
            value = self.values[name]
            # CloudWatch refuses NaN and infinities, and JSON (EMF) cannot carry them.
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"metric {name!r} must be a finite number, got {value!r}")
            values[name] = float(value)
        # A private copy (a plain dict, so the dataclass still pickles and copies): the caller's
        # dict changing later cannot change what is published.
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "recorded_at", self.recorded_at.astimezone(dt.UTC))

    def measured(self) -> dict[str, tuple[float, str]]:
        """Every metric recorded for the run, ``succeeded`` first: name -> (value, unit)."""
        return {
            SUCCEEDED: (1.0 if self.succeeded else 0.0, SUCCEEDED_UNIT),
            **{name: (value, METRICS[name]) for name, value in self.values.items()},
        }


def publish_metrics(spark: SparkSession, config: Config, *runs: RunMetrics) -> None:
    """Record the metrics of ``runs`` (one run, or each date of a backfill pass) in
    ``pipeline_metrics`` (one row per metric, one commit), then export each run's as
    ``config.metrics`` says: Pushgateway when ``pushgateway`` is set, CloudWatch by
    ``cloudwatch`` (``emf``: one Embedded Metric Format line on stdout; ``put_metric_data``:
    the API). An export that fails logs one warning line; the run goes on.
    """
    for metrics in runs:
        if not isinstance(metrics, RunMetrics):
            raise TypeError(f"publish_metrics needs a RunMetrics, got {type(metrics).__name__}")
    write_metrics(spark, config, *runs)
    export_metrics(config, *runs)


def export_metrics(config: Config, *runs: RunMetrics) -> None:
    """Export each of ``runs`` as ``config.metrics`` says, once its rows are written: an export
    that fails logs one warning, and the next run's export is still tried."""
    for metrics in runs:
        try:
            _export(config, metrics)
        except Exception as exc:  # beyond the errors _export expects (a gateway's garbled reply, a closed stdout)
            log.warning("run metrics of %s/%s not (all) exported: %s", metrics.job, metrics.table, describe(exc, 300))


def _export(config: Config, metrics: RunMetrics) -> None:
    settings = config.metrics
    if settings.pushgateway:
        try:
            push_gauges(config, metrics)
        except OSError as exc:  # URLError, refused, timed out, or the gateway's non-2xx answer
            log.warning(
                "run metrics of %s/%s not pushed to the Pushgateway %s: %s",
                metrics.job,
                metrics.table,
                settings.pushgateway,
                describe(exc, 300),
            )
    if settings.cloudwatch == "emf":
        sys.stdout.write(emf_line(config, metrics) + "\n")
        sys.stdout.flush()
    elif settings.cloudwatch == "put_metric_data":
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            send_to_cloudwatch(config, metrics)
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "run metrics of %s/%s not sent to CloudWatch (%s): %s",
                metrics.job,
                metrics.table,
                settings.namespace,
                describe(exc, 300),
            )


def metric_rows(config: Config, metrics: RunMetrics) -> list[tuple[Any, ...]]:
    """The ``pipeline_metrics`` rows of ``metrics`` (``PIPELINE_METRICS_SCHEMA`` order)."""
    return [
        (
            metrics.run_id,
            metrics.job,
            metrics.table,
            config.metrics.environment,
            metrics.run_date,
            metrics.batch_id,
            name,
            value,
            unit,
            metrics.recorded_at,
        )
        for name, (value, unit) in metrics.measured().items()
    ]


def write_metrics(spark: SparkSession, config: Config, *runs: RunMetrics) -> None:
    """Append the rows of ``runs`` to ``pipeline_metrics`` in one commit (a blind append:
    parallel runs never conflict); no run: nothing is written."""
    if not runs:
        return
    delta.ensure_table(spark, config, PIPELINE_METRICS)
    rows = driver_rows.to_frame(
        spark, [row for metrics in runs for row in metric_rows(config, metrics)], PIPELINE_METRICS_SCHEMA
    )
    delta.append_rows(rows, PIPELINE_METRICS.path(config), key=runs[0].run_id)


def dimensions(config: Config, metrics: RunMetrics) -> dict[str, str]:
    """The exported dimensions (Prometheus labels, CloudWatch dimensions) of a run."""
    return {"job": metrics.job, "table": metrics.table, "environment": config.metrics.environment}


def push_gauges(config: Config, metrics: RunMetrics) -> None:
    """Push the run's gauges to the Pushgateway, grouped by job, table and environment.

    POST (``pushadd``), not PUT: it replaces only the metrics this push carries, so a failed
    run updates ``shipments_duration_seconds`` and the others it measured while the group keeps
    ``shipments_last_success_timestamp_seconds`` of the last successful run, which only a
    successful run pushes. A metric a run did not measure keeps the value last pushed (the
    group's ``push_time_seconds`` says when that was).
    """
    registry = CollectorRegistry()
    for name, (value, _) in metrics.measured().items():
        help_text = _SUCCEEDED_HELP if name == SUCCEEDED else _DECLARED[name][1]
        Gauge(PROMETHEUS_PREFIX + name, help_text, registry=registry).set(value)
    if metrics.succeeded:
        Gauge(LAST_SUCCESS, _LAST_SUCCESS_HELP, registry=registry).set(metrics.recorded_at.timestamp())
    labels = dimensions(config, metrics)
    pushadd_to_gateway(
        config.metrics.pushgateway.rstrip("/"),
        job=labels.pop("job"),
        registry=registry,
        grouping_key=labels,
        timeout=_TIMEOUT_SECONDS,
    )


def emf_record(config: Config, metrics: RunMetrics) -> dict[str, Any]:
    """The run as one CloudWatch Embedded Metric Format object.

    The dimensions are job, table and environment; ``run_id``, ``run_date`` and ``batch_id``
    ride along as properties (searchable in Logs Insights, never dimensions).
    """
    measured = metrics.measured()
    labels = dimensions(config, metrics)
    return {
        "_aws": {
            "Timestamp": int(metrics.recorded_at.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": config.metrics.namespace,
                    "Dimensions": [list(labels)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in measured.items()],
                }
            ],
        },
        **labels,
        "run_id": metrics.run_id,
        "run_date": None if metrics.run_date is None else metrics.run_date.isoformat(),
        "batch_id": metrics.batch_id,
        **{name: value for name, (value, _) in measured.items()},
    }


def emf_line(config: Config, metrics: RunMetrics) -> str:
    """``emf_record`` as the one JSON line CloudWatch Logs reads."""
    return json.dumps(emf_record(config, metrics), separators=(",", ":"), allow_nan=False)


def send_to_cloudwatch(config: Config, metrics: RunMetrics) -> None:
    """Send the run's metrics with CloudWatch's ``PutMetricData`` (one call), dimensions job,
    table and environment, timestamped ``recorded_at``."""
    # boto3 only where CloudWatch is called: it is not a dependency of the package (EMR and Glue
    # bring it), like the DynamoDB serving table's client.
    import boto3
    from botocore.config import Config as BotoConfig

    settings = config.metrics
    client = boto3.client(
        "cloudwatch",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url or None,
        # A CloudWatch outage must not hold the run for boto3's default minutes of retries.
        config=BotoConfig(
            connect_timeout=_TIMEOUT_SECONDS,
            read_timeout=_TIMEOUT_SECONDS,
            retries={"mode": "standard", "max_attempts": 2},
        ),
    )
    dims = [{"Name": key, "Value": value} for key, value in dimensions(config, metrics).items()]
    client.put_metric_data(
        Namespace=settings.namespace,
        MetricData=[
            {"MetricName": name, "Dimensions": dims, "Timestamp": metrics.recorded_at, "Value": value, "Unit": unit}
            for name, (value, unit) in metrics.measured().items()
        ],
    )
