"""``python -m shipments.devtools.show --lake DIR``: print what the lake holds (used by ``make demo``)."""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.config import Config, load_config
from shipments.model.tables import DAILY_TOTALS, PIPELINE_RUNS, QUARANTINE, TableSpec
from shipments.session import build_spark
from shipments.storage import delta


def _table(spark: SparkSession, config: Config, spec: TableSpec) -> DataFrame:
    table = delta.read_table(spark, config, spec)
    if table is None:
        raise SystemExit(f"no table {spec.path(config)}: run `shipments daily` first")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shipments.devtools.show")
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    config = load_config(args.conf, lake=args.lake)
    spark = build_spark(config.spark, "shipments-show")
    totals, quarantine, runs = (_table(spark, config, spec) for spec in (DAILY_TOTALS, QUARANTINE, PIPELINE_RUNS))
    print("\nshipment_daily_totals, per ship_date:")
    totals.groupBy("ship_date").agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum("shipment_count").alias("shipments"),
        F.sum("cancelled_count").alias("cancelled"),
        F.round(F.sum("total_weight_kg"), 3).alias("weight_kg"),
        F.sum("total_charge_usd").alias("charge_usd"),
    ).orderBy("ship_date").show(truncate=False)
    print("top customers:")
    totals.orderBy(F.desc("total_charge_usd")).show(5, truncate=False)
    print("quarantine/shipments, per reason:")
    quarantine.groupBy("ingest_date", "reason").count().orderBy("ingest_date", "reason").show(50, truncate=False)
    print("pipeline_runs:")
    runs.select(
        "run_date",
        "status",
        "rows_read",
        "rows_kept",
        "rows_other_dates",
        "rows_duplicates",
        "rows_quarantined",
        "unknown_customers",
        "rows_written",
        "table_version",
    ).orderBy("started_at").show(truncate=False)


if __name__ == "__main__":
    main()
