"""Rejected raw lines as ``quarantine/shipments`` rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shipments.model.tables import QUARANTINE_SCHEMA
from shipments.transforms.columns import timestamp_literal
from shipments.transforms.validate import filter_rejected_lines


def to_quarantine_rows(
    validated: DataFrame, ingest_dates: Sequence[dt.date], run_id: str, quarantined_at: dt.datetime
) -> DataFrame:
    """The rejected lines that landed on ``ingest_dates`` (a run's own date, or every date of a
    backfill pass), as ``QUARANTINE_SCHEMA`` rows.

    Requires ``VALIDATED_COLUMNS``. ``quarantined_at`` must be time-zone aware: it is stored as
    that instant whatever the driver's zone.
    """
    return (
        validated.transform(filter_rejected_lines)
        .filter(F.col("ingest_date").isin(*ingest_dates))
        .select(
            *[F.col(name) for name in ("ingest_date", "ship_date", "shipment_id", "reason", "raw_text", "source_file")],
            F.lit(run_id).alias("run_id"),
            timestamp_literal(quarantined_at).alias("quarantined_at"),
        )
        .select(*QUARANTINE_SCHEMA.fieldNames())
    )


def to_quarantined_files(files: DataFrame, run_id: str, quarantined_at: dt.datetime) -> DataFrame:
    """Files that are no data file of the layout, one ``QUARANTINE_SCHEMA`` row each.

    Requires ``source_file``, ``ingest_date`` (the folder it landed in) and ``reason``;
    ``raw_text`` holds the file's name (its content was not read: it may not be text at all).
    """
    return files.select(
        "ingest_date",
        F.lit(None).cast("date").alias("ship_date"),
        F.lit(None).cast("string").alias("shipment_id"),
        "reason",
        F.regexp_extract("source_file", r"([^/]*)$", 1).alias("raw_text"),
        "source_file",
        F.lit(run_id).alias("run_id"),
        timestamp_literal(quarantined_at).alias("quarantined_at"),
    ).select(*QUARANTINE_SCHEMA.fieldNames())
