"""Spark settings every run relies on, as plain data: the session builder applies them, and the
cloud deploy passes the same ones to EMR Serverless and Glue jobs (no Spark import here)."""

from __future__ import annotations

# ship_date is the UTC calendar date, so the session zone must be UTC whatever the platform or
# config says; timestamps the strict ISO-8601 pattern rejects are invalid records, not errors.
REQUIRED_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}
DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
