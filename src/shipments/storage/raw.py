"""The raw zone: listing landed shipment files, reading them, and the customer dimension."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import logging
from collections.abc import Iterable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.config import join_path
from shipments.errors import InputError, ShipmentsError
from shipments.model.layouts import CSV_NO_HEADER, CSV_WITH_HEADER, JSON_LINES, JSON_RECORDS, PARQUET, FileKind, Layout
from shipments.model.shipments import CUSTOMER_FIELDS, REQUIRED_SHIPMENT_FIELDS
from shipments.storage import csv_files, driver_rows, fs, landed

log = logging.getLogger(__name__)

# Each data file's ingest date, by the name Spark reads it under (``landed.file_keys``).
_FILE_DATES = T.StructType([T.StructField("source_file", T.StringType()), T.StructField("ingest_date", T.DateType())])


@dataclasses.dataclass(frozen=True, order=True)
class RawFile:
    """One landed data file: enough to read it and to tell later whether a run's input changed."""

    path: str
    size: int
    modified_ms: int
    ingest_date: dt.date
    checksum: str | None = None
    kind: str = ""  # the layout's FileKind name


@dataclasses.dataclass(frozen=True, order=True)
class RejectedFile:
    """A file in a layout's folders that is no data file of that layout, and why."""

    path: str
    ingest_date: dt.date
    reason: str


@dataclasses.dataclass(frozen=True)
class RawListing:
    """What landed for a run: the data files, and the files rejected with a reason."""

    files: list[RawFile]
    rejected: list[RejectedFile]


def day_folders(raw: str, layout: Layout, ingest_date: dt.date) -> list[str]:
    """The folders (URIs or paths) an ingest date of ``layout`` lands in."""
    return [join_path(raw, "shipments", folder) for folder in layout.folders(ingest_date)]


def list_raw_files(
    spark: SparkSession,
    raw: str,
    ingest_dates: Sequence[dt.date],
    layout: Layout,
    *,
    required: dt.date | None,
    checksums: bool = True,
) -> RawListing:
    """List the landed shipment files of the given ingest dates in ``layout``.

    The ``required`` date must hold data (it is the day being processed); the others (the
    lookbehind and lookback for early and late arrivals) may not have landed. Names starting
    with ``_`` or ``.`` (``_SUCCESS``, temporary uploads) are markers, not data; any other file
    that is no data file of the layout is rejected with a reason, never skipped unseen.

    ``checksums`` (part of an input fingerprint) costs a read of each local file: reconcile,
    which only needs the listing, turns it off.

    Raises:
        InputError: the raw zone does not exist, or the required date holds no data file.
    """
    shipments_root = join_path(raw, "shipments")
    if not fs.exists(spark, shipments_root):
        raise InputError(f"raw folder {shipments_root} does not exist: check --raw or paths.raw in the config")
    files: list[RawFile] = []
    rejected: list[RejectedFile] = []
    for ingest_date in ingest_dates:
        landed = 0
        if layout.hourly:
            rejected += _strangers_beside_hours(
                spark, join_path(raw, "shipments", ingest_date.strftime(layout.date_folder)), ingest_date, layout
            )
        for folder in day_folders(raw, layout, ingest_date):
            for status in fs.list_folder(spark, folder):
                if status.name.startswith(("_", ".")):
                    continue
                kind = layout.kind_of(status.name) if status.is_file else None
                if kind is None:
                    what = "file" if status.is_file else "folder"
                    reason = f"unrecognized_file:not a {layout.name} data {what}"
                    rejected.append(RejectedFile(status.path, ingest_date, reason))
                    continue
                checksum = fs.content_checksum(spark, status.path) if checksums else None
                files.append(RawFile(status.path, status.size, status.modified_ms, ingest_date, checksum, kind.name))
                landed += 1
        if ingest_date == required and not landed:
            # An empty day would replace a good partition with nothing: refuse instead.
            where = ", ".join(day_folders(raw, layout, ingest_date)[:1]) + (" (and its hours)" if layout.hourly else "")
            raise InputError(f"no {layout.name} data files for ingest date {ingest_date} in {where}")
        if not landed:
            log.info("ingest date %s has no data (yet) in layout %s", ingest_date, layout.name)
    return RawListing(sorted(files), sorted(rejected))


