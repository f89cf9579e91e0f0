"""Daily totals per customer."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shipments.model.shipments import CHARGE_TYPE
from shipments.model.tables import DAILY_TOTALS_SCHEMA

# Weights are summed as exact decimals and only then turned into a double, so the total does not
# depend on the order Spark happens to add partial sums in, and reruns are bit-for-bit equal.
_WEIGHT_SUM_TYPE = "decimal(38,9)"


def to_daily_totals(shipments: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """One row per (ship_date, customer_id) (per ``by`` + those: a backfill pass totals each run
    date apart) with counts, weight and charge totals.

    Requires latest shipment versions enriched with ``customer_name, segment, region,
    customer_known``. Returns the ``shipment_daily_totals`` columns plus ``customer_known``
    (kept for the run report, dropped before writing). ``total_charge_usd`` is null when the
    sum overflows decimal(18,2); the job refuses to write such a row.
    """
    totals = shipments.groupBy(*by, "ship_date", "customer_id", "customer_name", "segment", "region").agg(
        F.count(F.lit(1)).alias("shipment_count"),
        F.count(F.when(F.col("status") == "CANCELLED", True)).alias("cancelled_count"),
        F.sum(F.col("weight_kg").cast(_WEIGHT_SUM_TYPE)).cast("double").alias("total_weight_kg"),
        _fits_charge(F.try_sum("charge_usd")).alias("total_charge_usd"),
        F.max("customer_known").alias("customer_known"),
    )
    return totals.select(*by, *DAILY_TOTALS_SCHEMA.fieldNames(), "customer_known")


def _fits_charge(total: Column) -> Column:
    """``total`` as decimal(18,2), or null when it does not fit (the job refuses to write such
    a row). Guarded rather than cast: under ANSI mode an overflowing cast or sum raises."""
    limit = F.lit(10 ** (CHARGE_TYPE.precision - CHARGE_TYPE.scale))
    return F.when(F.abs(total) < limit, total.cast(CHARGE_TYPE))
