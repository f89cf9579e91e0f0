"""Write a day of generated shipment lines the way each layout's service lands them.

The generator makes JSON lines; this writes the same logical records as DMS (header-less CSV
or Parquet, full load then CDC with ``Op``, timestamps without an offset) or Firehose (hour
folders, extension-less objects of concatenated records) would, so demos and tests read real
shapes. What a format cannot hold is left out and said so: a blank line (no CSV or Firehose
record), a value of the wrong type in a typed Parquet column.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

from shipments.errors import InputError
from shipments.model.fields import RAW_SHIPMENT_FIELDS
from shipments.model.layouts import DEFAULT, DMS_CSV, DMS_PARQUET, FIREHOSE, OP_COLUMN

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
FIREHOSE_STREAM = "shipments-stream"


def write_day(
    out: Path,
    layout: str,
    day: dt.date,
    lines: Sequence[str],
    rng: random.Random,
    *,
    gzip_share: float,
    seen: set[str],
    deletes: Sequence[str] = (),
) -> int:
    """Write ``lines`` (JSON text) landed on ``day`` under ``out/shipments`` in ``layout``;
    returns how many records were written. ``seen`` holds the shipment ids landed on earlier
    days (DMS: Op I the first time, U after). ``deletes`` are lines DMS lands as Op D."""
    shipments = out / "shipments"
    if layout == DEFAULT:
        return _write_json_lines(shipments / f"ingest_date={day.isoformat()}", list(lines), rng, gzip_share)
    if layout == FIREHOSE:
        return _write_firehose(shipments / day.strftime("%Y/%m/%d"), day, list(lines), rng, gzip_share)
    if layout in (DMS_CSV, DMS_PARQUET):
        return _write_dms(shipments / day.strftime("%Y/%m/%d"), layout, day, lines, rng, seen, deletes)
    raise ValueError(f"unknown layout {layout!r}")


def _write_json_lines(folder: Path, lines: list[str], rng: random.Random, gzip_share: float) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng.shuffle(lines)
    cut = int(len(lines) * (1 - gzip_share))
    (folder / "part-00000.jsonl").write_text("".join(f"{line}\n" for line in lines[:cut]))
    if cut < len(lines):
        with gzip.open(folder / "part-00001.jsonl.gz", "wt", compresslevel=1) as handle:
            handle.write("".join(f"{line}\n" for line in lines[cut:]))
    return len(lines)


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _write_firehose(folder: Path, day: dt.date, lines: list[str], rng: random.Random, gzip_share: float) -> int:
    """Four objects in four hour folders: two with records concatenated without a delimiter
    (only complete JSON objects: a broken record would run into the next one, as it would in a
    real stream), two with one record per line (where the broken records go)."""
    records = [line for line in lines if line.strip()]
    rng.shuffle(records)
    whole = [line for line in records if _is_object(line)]
    broken = [line for line in records if not _is_object(line)]
    quarter = len(whole) // 4
    parts = [whole[:quarter], whole[quarter : 2 * quarter], whole[2 * quarter : 3 * quarter] + broken]
    parts.append(whole[3 * quarter :])
    for index, (hour, part) in enumerate(zip((0, 6, 12, 23), parts, strict=True)):
        stamp = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)))
        name = f"{FIREHOSE_STREAM}-1-{stamp:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=rng.getrandbits(128))}"
        concatenated = index % 2 == 1
        text = "".join(part) if concatenated else "".join(f"{line}\n" for line in part)
        target = folder / f"{hour:02d}"
        target.mkdir(parents=True, exist_ok=True)
        if rng.random() < gzip_share:
            with gzip.open(target / f"{name}.gz", "wt", compresslevel=1) as handle:
                handle.write(text)
        else:
            (target / name).write_text(text)
    return len(records)


def _dms_timestamp(value: object) -> object:
    """As a database holds it: UTC, no offset (anything unparseable stays as it was)."""
    if isinstance(value, str) and _ISO.fullmatch(value):
        try:
            instant = dt.datetime.fromisoformat(value).astimezone(dt.UTC)
        except ValueError:  # 2026-13-45: shaped like a timestamp, but no date
            return value
        return instant.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _dms_row(line: str) -> list[object] | None:
    """The nine columns of a JSON line (numbers as written), or None when it is no object."""
    try:
        record = json.loads(line, parse_float=str, parse_int=str)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    row = [record.get(name) for name in RAW_SHIPMENT_FIELDS]
    row[2], row[3] = _dms_timestamp(row[2]), _dms_timestamp(row[3])
    return row


def _write_dms(
    folder: Path,
    layout: str,
    day: dt.date,
    lines: Sequence[str],
    rng: random.Random,
    seen: set[str],
    deletes: Sequence[str],
) -> int:
    """The first day is DMS's full load (``LOAD00000001``, no ``Op``); later days are CDC files
    (``YYYYMMDD-HHMMSSfff``, ``Op`` first)."""
    folder.mkdir(parents=True, exist_ok=True)
    full_load = not seen
    rows: list[list[object]] = []
    broken: list[str] = []
    for line in lines:
        row = _dms_row(line)
        if row is None:
            if line.strip():
                broken.append(line)
            continue
        sid = str(row[0])
        op = "U" if sid in seen else "I"
        rows.append(row if full_load else [op, *row])
    for line in deletes:
        row = _dms_row(line)
        if row is not None and not full_load:
            rows.append(["D", *row])
    for row in rows:
        seen.add(str(row[0] if full_load else row[1]))
    rng.shuffle(rows)
    half = len(rows) // 2
    if full_load:
        batches = [("LOAD00000001", rows[:half]), ("LOAD00000002", rows[half:])]
    else:
        stamps = sorted(dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60))) for _ in range(2))
        batches = [
            (f"{stamp:%Y%m%d-%H%M%S}{rng.randrange(1000):03d}", part)
            for stamp, part in zip(stamps, (rows[:half], rows[half:]), strict=True)
        ]
    columns = list(RAW_SHIPMENT_FIELDS) if full_load else [OP_COLUMN, *RAW_SHIPMENT_FIELDS]
    written = 0
    for name, part in batches:
        if layout == DMS_CSV:
            written += _write_dms_csv(folder / f"{name}.csv", part, broken if name == batches[-1][0] else [])
        else:
            written += _write_dms_parquet(folder / f"{name}.parquet", columns, part)
    return written


def _write_dms_csv(path: Path, rows: list[list[object]], broken: list[str]) -> int:
    """RFC 4180, no header (DMS's default); a broken line becomes a row of the wrong width."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    for line in broken:
        writer.writerow([line, "broken"])
    path.write_text(buffer.getvalue())
    return len(rows) + len(broken)


def _write_dms_parquet(path: Path, columns: list[str], rows: list[list[object]]) -> int:
    """Typed columns as DMS writes them: timestamps (UTC), weight as double, charge as text.
    Rows a typed column cannot hold (a timestamp or weight that is not one) are left out."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("writing the dms-parquet layout needs pyarrow: pip install 'shipments[dev]'") from None

    kept = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        try:
            for name in ("created_at", "updated_at"):
                if values[name] is not None:
                    values[name] = dt.datetime.strptime(str(values[name]), "%Y-%m-%d %H:%M:%S.%f").replace(
                        tzinfo=dt.UTC
                    )
            if values["weight_kg"] is not None:
                values["weight_kg"] = float(str(values["weight_kg"]))
        except ValueError:
            continue
        kept.append(values)
    types = {
        "created_at": pa.timestamp("us", tz="UTC"),
        "updated_at": pa.timestamp("us", tz="UTC"),
        "weight_kg": pa.float64(),
    }
    schema = pa.schema([(name, types.get(name, pa.string())) for name in columns])
    table = pa.Table.from_pylist(
        [{k: (v if k in types or v is None else str(v)) for k, v in values.items()} for values in kept], schema=schema
    )
    pq.write_table(table, path)
    return len(kept)
