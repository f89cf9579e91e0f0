"""Every schema the project reads or writes, declared once (nothing is inferred)."""

from __future__ import annotations

from pyspark.sql import types as T

SHIPMENT_STATUSES = (
    "CREATED",
    "PICKED_UP",
    "IN_TRANSIT",
    "OUT_FOR_DELIVERY",
    "DELIVERED",
    "EXCEPTION",
    "CANCELLED",
    "RETURNED",
)

MAX_WEIGHT_KG = 100_000
CHARGE_TYPE = T.DecimalType(18, 2)
CORRUPT_COLUMN = "_corrupt_record"

# Raw shipments are parsed with every field as a string, so that a value of the wrong type
# ("weight_kg": "heavy") stays visible to validation instead of turning into a silent null.
RAW_SHIPMENT_FIELDS = (
    "shipment_id",
    "customer_id",
    "created_at",
    "updated_at",
    "status",
    "origin_region",
    "destination_region",
    "weight_kg",
    "charge_usd",
)
RAW_SHIPMENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in RAW_SHIPMENT_FIELDS]
    + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)

# A validated shipment version: what the validate stage promises for a valid row.
SHIPMENT_SCHEMA = T.StructType(
    [
        T.StructField("shipment_id", T.StringType(), False),
        T.StructField("customer_id", T.StringType(), False),
        T.StructField("created_at", T.TimestampType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
        T.StructField("status", T.StringType()),
        T.StructField("origin_region", T.StringType()),
        T.StructField("destination_region", T.StringType()),
        T.StructField("weight_kg", T.DoubleType(), False),
        T.StructField("charge_usd", CHARGE_TYPE, False),
        T.StructField("ship_date", T.DateType(), False),
    ]
)

CUSTOMER_FIELDS = ("customer_id", "customer_name", "segment", "region")
CUSTOMER_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in CUSTOMER_FIELDS])

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
        T.StructField("rows_other_dates", T.LongType()),
        T.StructField("rows_kept", T.LongType()),
        T.StructField("unknown_customers", T.LongType()),
        T.StructField("unknown_customer_rows", T.LongType()),
        T.StructField("dimension_duplicates", T.LongType()),
        T.StructField("rows_written", T.LongType()),
        T.StructField("table_version", T.LongType()),
        T.StructField("input_files", T.LongType()),
        T.StructField("input_bytes", T.LongType()),
        T.StructField("input_fingerprint", T.StringType()),
        T.StructField("error", T.StringType()),
    ]
)
