"""``Column -> Column`` helpers shared by the batch and streaming transforms."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# ISO-8601 with a mandatory offset (`Z` or `+hh:mm`), optional fraction of a second.
ISO_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"


def is_blank(col: Column) -> Column:
    """True when the value is null, empty or only white space."""
    return col.isNull() | (F.trim(col) == "")


def parse_iso_timestamp(col: Column) -> Column:
    """Parse an ISO-8601 timestamp that carries its offset; null when it does not parse.

    A timestamp without an offset is rejected rather than read in some default zone: that
    guess is what moves records across day boundaries.
    """
    return F.to_timestamp(F.trim(col), ISO_TIMESTAMP_PATTERN)


def first_failure(*checks: tuple[Column, str]) -> Column:
    """The reason of the first check whose condition holds, or null when none does."""
    return F.coalesce(*[F.when(condition, F.lit(reason)) for condition, reason in checks])
