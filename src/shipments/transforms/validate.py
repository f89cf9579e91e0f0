"""Parse raw shipment lines and decide, per line, whether it is valid and if not, why."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shipments.model.shipments import (
    CHARGE_TYPE,
    CORRUPT_COLUMN,
    MAX_WEIGHT_KG,
    RAW_SHIPMENT_FIELDS,
    RAW_SHIPMENT_SCHEMA,
    SHIPMENT_SCHEMA,
    SHIPMENT_STATUSES,
)
from shipments.transforms.columns import first_failure, is_blank, parse_iso_timestamp

REQUIRED_FIELDS = ("shipment_id", "customer_id", "created_at", "updated_at", "weight_kg", "charge_usd")
# Columns every validated row carries; valid rows have `reason` null and no `raw_text`.
VALIDATED_COLUMNS = ("ingest_date", "source_file", "raw_text", "reason", *SHIPMENT_SCHEMA.fieldNames())
_EXACT = "decimal(38,10)"


def parse_json_lines(lines: DataFrame) -> DataFrame:
    """Parse JSON-lines text into the raw string fields.

    Requires ``value`` (the line), ``source_file`` and ``ingest_date``. Adds every field of
    ``RAW_SHIPMENT_SCHEMA`` as a string plus ``_corrupt_record`` (set when the line is not a
    JSON object) and renames ``value`` to ``raw_text``.
    """
    parsed = F.from_json(
        "value",
        RAW_SHIPMENT_SCHEMA,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN},
    )
    return lines.select(
        "ingest_date",
        "source_file",
        F.col("value").alias("raw_text"),
        parsed.alias("fields"),
    ).select(
        "ingest_date",
        "source_file",
        "raw_text",
        # A blank line parses to all-null fields without a corrupt record: it is malformed too.
        F.when(is_blank(F.col("raw_text")), F.col("raw_text"))
        .otherwise(F.col(f"fields.{CORRUPT_COLUMN}"))
        .alias(CORRUPT_COLUMN),
        *[F.col(f"fields.{name}").alias(name) for name in RAW_SHIPMENT_FIELDS],
    )


def parse_csv_rows(rows: DataFrame) -> DataFrame:
    """Give CSV rows read into the raw string fields the ``raw_text`` the quarantine keeps.

    Requires ``ingest_date, source_file, _corrupt_record`` and the raw string fields. Returns
    the columns of ``parse_json_lines``; ``raw_text`` is the unparsable line itself, or the
    row's fields joined by commas.
    """
    raw_text = F.coalesce(
        F.col(CORRUPT_COLUMN),
        F.concat_ws(",", *[F.coalesce(F.col(name), F.lit("")) for name in RAW_SHIPMENT_FIELDS]),
    )
    return rows.select("ingest_date", "source_file", raw_text.alias("raw_text"), CORRUPT_COLUMN, *RAW_SHIPMENT_FIELDS)


def with_validation(parsed: DataFrame) -> DataFrame:
    """Type the raw string fields and give each line a ``reason`` (null when valid).

    Requires the output of ``parse_json_lines`` (or a CSV read into the same columns). Returns
    ``VALIDATED_COLUMNS``: ``raw_text`` on invalid rows only, typed shipment fields (null where
    they do not parse), ``ship_date``
    (the UTC date of ``created_at``) and ``reason``, the first rule the line breaks:
    ``malformed_json``, ``missing_field:<f>``, ``bad_timestamp:<f>``, ``bad_number:<f>``,
    ``out_of_range:<f>``, ``bad_precision:charge_usd`` or ``bad_value:status``.
    """
    typed = parsed.select(
        "*",
        parse_iso_timestamp(F.col("created_at")).alias("_created_at"),
        parse_iso_timestamp(F.col("updated_at")).alias("_updated_at"),
        F.trim("weight_kg").cast("double").alias("_weight_kg"),
        F.trim("charge_usd").cast(_EXACT).alias("_charge_exact"),
    )
    weight = F.col("_weight_kg")
    exact_charge = F.col("_charge_exact")
    charge = exact_charge.cast(CHARGE_TYPE)
    reason = first_failure(
        (F.col(CORRUPT_COLUMN).isNotNull(), "malformed_json"),
        *[(is_blank(F.col(name)), f"missing_field:{name}") for name in REQUIRED_FIELDS],
        (F.col("_created_at").isNull(), "bad_timestamp:created_at"),
        (F.col("_updated_at").isNull(), "bad_timestamp:updated_at"),
        (weight.isNull(), "bad_number:weight_kg"),
        (exact_charge.isNull(), "bad_number:charge_usd"),
        # NaN compares greater than every number in Spark, so the upper bound also catches it.
        ((weight < 0) | (weight > MAX_WEIGHT_KG) | F.isnan(weight), "out_of_range:weight_kg"),
        ((exact_charge < 0) | charge.isNull(), "out_of_range:charge_usd"),
        (exact_charge != charge, "bad_precision:charge_usd"),
        (F.col("status").isNotNull() & ~F.col("status").isin(*SHIPMENT_STATUSES), "bad_value:status"),
    )
    return (
        typed.withColumn("reason", reason)
        .select(
            "ingest_date",
            "source_file",
            # Only quarantine needs the raw line: dropping it from valid rows keeps cached data small.
            F.when(F.col("reason").isNotNull(), F.col("raw_text")).alias("raw_text"),
            "reason",
            F.trim("shipment_id").alias("shipment_id"),
            F.trim("customer_id").alias("customer_id"),
            F.col("_created_at").alias("created_at"),
            F.col("_updated_at").alias("updated_at"),
            "status",
            "origin_region",
            "destination_region",
            weight.alias("weight_kg"),
            charge.alias("charge_usd"),
            F.to_date("_created_at").alias("ship_date"),
        )
        .select(*VALIDATED_COLUMNS)
    )


def to_valid_shipments(validated: DataFrame) -> DataFrame:
    """The valid rows as shipment versions: ``ingest_date`` and ``SHIPMENT_SCHEMA``'s columns
    (the raw-line bookkeeping columns dropped)."""
    return validated.filter(F.col("reason").isNull()).drop("raw_text", "reason", "source_file")


def filter_rejected_lines(validated: DataFrame) -> DataFrame:
    """Keep the rejected rows (``reason`` set): what goes to quarantine."""
    return validated.filter(F.col("reason").isNotNull())
