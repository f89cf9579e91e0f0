"""``python -m shipments.show --lake DIR``: print what the lake holds (used by ``make demo``)."""

from __future__ import annotations

import argparse

from pyspark.sql import functions as F

from shipments.config import load_config
from shipments.session import build_spark
from shipments.tables import DAILY_TOTALS, PIPELINE_RUNS, QUARANTINE


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shipments.show")
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    config = load_config(args.conf, lake=args.lake)
    spark = build_spark(config.spark, "shipments-show")
    totals = spark.read.format("delta").load(DAILY_TOTALS.path(config))
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
    spark.read.format("delta").load(QUARANTINE.path(config)).groupBy("ingest_date", "reason").count().orderBy(
        "ingest_date", "reason"
    ).show(50, truncate=False)
    print("pipeline_runs:")
    spark.read.format("delta").load(PIPELINE_RUNS.path(config)).select(
        "run_date", "status", "rows_read", "rows_kept", "rows_other_dates", "rows_duplicates", "rows_quarantined",
        "unknown_customers", "rows_written", "table_version",
    ).orderBy("started_at").show(truncate=False)


if __name__ == "__main__":
    main()
