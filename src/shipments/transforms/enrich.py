"""Join the customer dimension onto shipments without ever multiplying rows."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shipments.transforms.columns import is_blank

UNKNOWN = "UNKNOWN"
_ATTRIBUTES = ("customer_name", "segment", "region")


def to_customer_dimension(customers: DataFrame) -> DataFrame:
    """One row per ``customer_id``, plus ``copies`` (how many rows the source had for it).

    Requires ``customer_id, customer_name, segment, region``. Rows without a customer_id are
    dropped (they cannot join). When an id appears more than once, the row with the most
    non-blank attributes is kept (``C1,,,`` never beats ``C1,Acme,SMB,EU``), then the one whose
    (customer_name, segment, region) sorts first: a fixed rule, never file or task order.
    ``copies > 1`` lets the run report the duplicate as a data-quality warning.
    """
    attributes = [F.coalesce(F.trim(name), F.lit("")).alias(name) for name in _ATTRIBUTES]
    blanks = sum((is_blank(F.col(name)).cast("int") for name in _ATTRIBUTES), F.lit(0))
    best = F.min(F.struct(blanks.alias("blanks"), *attributes))
    return (
        customers.filter(~is_blank(F.col("customer_id")))
        .groupBy(F.trim("customer_id").alias("customer_id"))
        .agg(best.alias("attributes"), F.count(F.lit(1)).alias("copies"))
        .select("customer_id", *[F.col(f"attributes.{name}").alias(name) for name in _ATTRIBUTES], "copies")
    )


def with_customer(shipments: DataFrame, customers: DataFrame) -> DataFrame:
    """Add ``customer_name, segment, region`` and ``customer_known`` to each shipment.

    Requires ``customer_id`` on both sides and a dimension with one row per id (the output of
    ``to_customer_dimension``), so the left join cannot fan out. A customer missing from the
    dimension keeps its rows, with ``UNKNOWN`` attributes and ``customer_known`` false.
    The dimension is small: it is broadcast, so the fact side is never shuffled for the join.
    """
    dimension = customers.select("customer_id", *_ATTRIBUTES, F.lit(True).alias("customer_known"))
    joined = shipments.join(F.broadcast(dimension), on="customer_id", how="left")
    return joined.select(
        *[F.col(name) for name in shipments.columns],
        *[F.coalesce(F.col(name), F.lit(UNKNOWN)).alias(name) for name in _ATTRIBUTES],
        F.coalesce(F.col("customer_known"), F.lit(False)).alias("customer_known"),
    )
