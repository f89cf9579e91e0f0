"""How DMS and Firehose (and our own default) lay out ``<raw>/shipments/``: the contract's
section 1.4, as declarations. ``storage.raw`` lists and reads a layout; nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from shipments.model.fields import RAW_SHIPMENT_FIELDS

DEFAULT = "default"
DMS_CSV = "dms-csv"
DMS_PARQUET = "dms-parquet"
FIREHOSE = "firehose"
LAYOUTS = (DEFAULT, DMS_CSV, DMS_PARQUET, FIREHOSE)

# Formats a data file can have.
JSON_LINES = "json-lines"
CSV_WITH_HEADER = "csv-header"
CSV_NO_HEADER = "csv"
PARQUET = "parquet"
JSON_RECORDS = "json-records"  # concatenated ({...}{...}) or one per line

# DMS CDC files carry the operation first: I(nsert), U(pdate), D(elete).
OP_COLUMN = "Op"
DELETE = "D"
CDC_OPERATIONS = ("I", "U", DELETE)
DMS_FULL_LOAD_COLUMNS = RAW_SHIPMENT_FIELDS
DMS_CDC_COLUMNS = (OP_COLUMN, *RAW_SHIPMENT_FIELDS)

# DMS's DatePartitionSequence values we read, as strftime patterns of the date folder.
DMS_DATE_FOLDERS = {
    "YYYY/MM/DD": "%Y/%m/%d",
    "YYYYMMDD": "%Y%m%d",
    "YYYY-MM-DD": "%Y-%m-%d",
}


@dataclasses.dataclass(frozen=True)
class FileKind:
    """One kind of data file of a layout: how its name looks and what it holds."""

    name: str
    pattern: re.Pattern[str]
    format: str
    columns: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Layout:
    """A layout: the folders an ingest date lands in and the kinds of file they hold.

    ``folders(day)`` gives the folders (relative to ``<raw>/shipments``) of one ingest date;
    a file whose name matches none of ``kinds`` is rejected with a reason, never skipped
    (names starting with ``_`` or ``.`` are markers, not data).
    """

    name: str
    kinds: tuple[FileKind, ...]
    date_folder: str = "ingest_date=%Y-%m-%d"
    hourly: bool = False

    def folders(self, day: dt.date) -> list[str]:
        base = day.strftime(self.date_folder)
        return [f"{base}/{hour:02d}" for hour in range(24)] if self.hourly else [base]

    def kind_of(self, file_name: str) -> FileKind | None:
        return next((kind for kind in self.kinds if kind.pattern.fullmatch(file_name)), None)


def layout(name: str, *, raw_format: str = "json", dms_date_folder: str = "YYYY/MM/DD") -> Layout:
    """The declared layout ``name`` (``raw_format`` picks JSON lines or CSV with a header for
    the default layout; ``dms_date_folder`` the DMS date folders)."""
    kinds: tuple[FileKind, ...]
    if name == DEFAULT:
        if raw_format == "csv":
            kinds = (FileKind("csv", re.compile(r".+\.csv(\.gz)?"), CSV_WITH_HEADER, RAW_SHIPMENT_FIELDS),)
        else:
            kinds = (FileKind("jsonl", re.compile(r".+\.jsonl?(\.gz)?"), JSON_LINES),)
        return Layout(DEFAULT, kinds)
    if name in (DMS_CSV, DMS_PARQUET):
        suffix, file_format = (r"\.csv(\.gz)?", CSV_NO_HEADER) if name == DMS_CSV else (r"\.parquet", PARQUET)
        kinds = (
            FileKind("full-load", re.compile(r"LOAD[0-9A-F]{8}" + suffix), file_format, DMS_FULL_LOAD_COLUMNS),
            FileKind("cdc", re.compile(r"[0-9]{8}-[0-9]{9,}" + suffix), file_format, DMS_CDC_COLUMNS),
        )
        return Layout(name, kinds, date_folder=DMS_DATE_FOLDERS[dms_date_folder])
    if name == FIREHOSE:
        stream_object = r".+-[0-9]+-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9a-fA-F-]{36}(\.gz)?"
        return Layout(FIREHOSE, (FileKind("firehose", re.compile(stream_object), JSON_RECORDS),), "%Y/%m/%d", True)
    raise ValueError(f"unknown layout {name!r}")
