"""The raw zone: listing landed shipment files, reading them, and the customer dimension."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.config import join_path
from shipments.errors import InputError, ShipmentsError
from shipments.model.shipments import CORRUPT_COLUMN, CUSTOMER_SCHEMA, RAW_SHIPMENT_FIELDS, RAW_SHIPMENT_SCHEMA
from shipments.storage import fs

log = logging.getLogger(__name__)

RAW_SUFFIXES = {
    "json": (".jsonl", ".json", ".jsonl.gz", ".json.gz"),
    "csv": (".csv", ".csv.gz"),
}


@dataclasses.dataclass(frozen=True, order=True)
class RawFile:
    """One landed file: enough to tell later whether the input of a run has changed."""

    path: str
    size: int
    modified_ms: int
    ingest_date: dt.date


def ingest_folder(raw: str, ingest_date: dt.date) -> str:
    return join_path(raw, "shipments", f"ingest_date={ingest_date.isoformat()}")


def list_raw_files(spark: SparkSession, raw: str, ingest_dates: Sequence[dt.date], raw_format: str) -> list[RawFile]:
    """List the landed shipment files of the given ingest dates.

    The first date's folder must exist (it is the day being processed); later dates are the
    lookback for late arrivals and may not have landed yet. Files whose names start with ``_``
    or ``.`` (``_SUCCESS``, temporary uploads) are not data; any other file with an unexpected
    suffix is logged as skipped so nothing disappears unseen.

    Raises:
        InputError: the raw zone or the first date's folder does not exist, or that folder
            holds no data file.
    """
    shipments_root = join_path(raw, "shipments")
    if not fs.exists(spark, shipments_root):
        raise InputError(f"raw folder {shipments_root} does not exist: check --raw or paths.raw in the config")
    suffixes = RAW_SUFFIXES[raw_format]
    files: list[RawFile] = []
    for position, ingest_date in enumerate(ingest_dates):
        folder = ingest_folder(raw, ingest_date)
        if not fs.exists(spark, folder):
            if position == 0:
                raise InputError(f"no raw data for ingest_date {ingest_date}: {folder} does not exist")
            log.info("lookback folder %s has not landed yet", folder)
            continue
        for status in fs.list_folder(spark, folder):
            if not status.is_file or status.name.startswith(("_", ".")):
                continue
            if not status.name.endswith(suffixes):
                log.warning("skipping %s: not a %s file (%s)", status.path, raw_format, ", ".join(suffixes))
                continue
            files.append(RawFile(status.path, status.size, status.modified_ms, ingest_date))
        if position == 0 and not files:
            # An empty day would replace a good partition with nothing: refuse instead.
            raise InputError(f"no {raw_format} files in {folder} ({', '.join(suffixes)})")
    return sorted(files)


def _with_file_columns(frame: DataFrame) -> DataFrame:
    file_path = F.col("_metadata.file_path")
    return frame.select(
        "*",
        F.regexp_extract(file_path, r"ingest_date=(\d{4}-\d{2}-\d{2})", 1).cast("date").alias("ingest_date"),
        file_path.alias("source_file"),
    )


def read_raw_lines(spark: SparkSession, files: Iterable[RawFile]) -> DataFrame:
    """Each line of the given JSON-lines files: ``value``, ``source_file``, ``ingest_date``.

    Read as text (gzip is decompressed by suffix) so that a line that is not JSON keeps its raw
    text for the quarantine.
    """
    paths = [f.path for f in files]
    return _with_file_columns(spark.read.text(paths)).select("value", "source_file", "ingest_date")


def read_raw_csv(spark: SparkSession, files: Iterable[RawFile]) -> DataFrame:
    """CSV files with a header row: the raw string fields, ``_corrupt_record`` (the line, when
    it cannot be parsed), ``source_file`` and ``ingest_date``.

    Columns are taken by position in contract order.
    """
    paths = [f.path for f in files]
    rows = spark.read.csv(
        paths,
        schema=RAW_SHIPMENT_SCHEMA,
        header=True,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=CORRUPT_COLUMN,
    )
    return _with_file_columns(rows).select("ingest_date", "source_file", CORRUPT_COLUMN, *RAW_SHIPMENT_FIELDS)


def list_customer_files(spark: SparkSession, raw: str) -> list[tuple[str, int, int]]:
    """(path, size, modified ms) of each ``<raw>/customers/*.csv``: part of a run's input.

    Raises:
        InputError: there is no customer file (every customer would turn UNKNOWN).
    """
    folder = join_path(raw, "customers")
    files = sorted(
        (s.path, s.size, s.modified_ms) for s in fs.list_folder(spark, folder) if s.is_file and s.name.endswith(".csv")
    )
    if not files:
        raise InputError(f"no customer dimension: {folder}/*.csv not found")
    return files


def read_customers(spark: SparkSession, raw: str) -> DataFrame:
    """The customer dimension, ``<raw>/customers/*.csv`` with a header row.

    Raises:
        InputError: there is no customer file (every customer would turn UNKNOWN).
    """
    paths = [path for path, _, _ in list_customer_files(spark, raw)]
    return spark.read.csv(paths, schema=CUSTOMER_SCHEMA, header=True, mode="PERMISSIVE")


def unreadable_files(spark: SparkSession, files: Iterable[RawFile]) -> list[tuple[RawFile, str]]:
    """The compressed files among ``files`` that cannot be decompressed to their end (a truncated
    or damaged ``.gz``), each with the decoder's error. Plain text files always read.

    Spark's error for such a file does not name it, and ``ignoreCorruptFiles`` would skip it
    silently; this finds it, through Hadoop's codecs so it works on any file system. It reads
    every compressed file once, so call it only after a read failed.
    """
    jvm = fs.jvm(spark)
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(spark.sparkContext._jsc.hadoopConfiguration())
    unreadable: list[tuple[RawFile, str]] = []
    for raw_file in files:
        hpath, filesystem = fs.hadoop_path(spark, raw_file.path)
        codec = codecs.getCodec(hpath)
        if codec is None:
            continue
        stream = None
        try:
            stream = codec.createInputStream(filesystem.open(hpath))
            stream.transferTo(jvm.java.io.OutputStream.nullOutputStream())
        except Exception as exc:  # Py4JJavaError: the decoder's own error is the useful part
            java = getattr(exc, "java_exception", None)
            unreadable.append((raw_file, str(java.toString()) if java is not None else str(exc)))
        finally:
            if stream is not None:
                # Closing a broken stream may fail again; its error is already recorded.
                with contextlib.suppress(Exception):
                    stream.close()
    return unreadable


def unreadable_input_error(spark: SparkSession, files: Iterable[RawFile], failure: BaseException) -> InputError | None:
    """An ``InputError`` naming the corrupt input file(s) when ``failure`` (a failed run over
    ``files``) can be explained by one; None otherwise."""
    if not isinstance(failure, Exception) or isinstance(failure, ShipmentsError):
        return None
    try:
        unreadable = unreadable_files(spark, files)
    except Exception:  # the probe must never hide the original failure
        log.warning("could not check the input files for corruption", exc_info=True)
        return None
    if not unreadable:
        return None
    named = "; ".join(f"{f.path} ({reason})" for f, reason in unreadable)
    return InputError(
        f"corrupt input file(s), cannot be read to the end: {named}. Nothing was written for this date: "
        f"re-land the file(s) upstream, then rerun the date"
    )
