"""The lake's tables: each declared once with its schema, partitioning and table properties.

``TableSpec`` is a declaration: ``storage.delta.ensure_table`` creates a table from it, and
every read and write finds the table's location through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pyspark.sql import types as T

from shipments.config import Config
from shipments.model.events import SOURCE_FIELDS
from shipments.model.shipments import CHARGE_TYPE


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """A Delta table under the lake: its path (relative to the lake), schema, partition columns
    and the table properties it is created with."""

    name: str
    schema: T.StructType
    partition_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def path(self, config: Config) -> str:
        return config.table(self.name)


# --------------------------------------------------------------------------- daily batch

DAILY_TOTALS_SCHEMA = T.StructType(
    [
        T.StructField("ship_date", T.DateType(), False),
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("customer_name", T.StringType(), False),
        T.StructField("segment", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
        T.StructField("shipment_count", T.LongType(), False),
        T.StructField("cancelled_count", T.LongType(), False),
        T.StructField("total_weight_kg", T.DoubleType(), False),
        T.StructField("total_charge_usd", CHARGE_TYPE, False),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("ingest_date", T.DateType(), False),
        # The ship date when created_at could be read, so a day's rejects are easy to find.
        T.StructField("ship_date", T.DateType()),
        T.StructField("shipment_id", T.StringType()),
        T.StructField("reason", T.StringType(), False),
        T.StructField("raw_text", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)

PIPELINE_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("run_date", T.DateType()),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("rows_read", T.LongType()),
        T.StructField("rows_duplicates", T.LongType()),
        T.StructField("rows_quarantined", T.LongType()),
        # added with the DMS layouts: shipments whose latest version is a delete
        T.StructField("rows_deleted", T.LongType()),
        T.StructField("rows_other_dates", T.LongType()),
        T.StructField("rows_kept", T.LongType()),
        T.StructField("unknown_customers", T.LongType()),
        T.StructField("unknown_customer_rows", T.LongType()),
        T.StructField("dimension_duplicates", T.LongType()),
        T.StructField("rows_written", T.LongType()),
        # added with the data-quality checks: D's shipments that landed in an earlier (early) or
        # later (late) ingest folder than D's, and the quarantined records by reason (a JSON
        # object), so reconcile explains a day from recorded numbers first.
        T.StructField("rows_early", T.LongType()),
        T.StructField("rows_late", T.LongType()),
        T.StructField("quarantine_reasons", T.StringType()),
        T.StructField("checks_failed", T.LongType()),
        T.StructField("table_version", T.LongType()),
        T.StructField("input_files", T.LongType()),
        T.StructField("input_bytes", T.LongType()),
        T.StructField("input_fingerprint", T.StringType()),
        T.StructField("error", T.StringType()),
    ]
)


# --------------------------------------------------------------------------- operations

# One row per check per run (per micro-batch for the stream's checks).
DQ_RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        # the date checked (the daily run's D; null for a micro-batch)
        T.StructField("run_date", T.DateType()),
        T.StructField("batch_id", T.LongType()),
        T.StructField("check_name", T.StringType(), False),
        T.StructField("check_kind", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("observed", T.DoubleType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("passed", T.BooleanType(), False),
        # what was found, in words (e.g. which field vanished from which files)
        T.StructField("detail", T.StringType()),
        T.StructField("sample_keys", T.ArrayType(T.StringType())),
        T.StructField("checked_at", T.TimestampType(), False),
    ]
)

# Long format: one row per metric per run or micro-batch. Dimensions stay low-cardinality where
# the metrics are exported (job, table, environment); run_id/run_date/batch_id are only here.
PIPELINE_METRICS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("environment", T.StringType(), False),
        T.StructField("run_date", T.DateType()),
        T.StructField("batch_id", T.LongType()),
        T.StructField("metric", T.StringType(), False),
        T.StructField("value", T.DoubleType()),
        T.StructField("unit", T.StringType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)

# One row per alert fingerprint (check + table + cause, never a date): open while its check
# fails, resolved when the check passes again.
ALERT_STATE_SCHEMA = T.StructType(
    [
        T.StructField("fingerprint", T.StringType(), False),
        T.StructField("state", T.StringType(), False),  # open | resolved
        T.StructField("level", T.StringType(), False),  # page | ticket | log
        T.StructField("job", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("check_name", T.StringType(), False),
        T.StructField("cause", T.StringType(), False),
        T.StructField("summary", T.StringType(), False),
        T.StructField("runbook", T.StringType(), False),
        T.StructField("affected_dates", T.ArrayType(T.DateType()), False),
        T.StructField("sample_keys", T.ArrayType(T.StringType()), False),
        T.StructField("occurrences", T.LongType(), False),
        T.StructField("first_seen", T.TimestampType(), False),
        T.StructField("last_seen", T.TimestampType(), False),
        T.StructField("notified_at", T.TimestampType()),
        T.StructField("resolved_at", T.TimestampType()),
        T.StructField("last_run_id", T.StringType(), False),
    ]
)


# --------------------------------------------------------------------------- status stream

SHIPMENT_STATUS_SCHEMA = T.StructType(
    [
        T.StructField("shipment_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("event_id", T.StringType(), False),
        T.StructField("location", T.StringType()),
        # processing metadata
        T.StructField("reported_event_time", T.TimestampType()),
        *SOURCE_FIELDS,
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
    ]
)

LATE_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("shipment_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("event_time", T.TimestampType(), False),
        T.StructField("location", T.StringType()),
        T.StructField("reported_event_time", T.TimestampType()),
        # the watermark the event was found older than
        T.StructField("watermark", T.TimestampType(), False),
        *SOURCE_FIELDS,
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("arrived_at", T.TimestampType(), False),
    ]
)

DLQ_SCHEMA = T.StructType(
    [
        T.StructField("raw_value", T.StringType()),
        T.StructField("error", T.StringType(), False),
        *SOURCE_FIELDS,
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("arrived_at", T.TimestampType(), False),
    ]
)


DAILY_TOTALS = TableSpec("shipment_daily_totals", DAILY_TOTALS_SCHEMA, ("ship_date",))
QUARANTINE = TableSpec("quarantine/shipments", QUARANTINE_SCHEMA, ("ingest_date",))
# Appended by every run (and the stream's batches): a small file each, which the appends
# compact now and then themselves (storage.delta.append_rows), not with Delta's auto compaction.
PIPELINE_RUNS = TableSpec("pipeline_runs", PIPELINE_RUNS_SCHEMA)
DQ_RESULTS = TableSpec("dq_results", DQ_RESULTS_SCHEMA)
PIPELINE_METRICS = TableSpec("pipeline_metrics", PIPELINE_METRICS_SCHEMA)
ALERT_STATE = TableSpec("alert_state", ALERT_STATE_SCHEMA)
# What every daily run and backfill writes: created (the missing ones at once) before the first write.
BATCH_TABLES = (DAILY_TOTALS, QUARANTINE, PIPELINE_RUNS, DQ_RESULTS, PIPELINE_METRICS)

# A MERGE every few seconds leaves small files: auto compaction folds them back together.
# Measured here (2 cores, 50k rows, MERGEs of 200-5,000 rows): deletion vectors made each MERGE
# slower (about 8 s against 2.5 s), and optimized writes add a shuffle to every MERGE, so
# both stay off.
SHIPMENT_STATUS = TableSpec(
    "shipment_status", SHIPMENT_STATUS_SCHEMA, properties={"delta.autoOptimize.autoCompact": "true"}
)
STATUS_LATE = TableSpec("shipment_status_late", LATE_SCHEMA)
STATUS_DLQ = TableSpec("shipment_status_dlq", DLQ_SCHEMA)
STREAM_TABLES = (SHIPMENT_STATUS, STATUS_LATE, STATUS_DLQ)

# Every table the project writes, each once: what `shipments catalog sync` registers.
LAKE_TABLES = (DAILY_TOTALS, QUARANTINE, PIPELINE_RUNS, DQ_RESULTS, PIPELINE_METRICS, ALERT_STATE, *STREAM_TABLES)
