"""How many records the landed files hold, counted without the readers the job parses them with.

The daily job's conservation identity starts from what it read. Counted from the parsed rows, a
reader that drops or merges records (Spark's CSV reader skipping a line, an unterminated quote
swallowing the rest of a file, a bug in our own read) would shrink ``read`` with them and never
break the identity. These counts come from the files by other means:

- JSON lines: the text lines, as Hadoop's line reader cuts them (``\\n``, ``\\r\\n`` or ``\\r``),
  blank ones included: the job reads every line as a record and quarantines a blank one.
- CSV: the records as RFC 4180 defines them: the non-empty lines (a line of blanks is a record,
  an empty one is not) once quoted fields are taken out, less the header row. Only a quoted
  field can hold a line break, so a file without any ``"`` is counted line by line, streaming;
  a file with quotes is read whole into one task (Spark's ``wholetext``: it must fit in a task's
  memory and below 2 GB) and its quoted fields (a ``"`` that opens a field up to its closing
  ``"``, doubled quotes inside) are taken out before the lines are counted. An unterminated
  quote is not taken out, so its lines still count: the run then fails rather than losing them.
- Parquet: the rows of each file.
- JSON records (Firehose objects): not counted. Cutting ``{...}{...}`` into records is parsing
  (JSON has no regular grammar), so a second count would repeat the job's own splitter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from shipments.model.layouts import CSV_NO_HEADER, CSV_WITH_HEADER, JSON_LINES, PARQUET
from shipments.storage import fs

# A quoted field: a quote that opens a field (at the start of the text, after a comma or a line
# break), its text with doubled quotes, the closing quote. Possessive quantifiers keep Java's
# regex engine from recursing once per character (a long field would overflow its stack).
_QUOTED_FIELD = r'(\A|[,\r\n])"[^"]*+(?:""[^"]*+)*+"'
_LINE_BREAK = r"\r\n|\n|\r"


def file_keys(spark: SparkSession, paths: Iterable[str]) -> dict[str, str]:
    """Path -> the name Spark gives that file in ``_metadata.file_path`` (its URI,
    percent-encoded), which the job's readers put in ``source_file``. Hadoop's ``Path`` class is
    looked up once for all: the path per file (a class lookup and a FileSystem call, several Py4J
    round trips) cost 0.8 ms a file."""
    path_class = fs.jvm(spark).org.apache.hadoop.fs.Path
    return {path: str(path_class(path).toUri().toString()) for path in paths}


def count_records(spark: SparkSession, paths: Sequence[str], file_format: str) -> dict[str, int] | None:
    """The records each file of ``paths`` holds, by ``file_keys``, counted as the module says; None
    for a format that has no count independent of its parser (JSON records).

    ``file_format`` is one of ``shipments.model.layouts``' formats.
    """
    if file_format not in (JSON_LINES, CSV_WITH_HEADER, CSV_NO_HEADER, PARQUET):
        return None
    keys = file_keys(spark, paths)
    counts = dict.fromkeys(keys.values(), 0)
    if not paths:
        return counts
    literal = [fs.literal(path) for path in paths]
    file_path = F.col("_metadata.file_path").alias("file")
    if file_format == PARQUET:
        rows = spark.read.parquet(*literal).select(file_path).groupBy("file").count().collect()
        counts.update({row["file"]: int(row["count"]) for row in rows})
        return counts
    lines = spark.read.text(literal).select(file_path, "value")
    if file_format == JSON_LINES:
        counts.update({row["file"]: int(row["count"]) for row in lines.groupBy("file").count().collect()})
        return counts
    per_file = lines.groupBy("file").agg(
        F.count(F.when(F.col("value") != "", True)).alias("records"),
        F.max(F.col("value").contains('"')).alias("quoted"),
    )
    quoted: set[str] = set()
    for row in per_file.collect():
        counts[row["file"]] = int(row["records"])
        if row["quoted"]:
            quoted.add(row["file"])
    if quoted:
        with_quotes = [fs.literal(path) for path in paths if keys[path] in quoted]
        whole = spark.read.text(with_quotes, wholetext=True).select(file_path, _csv_records(F.col("value")))
        counts.update({row["file"]: int(row["records"]) for row in whole.collect()})
    if file_format == CSV_WITH_HEADER:
        counts = {key: max(records - 1, 0) for key, records in counts.items()}
    return counts


def _csv_records(text: Column) -> Column:
    """The records in a whole CSV file's ``text``: its non-empty lines once quoted fields (and
    the line breaks inside them) are taken out."""
    logical_lines = F.split(F.regexp_replace(text, _QUOTED_FIELD, "$1Q"), _LINE_BREAK)
    return F.size(F.filter(logical_lines, lambda line: line != F.lit(""))).alias("records")
