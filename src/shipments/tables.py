"""The lake's tables: where each lives, its schema and partitioning."""

from __future__ import annotations

import dataclasses

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from shipments import io
from shipments.config import Config
from shipments.schemas import DAILY_TOTALS_SCHEMA, PIPELINE_RUNS_SCHEMA, QUARANTINE_SCHEMA


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    schema: T.StructType
    partition_by: tuple[str, ...] = ()

    def path(self, config: Config) -> str:
        return config.table(self.name)


DAILY_TOTALS = TableSpec("shipment_daily_totals", DAILY_TOTALS_SCHEMA, ("ship_date",))
QUARANTINE = TableSpec("quarantine/shipments", QUARANTINE_SCHEMA, ("ingest_date",))
PIPELINE_RUNS = TableSpec("pipeline_runs", PIPELINE_RUNS_SCHEMA)

BATCH_TABLES = (DAILY_TOTALS, QUARANTINE, PIPELINE_RUNS)


def ensure_tables(spark: SparkSession, config: Config, specs: tuple[TableSpec, ...] = BATCH_TABLES) -> None:
    """Create any missing table with its declared schema and partitioning."""
    for spec in specs:
        io.ensure_delta_table(spark, spec.path(config), spec.schema, spec.partition_by)
