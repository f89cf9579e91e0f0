"""Raw shipments and the customer dimension as the project reads them (nothing is inferred)."""

from __future__ import annotations

from pyspark.sql import types as T

from shipments.model.fields import RAW_SHIPMENT_FIELDS

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
# Fields a record may lack (every other one is required by the contract).
OPTIONAL_SHIPMENT_FIELDS = ("status", "origin_region", "destination_region")
REQUIRED_SHIPMENT_FIELDS = tuple(name for name in RAW_SHIPMENT_FIELDS if name not in OPTIONAL_SHIPMENT_FIELDS)
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
        # A DMS delete: the shipment no longer exists from this version on.
        T.StructField("deleted", T.BooleanType(), False),
    ]
)

CUSTOMER_FIELDS = ("customer_id", "customer_name", "segment", "region")
CUSTOMER_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in CUSTOMER_FIELDS])
