"""Row rules (``not_null``, ``accepted_values``, ``range``) as Spark columns.

A rule is a boolean column that is true where a row breaks it, and never null: a null value
breaks ``not_null`` only (``accepted_values`` and ``range`` leave nulls to ``not_null``). Values
are compared through guarded casts, so a rule never raises under ANSI mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shipments.errors import ConfigError
from shipments.ops_config import RECORDS, ROW_RULES, CheckSpec

QUARANTINE_PREFIX = "check:"


def row_rules(specs: Sequence[CheckSpec], table: str, severities: Sequence[str]) -> list[CheckSpec]:
    """The row rules declared on ``table`` with one of ``severities``."""
    return [s for s in specs if s.check in ROW_RULES and s.table == table and s.severity in severities]


def broken(spec: CheckSpec, frame: DataFrame) -> Column:
    """True where a row of ``frame`` breaks the row rule ``spec``.

    Raises:
        ConfigError: the rule names a column the table does not have.
    """
    if spec.column not in frame.columns:
        raise ConfigError(
            f"quality check {spec.name!r}: {spec.table} has no column {spec.column!r} "
            f"(it has {', '.join(sorted(c for c in frame.columns if not c.startswith('_')))})"
        )
    column = F.col(spec.column)
    # The column name matched [a-z][a-z0-9_]* when the config was loaded: safe inside an expression.
    as_text = F.trim(F.expr(f"try_cast(`{spec.column}` AS STRING)"))
    if spec.check == "not_null":
        return column.isNull() | (as_text == F.lit(""))
    if spec.check == "accepted_values":
        return F.coalesce(~as_text.isin(*spec.values), F.lit(False))
    number = F.expr(f"try_cast(`{spec.column}` AS DOUBLE)")
    outside = F.lit(False)
    if spec.min is not None:
        outside = outside | (number < F.lit(float(spec.min)))
    if spec.max is not None:
        outside = outside | (number > F.lit(float(spec.max)))
    # A value that is there but is no number is outside every range.
    return F.coalesce(outside | (column.isNotNull() & number.isNull()), F.lit(False))


def with_quarantine_rules(validated: DataFrame, specs: Sequence[CheckSpec]) -> DataFrame:
    """Give valid records that break a ``quarantine`` row rule on ``shipments`` the reason
    ``check:<name>`` (the first such rule), so they go to quarantine like any invalid record."""
    rules = row_rules(specs, RECORDS, ("quarantine",))
    if not rules:
        return validated
    reason = F.col("reason")
    for spec in rules:
        reason = F.when(reason.isNull() & broken(spec, validated), F.lit(QUARANTINE_PREFIX + spec.name)).otherwise(
            reason
        )
    return validated.withColumn("reason", reason)


def rule_counts(specs: Sequence[CheckSpec], frame: DataFrame, where: Column) -> list[Column]:
    """One aggregate per rule: the rows of ``frame`` matching ``where`` that break it, as
    ``rule_<name>``."""
    return [F.count(F.when(where & broken(spec, frame), True)).alias(f"rule_{spec.name}") for spec in specs]