def _strangers_beside_hours(spark: SparkSession, day: str, ingest_date: dt.date, layout: Layout) -> list[RejectedFile]:
    """What lies in an hourly layout's day folder besides its hour folders 00..23."""
    hours = {f"{hour:02d}" for hour in range(24)}
    return [
        RejectedFile(status.path, ingest_date, f"unrecognized_file:not in an hour folder of {layout.name}")
        for status in fs.list_folder(spark, day)
        if not status.name.startswith(("_", ".")) and (status.is_file or status.name not in hours)
    ]


def read_raw_files(spark: SparkSession, files: Sequence[RawFile], kind: FileKind) -> DataFrame:
    """Files of one kind as Spark reads their format, with ``source_file`` and ``ingest_date``.

    JSON lines: ``value`` per line. JSON records: ``value``, the whole file (split into records
    by a transform). CSV: the kind's columns (by header name, or by position without a header),
    ``_fields`` and ``_corrupt_record``. Parquet: the file's own typed columns. File names are
    read literally, never as glob patterns.

    Text and CSV files are read in one scan (CSV with a header: one per distinct header), so
    Spark packs small files into few tasks (a scan per ingest folder made a task per file: a
    30-date backfill pass of small folders ran 62 tasks for every job over its records). Each
    record's ``ingest_date`` is its file's in the listing, joined on the file's name
    (``landed.file_keys``); a record of a file the listing does not name would get none, and
    the measurement refuses it (``measure.check_placed``). Parquet is read per ingest folder,
    as before: a Parquet read takes its schema from one file.
    """
    files = list({f.path: f for f in files}.values())  # a path twice would join its records twice
    if kind.format == PARQUET:
        by_date = itertools.groupby(sorted(files, key=lambda f: f.ingest_date), lambda f: f.ingest_date)
        frames = [
            _read_format(spark, [f.path for f in group], kind).withColumn("ingest_date", F.lit(ingest_date))
            for ingest_date, group in by_date
        ]
        return functools.reduce(DataFrame.unionByName, frames)
    keys = landed.file_keys(spark, (f.path for f in files))
    folders = driver_rows.to_frame(spark, [(keys[f.path], f.ingest_date) for f in files], _FILE_DATES)
    return _read_format(spark, [f.path for f in files], kind).join(F.broadcast(folders), "source_file", "left")


def _read_format(spark: SparkSession, paths: list[str], kind: FileKind) -> DataFrame:
    literal = [fs.literal(p) for p in paths]
    source_file = F.col("_metadata.file_path").alias("source_file")
    if kind.format == JSON_LINES:
        return spark.read.text(literal).select("value", source_file)
    if kind.format == JSON_RECORDS:
        return spark.read.text(literal, wholetext=True).select("value", source_file)
    if kind.format == CSV_WITH_HEADER:
        required = [name for name in kind.columns if name in REQUIRED_SHIPMENT_FIELDS]
        return csv_files.read_csv(spark, paths, kind.columns, required=required, what="shipments")
    if kind.format == CSV_NO_HEADER:
        return csv_files.read_csv_positional(spark, paths, kind.columns)
    if kind.format == PARQUET:
        return spark.read.parquet(*literal).select("*", source_file)
    raise ValueError(f"unknown file format {kind.format!r}")


def list_customer_files(spark: SparkSession, raw: str) -> list[tuple[str, int, int, str | None]]:
    """(path, size, modified ms, content checksum) of each ``<raw>/customers/*.csv``: part of a
    run's input.

    Raises:
        InputError: there is no customer file (every customer would turn UNKNOWN).
    """
    folder = join_path(raw, "customers")
    files = sorted(
        (s.path, s.size, s.modified_ms, fs.content_checksum(spark, s.path))
        for s in fs.list_folder(spark, folder)
        if s.is_file and s.name.endswith(".csv")
    )
    if not files:
        raise InputError(f"no customer dimension: {folder}/*.csv not found")
    return files


def read_customers(spark: SparkSession, raw: str) -> DataFrame:
    """The customer dimension, ``<raw>/customers/*.csv`` with a header row (RFC 4180, columns by
    header name, extra columns such as DMS's ``Op`` ignored).

    Raises:
        InputError: there is no customer file (every customer would turn UNKNOWN), or one lacks
            a required column (named).
    """
    paths = [path for path, *_ in list_customer_files(spark, raw)]
    rows = csv_files.read_csv(spark, paths, CUSTOMER_FIELDS, required=CUSTOMER_FIELDS, what="customer dimension")
    return rows.select(*CUSTOMER_FIELDS)


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
