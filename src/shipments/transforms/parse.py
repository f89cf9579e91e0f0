"""From what a landed file holds to one row per record with the raw string fields.

Every format ends in ``PARSED_COLUMNS``: ``ingest_date, source_file, raw_text`` (the record as
landed, for the quarantine), ``_corrupt_record`` (set when the record cannot be parsed),
``record_format`` (json, csv, parquet), ``op`` (DMS CDC operation, null elsewhere) and every
raw shipment field as a string. ``with_validation`` takes it from there, the same for all.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.model.fields import RAW_SHIPMENT_FIELDS
from shipments.model.layouts import OP_COLUMN
from shipments.model.shipments import CORRUPT_COLUMN, RAW_SHIPMENT_SCHEMA
from shipments.transforms.columns import csv_field, is_blank

PARSED_COLUMNS = ("ingest_date", "source_file", "raw_text", CORRUPT_COLUMN, "record_format", "op", *RAW_SHIPMENT_FIELDS)
# The charge as a JSON number, exactly as written: Spark's JSON parser would hand a number token
# to a string field re-serialised through a double (19.990000000000001 -> "19.99").
_CHARGE_NUMBER = r'"charge_usd"\s*:\s*(-?[0-9][0-9.eE+-]*)'
# DMS writes timestamps as the database holds them: no offset.
_DMS_TIMESTAMP = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$"
_ISO_UTC = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
_WALL_CLOCK = "yyyy-MM-dd HH:mm:ss.SSSSSS"


def parse_json_lines(lines: DataFrame) -> DataFrame:
    """Parse JSON text, one record per row, into the raw string fields.

    Requires ``value`` (the record's text), ``source_file`` and ``ingest_date``. Returns
    ``PARSED_COLUMNS``; ``_corrupt_record`` is set when the text is not a JSON object.
    """
    parsed = F.from_json(
        "value", RAW_SHIPMENT_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN}
    )
    charge_number = F.nullif(F.regexp_extract("raw_text", _CHARGE_NUMBER, 1), F.lit(""))
    return lines.select("ingest_date", "source_file", F.col("value").alias("raw_text"), parsed.alias("fields")).select(
        "ingest_date",
        "source_file",
        "raw_text",
        # A blank line parses to all-null fields without a corrupt record: it is malformed too.
        F.when(is_blank(F.col("raw_text")), F.col("raw_text"))
        .otherwise(F.col(f"fields.{CORRUPT_COLUMN}"))
        .alias(CORRUPT_COLUMN),
        F.lit("json").alias("record_format"),
        F.lit(None).cast("string").alias("op"),
        *[F.col(f"fields.{name}").alias(name) for name in RAW_SHIPMENT_FIELDS if name != "charge_usd"],
        F.coalesce(charge_number, F.col("fields.charge_usd")).alias("charge_usd"),
    )


def split_json_records(text: str | None) -> list[str]:
    """The top-level JSON values of a Firehose object, exactly as written.

    Firehose concatenates records without a delimiter (``{...}{...}``) unless told to add a
    newline; both come out the same. Braces inside strings (``"a}{b"``) and nested objects do
    not split a record. Text that is no JSON object (a stray word, a truncated record) comes out
    as its own piece, so it is quarantined, not lost; a truncated record ends at the line break
    before the next record's ``{``, so it cannot swallow the records after it.
    """
    pieces: list[str] = []
    if not text:
        return pieces
    depth, start, in_string, escaped = 0, None, False, False
    for index, char in enumerate(text):
        if start is None:
            if char.isspace():
                continue
            start = index
        if char == "\n" and (depth > 0 or in_string) and text.startswith("{", index + 1):
            # A record cut short, and the next line opens a new one: keep the stub on its own
            # (a JSON string never holds a raw line break; a pretty-printed record indents).
            pieces.append(text[start:index])
            depth, start, in_string, escaped = 0, None, False, False
            continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                pieces.append(text[start : index + 1])
                start = None
        elif depth == 0 and char == "\n":
            pieces.append(text[start:index])  # a line of garbage between records
            start = None
    if start is not None:
        pieces.append(text[start:])
    return pieces


_split_records = F.udf(split_json_records, T.ArrayType(T.StringType()))


def to_json_records(files: DataFrame) -> DataFrame:
    """One row per JSON record of whole Firehose objects.

    Requires ``value`` (a whole file), ``source_file`` and ``ingest_date``; returns them with
    ``value`` one record. A Python function splits the text: JSON has no regular grammar, and
    only Firehose objects go through it.
    """
    return files.select(F.explode(_split_records("value")).alias("value"), "source_file", "ingest_date")


def parse_csv_rows(rows: DataFrame) -> DataFrame:
    """CSV rows read into the raw string fields (and ``Op`` for DMS CDC files) as
    ``PARSED_COLUMNS``.

    Requires ``ingest_date, source_file, _corrupt_record, _fields`` (every field in file order)
    and the raw string fields. ``raw_text`` is the unparsable record itself, or the row written
    back as RFC 4180 CSV.
    """
    raw_text = F.coalesce(F.col(CORRUPT_COLUMN), F.concat_ws(",", F.transform("_fields", csv_field)))
    op = F.col(OP_COLUMN) if OP_COLUMN in rows.columns else F.lit(None).cast("string")
    return rows.select(
        "ingest_date",
        "source_file",
        raw_text.alias("raw_text"),
        CORRUPT_COLUMN,
        F.lit("csv").alias("record_format"),
        op.alias("op"),
        *RAW_SHIPMENT_FIELDS,
    )


def parse_parquet_rows(rows: DataFrame) -> DataFrame:
    """DMS Parquet rows (typed columns) as ``PARSED_COLUMNS``, every field as the string the
    rules read: UTC timestamps as ISO-8601 UTC, zone-less ones as wall-clock text (read in the
    source zone, as for CSV), numbers as written (a decimal charge exactly).

    Requires ``ingest_date, source_file`` and the shipment columns (``Op`` for CDC files);
    ``raw_text`` is the row as JSON.
    """
    present = [name for name in (OP_COLUMN, *RAW_SHIPMENT_FIELDS) if name in rows.columns]
    types = dict(rows.dtypes)

    def text(name: str) -> Column:
        if name not in types:
            return F.lit(None).cast("string")
        if types[name] == "timestamp_ntz":
            # A wall-clock time without a zone (pandas writes naive datetimes so): written as
            # DMS writes text, so with_source_zone reads it in the configured zone, like CSV.
            return F.date_format(name, _WALL_CLOCK)
        if types[name] == "timestamp":
            return F.date_format(name, _ISO_UTC)
        return F.col(name).cast("string")

    return rows.select(
        "ingest_date",
        "source_file",
        F.to_json(F.struct(*present)).alias("raw_text"),
        F.lit(None).cast("string").alias(CORRUPT_COLUMN),
        F.lit("parquet").alias("record_format"),
        text(OP_COLUMN).alias("op"),
        *[text(name).alias(name) for name in RAW_SHIPMENT_FIELDS],
    )


def with_source_zone(parsed: DataFrame, zone: str) -> DataFrame:
    """Give DMS timestamps (``YYYY-MM-DD HH:MM:SS[.ffffff]``, no offset) their zone: they are
    rewritten as ISO-8601 UTC instants, read as wall-clock times in ``zone``. Anything else is
    left as it is (an ISO timestamp with an offset stays valid, garbage stays invalid).

    Requires ``created_at, updated_at``.
    """

    def zoned(name: str) -> Column:
        text = F.trim(F.col(name))
        local = F.try_to_timestamp(text, F.lit("yyyy-MM-dd HH:mm:ss[.SSSSSSSSS]"))
        instant = F.date_format(F.to_utc_timestamp(local, zone), _ISO_UTC)
        return F.when(text.rlike(_DMS_TIMESTAMP) & local.isNotNull(), instant).otherwise(F.col(name))

    return parsed.withColumns({"created_at": zoned("created_at"), "updated_at": zoned("updated_at")})
