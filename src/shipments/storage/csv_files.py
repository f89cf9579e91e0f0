"""CSV as RFC 4180 writes it (Excel, pandas, Python's csv module, DMS), columns found by name.

Spark's defaults do not read such files right: its escape character is a backslash (a doubled
quote ``""`` inside a quoted field comes out wrong), a line break inside quotes splits the
record unless ``multiLine`` is on, and a schema is applied by position, so a reordered header
or an extra column (DMS's ``Op``) silently shifts every field. Here each file's header is read
first; files are grouped by header and read with their own column order.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.errors import InputError
from shipments.model.shipments import CORRUPT_COLUMN
from shipments.storage import fs

# Every field of a row in file order, for the quarantine's raw text.
FIELDS_COLUMN = "_fields"
_RFC_4180 = {
    "quote": '"',
    "escape": '"',
    "multiLine": "true",
    "encoding": "UTF-8",
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT_COLUMN,
}


def header_of(spark: SparkSession, path: str) -> tuple[str, ...]:
    """The column names in the header row of a CSV file, trimmed and lower-cased.

    Raises:
        InputError: the file is empty.
    """
    line = fs.read_first_line(spark, path)
    if not line:
        raise InputError(f"CSV file {path} is empty: expected a header row")
    return tuple(name.strip().lower() for name in next(csv.reader([line])))


def read_csv(
    spark: SparkSession,
    paths: Sequence[str],
    columns: Sequence[str],
    *,
    required: Sequence[str],
    what: str,
) -> DataFrame:
    """Rows of CSV files with a header row: ``columns`` found by header name (case and white
    space ignored; a missing optional column is null), ``_fields`` (every field in file order),
    ``_corrupt_record`` (the record's text when it cannot be parsed, e.g. the wrong number of
    fields) and ``source_file``. All values are strings; extra columns are ignored.

    Raises:
        InputError: a file is empty, or its header lacks a ``required`` column (named).
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        groups.setdefault(header_of(spark, path), []).append(path)
    frames = []
    for header, group in groups.items():
        missing = [name for name in required if name not in header]
        if missing:
            raise InputError(
                f"{what} file {group[0]} lacks the column(s) {', '.join(missing)} in its header "
                f"({','.join(header)}); expected {','.join(required)}: fix the export upstream"
            )
        frames.append(_read_group(spark, group, header, columns))
    return functools.reduce(DataFrame.unionByName, frames)


def _read_group(spark: SparkSession, paths: Sequence[str], header: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """Files sharing one header, read with a schema in that header's order."""
    # Positional names: a header may hold blanks, duplicates or names Spark cannot take.
    positional = [f"_c{i}" for i in range(len(header))]
    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in positional] + [T.StructField(CORRUPT_COLUMN, T.StringType())]
    )
    rows = spark.read.csv([fs.literal(p) for p in paths], schema=schema, header=True, enforceSchema=True, **_RFC_4180)
    by_name = {name: positional[i] for i, name in reversed(list(enumerate(header)))}  # first of a duplicate wins
    return rows.select(
        *[(F.col(by_name[name]) if name in by_name else F.lit(None).cast("string")).alias(name) for name in columns],
        F.array(*[F.col(name) for name in positional]).alias(FIELDS_COLUMN),
        CORRUPT_COLUMN,
        F.col("_metadata.file_path").alias("source_file"),
    )


def read_csv_positional(spark: SparkSession, paths: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """Rows of header-less CSV files (as DMS writes them) whose fields are ``columns`` in that
    order: the columns, ``_fields``, ``_corrupt_record`` (set when a row has another number of
    fields than declared) and ``source_file``. No row is taken for a header."""
    positional = [f"_c{i}" for i in range(len(columns))]
    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in positional] + [T.StructField(CORRUPT_COLUMN, T.StringType())]
    )
    rows = spark.read.csv([fs.literal(p) for p in paths], schema=schema, header=False, **_RFC_4180)
    return rows.select(
        *[F.col(position).alias(name) for position, name in zip(positional, columns, strict=True)],
        F.array(*[F.col(name) for name in positional]).alias(FIELDS_COLUMN),
        CORRUPT_COLUMN,
        F.col("_metadata.file_path").alias("source_file"),
    )
