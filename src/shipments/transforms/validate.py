"""Parse raw shipment lines and decide, per line, whether it is valid and if not, why."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shipments.model.layouts import CDC_OPERATIONS, DELETE
from shipments.model.shipments import (
    CHARGE_TYPE,
    CORRUPT_COLUMN,
    MAX_WEIGHT_KG,
    REQUIRED_SHIPMENT_FIELDS,
    SHIPMENT_SCHEMA,
    SHIPMENT_STATUSES,
)
from shipments.transforms.columns import first_failure, is_blank, parse_iso_timestamp, to_double

# Columns every validated row carries; valid rows have `reason` null and no `raw_text`.
VALIDATED_COLUMNS = ("ingest_date", "source_file", "raw_text", "reason", *SHIPMENT_SCHEMA.fieldNames())
_PLAIN_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"
_SCIENTIFIC = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+$"
# decimal(18,2) holds 16 digits before the point.
_MAX_CHARGE_DIGITS = CHARGE_TYPE.precision - CHARGE_TYPE.scale


def with_validation(parsed: DataFrame, more_rules: Callable[[DataFrame], DataFrame] | None = None) -> DataFrame:
    """Type the raw string fields and give each line a ``reason`` (null when valid).

    Requires ``PARSED_COLUMNS`` (see ``transforms.parse``). Returns
    ``VALIDATED_COLUMNS``: ``raw_text`` on invalid rows only, typed shipment fields (null where
    they do not parse), ``ship_date``
    (the UTC date of ``created_at``) and ``reason``, the first rule the line breaks:
    ``malformed_json`` (``malformed_csv`` for a CSV record with the wrong number of fields),
    ``missing_field:<f>``, ``bad_timestamp:<f>``, ``bad_number:<f>``, ``out_of_range:<f>``,
    ``bad_precision:charge_usd``, ``bad_value:status`` or ``bad_value:op`` (a DMS operation
    other than I, U, D). ``deleted`` is true for a DMS delete (``op`` D).

    ``more_rules`` may give more valid rows a ``reason`` (configured row rules): it sees the typed
    columns before the raw text of valid rows is dropped, so the rows it rejects keep theirs.
    """
    typed = parsed.select(
        "*",
        parse_iso_timestamp(F.col("created_at")).alias("_created_at"),
        parse_iso_timestamp(F.col("updated_at")).alias("_updated_at"),
        to_double(F.col("weight_kg")).alias("_weight_kg"),
        F.trim("charge_usd").alias("_charge_text"),
    )
    weight = F.col("_weight_kg")
    charge = _ChargeChecks("_charge_text")
    reason = first_failure(
        (F.col(CORRUPT_COLUMN).isNotNull(), F.concat(F.lit("malformed_"), F.col("record_format"))),
        *[(is_blank(F.col(name)), f"missing_field:{name}") for name in REQUIRED_SHIPMENT_FIELDS],
        (F.col("_created_at").isNull(), "bad_timestamp:created_at"),
        (F.col("_updated_at").isNull(), "bad_timestamp:updated_at"),
        (weight.isNull(), "bad_number:weight_kg"),
        (charge.not_a_number, "bad_number:charge_usd"),
        # NaN compares greater than every number in Spark, so the upper bound also catches it.
        ((weight < 0) | (weight > MAX_WEIGHT_KG) | F.isnan(weight), "out_of_range:weight_kg"),
        (charge.out_of_range, "out_of_range:charge_usd"),
        (charge.too_precise, "bad_precision:charge_usd"),
        (F.col("status").isNotNull() & ~F.col("status").isin(*SHIPMENT_STATUSES), "bad_value:status"),
        (F.col("op").isNotNull() & ~F.col("op").isin(*CDC_OPERATIONS), "bad_value:op"),
    )
    checked = (
        typed.withColumn("reason", reason)
        .select(
            "ingest_date",
            "source_file",
            "raw_text",
            "reason",
            F.trim("shipment_id").alias("shipment_id"),
            F.trim("customer_id").alias("customer_id"),
            F.col("_created_at").alias("created_at"),
            F.col("_updated_at").alias("updated_at"),
            "status",
            "origin_region",
            "destination_region",
            weight.alias("weight_kg"),
            charge.value.alias("charge_usd"),
            F.to_date("_created_at").alias("ship_date"),
            F.coalesce(F.col("op") == F.lit(DELETE), F.lit(False)).alias("deleted"),
        )
        .transform(more_rules or (lambda frame: frame))
    )
    # Only quarantine needs the raw line: dropping it from valid rows keeps cached data small.
    raw_text = F.when(F.col("reason").isNotNull(), F.col("raw_text"))
    return checked.withColumn("raw_text", raw_text).select(*VALIDATED_COLUMNS)


class _ChargeChecks:
    """The charge rules, decided from the charge's exact text, never from a rounded number.

    Plain decimals (``19.99``, ``-0.5``, ``7``) are checked digit by digit, so no magnitude or
    length of fraction can slip through a rounding cast; trailing zeros are not precision
    (``19.990`` is 19.99 exactly). Scientific notation (``1.5e2``, rare) goes through
    decimal(38,18). Every cast is guarded, so a bad value is a reason, never an error, under
    ANSI mode too.
    """

    def __init__(self, column: str) -> None:
        text = F.col(column)
        plain = text.rlike(_PLAIN_DECIMAL)
        scientific = text.rlike(_SCIENTIFIC)
        self.not_a_number = ~(plain | scientific)
        integer_digits = F.length(F.regexp_extract(text, r"^[+-]?0*([0-9]*)", 1))
        fraction_digits = F.length(F.regexp_replace(F.regexp_extract(text, r"\.([0-9]*)$", 1), "0+$", ""))
        negative = text.startswith("-") & ~text.rlike(r"^-0*\.?0*$")
        # try_cast: null (out of range) where decimal(38,18) cannot hold it, also under ANSI mode.
        exact = F.when(scientific, F.expr(f"try_cast({column} AS decimal(38,18))"))
        limit = F.lit(10**_MAX_CHARGE_DIGITS).cast("decimal(38,18)")
        self.out_of_range = F.when(plain, negative | (integer_digits > _MAX_CHARGE_DIGITS)).otherwise(
            exact.isNull() | (exact < 0) | (exact >= limit)
        )
        self.too_precise = F.when(plain, fraction_digits > CHARGE_TYPE.scale).otherwise(
            exact != F.round(exact, CHARGE_TYPE.scale)
        )
        valid = ~self.not_a_number & ~self.out_of_range & ~self.too_precise
        self.value = F.when(valid & plain, text.cast(CHARGE_TYPE)).when(valid, exact.cast(CHARGE_TYPE))


def to_valid_shipments(validated: DataFrame) -> DataFrame:
    """The valid rows as shipment versions: ``ingest_date`` and ``SHIPMENT_SCHEMA``'s columns
    (the raw-line bookkeeping columns dropped)."""
    return validated.filter(F.col("reason").isNull()).drop("raw_text", "reason", "source_file")


def filter_rejected_lines(validated: DataFrame) -> DataFrame:
    """Keep the rejected rows (``reason`` set): what goes to quarantine."""
    return validated.filter(F.col("reason").isNotNull())
