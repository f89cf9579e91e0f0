"""``Column -> Column`` helpers shared by the batch and streaming transforms."""

from __future__ import annotations

import datetime as dt

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
    # try_: null for bad text under ANSI mode too (plain to_timestamp raises there).
    return F.try_to_timestamp(F.trim(col), F.lit(ISO_TIMESTAMP_PATTERN))


def first_failure(*checks: tuple[Column, str | Column]) -> Column:
    """The reason of the first check whose condition holds, or null when none does."""
    return F.coalesce(
        *[F.when(condition, reason if isinstance(reason, Column) else F.lit(reason)) for condition, reason in checks]
    )


def timestamp_literal(instant: dt.datetime) -> Column:
    """A timestamp literal for a time-zone-aware ``datetime``.

    Built from epoch microseconds: a naive ``datetime`` would be read in the Python process's
    local zone by ``F.lit``, whatever the session zone says.
    """
    return F.timestamp_micros(F.lit(epoch_micros(instant)))


def epoch_micros(instant: dt.datetime) -> int:
    """Microseconds since 1970-01-01 UTC of a time-zone-aware ``datetime``, exactly.

    Raises:
        ValueError: ``instant`` is naive (its zone would be a guess).
    """
    if instant.tzinfo is None:
        raise ValueError(f"expected a time-zone-aware datetime, got naive {instant!r}")
    return (instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def csv_field(value: Column) -> Column:
    """A field as RFC 4180 writes it: quoted (with quotes doubled) when it holds a comma, a quote
    or a line break; an empty string for null."""
    needs_quotes = value.rlike('[",\r\n]')
    quoted = F.concat(F.lit('"'), F.regexp_replace(value, '"', '""'), F.lit('"'))
    return F.when(value.isNull(), F.lit("")).when(needs_quotes, quoted).otherwise(value)


# What Spark can cast to a double: a decimal or scientific number, or NaN / Infinity.
_DOUBLE_TEXT = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))$"


def to_double(text: Column) -> Column:
    """``text`` as a double, null when it is not a number.

    The cast is guarded rather than left to fail: under ANSI mode (Spark 4's default, and a
    setting a platform may turn on) a bad cast raises instead of giving null, which would abort
    a run that should quarantine one line.
    """
    trimmed = F.trim(text)
    return F.when(trimmed.rlike(_DOUBLE_TEXT), trimmed.cast("double"))
